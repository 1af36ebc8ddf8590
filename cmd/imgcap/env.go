package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/sugarme/gotch/imgcapinfo"

	"github.com/imgcap/imgcap/torchx"
)

// envReport is what `imgcap env` prints.
type envReport struct {
	Imgcap          string   `json:"imgcap"`
	Go              string   `json:"go"`
	OS              string   `json:"os"`
	CPUs            int      `json:"cpus"`
	Gotch           string   `json:"gotch"`
	Libtorch        string   `json:"libtorch"`
	LibtorchRoot    string   `json:"libtorch_root"`
	CUDABuild       bool     `json:"cuda_build"`
	CUDADevices     int      `json:"cuda_devices"`
	Device          string   `json:"device"`
	Threads         int      `json:"threads"`
	OpenMPWait      string   `json:"openmp_wait_policy"`
	Int8Engine      string   `json:"int8_engine"`
	Int8Unavailable string   `json:"int8_unavailable,omitempty"`
	BLAS            []string `json:"blas"`
	MatmulSize      int64    `json:"matmul_size"`
	MatmulGFLOPS    float64  `json:"matmul_gflops"`
	DisabledOps     int      `json:"disabled_ops"`
	DisabledOpsList []string `json:"disabled_ops_list,omitempty"`
}

func init() {
	var asJSON, listOps bool
	var size int64
	cmd := &cobra.Command{
		Use:   "env",
		Short: "Report the Go, gotch and libtorch build, BLAS library, measured matmul speed and devices",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			dev, err := torchx.ParseDevice(globals.device)
			if err != nil {
				return usageError{err}
			}
			r := envReport{
				Imgcap: version, Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, CPUs: runtime.NumCPU(),
				Gotch: gotchVersion(), Libtorch: imgcapinfo.LibtorchVersion, LibtorchRoot: imgcapinfo.LibtorchRoot,
				CUDABuild: imgcapinfo.CUDA, CUDADevices: torchx.CUDADeviceCount(), Device: torchx.DeviceName(dev),
				Threads: torchx.Threads(), OpenMPWait: os.Getenv("OMP_WAIT_POLICY"), Int8Engine: torchx.Int8Engine(),
				Int8Unavailable: torchx.Int8Unavailable(), MatmulSize: size, DisabledOps: len(imgcapinfo.DisabledOps),
			}
			if listOps {
				r.DisabledOpsList = imgcapinfo.DisabledOps
			}
			// Measure first: libtorch loads its BLAS lazily, on the first matrix product.
			if r.MatmulGFLOPS, err = torchx.MatmulGFLOPS(size, dev); err != nil {
				return err
			}
			if r.BLAS, err = torchx.BLASLibraries(); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			blas := "none found (libtorch may use MKL linked statically)"
			if len(r.BLAS) > 0 {
				blas = strings.Join(r.BLAS, ", ")
			}
			cuda := "no (CPU-only libtorch)"
			if r.CUDABuild {
				cuda = fmt.Sprintf("yes, %d device(s) visible", r.CUDADevices)
			}
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "imgcap\t%s\n", r.Imgcap)
			fmt.Fprintf(tw, "go\t%s %s, %d CPUs\n", r.Go, r.OS, r.CPUs)
			fmt.Fprintf(tw, "gotch\t%s\n", r.Gotch)
			fmt.Fprintf(tw, "libtorch\t%s (%s)\n", r.Libtorch, r.LibtorchRoot)
			fmt.Fprintf(tw, "cuda\t%s\n", cuda)
			fmt.Fprintf(tw, "device\t%s\n", r.Device)
			fmt.Fprintf(tw, "threads\t%d\n", r.Threads)
			fmt.Fprintf(tw, "openmp wait\t%s\n", cmp.Or(r.OpenMPWait, "default (spinning)"))
			if r.Int8Unavailable != "" {
				fmt.Fprintf(tw, "int8\tunavailable: %s\n", r.Int8Unavailable)
			} else {
				fmt.Fprintf(tw, "int8\t%s engine (--int8)\n", r.Int8Engine)
			}
			fmt.Fprintf(tw, "blas\t%s\n", blas)
			fmt.Fprintf(tw, "matmul\t%.1f GFLOP/s (float32 %d×%d on %s)\n", r.MatmulGFLOPS, size, size, r.Device)
			fmt.Fprintf(tw, "disabled ops\t%d generated gotch ops do not compile against this libtorch and return an error if called", r.DisabledOps)
			if !listOps {
				fmt.Fprintf(tw, " (--list-ops)")
			}
			fmt.Fprintln(tw)
			for _, op := range r.DisabledOpsList {
				fmt.Fprintf(tw, "\t  %s\n", op)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&listOps, "list-ops", false, "list the disabled ops")
	cmd.Flags().Int64Var(&size, "matmul-size", 1024, "matrix size of the speed measurement")
	rootCmd.AddCommand(cmd)
}

// gotchVersion reports the gotch module version this binary was built with.
func gotchVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	for _, m := range bi.Deps {
		if m.Path == "github.com/sugarme/gotch" {
			if m.Replace != nil {
				return m.Version + " (prepared copy: " + m.Replace.Path + ")"
			}
			return m.Version
		}
	}
	return "unknown"
}
