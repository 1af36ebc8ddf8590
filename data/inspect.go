package data

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Summary describes a loaded dataset: what `imgcap data inspect` prints.
type Summary struct {
	Format   Format   `json:"format"`
	Files    []string `json:"files"`
	IDScheme string   `json:"id_scheme"`
	Counts
	Splits   []SplitSummary `json:"splits"`   // train, restval, val, test, others, then unassigned ("")
	Problems []ProblemCount `json:"problems"` // per reason and action, in order of first occurrence
}

// Counts are image and caption counts of a set of records.
type Counts struct {
	Images                int     `json:"images"`
	Captions              int     `json:"captions"`
	ImagesWithoutCaptions int     `json:"images_without_captions"`
	MinCaptions           int     `json:"min_captions_per_image"`
	MeanCaptions          float64 `json:"mean_captions_per_image"`
	MaxCaptions           int     `json:"max_captions_per_image"`
}

// SplitSummary counts one split; Name "" is the unassigned images.
type SplitSummary struct {
	Name string `json:"name"`
	Counts
}

// ProblemCount counts the problems of one reason and action, with the first as an example.
type ProblemCount struct {
	Reason  Reason `json:"reason"`
	Action  Action `json:"action"`
	Count   int    `json:"count"`
	Example string `json:"example"`
}

// Inspect summarizes a dataset.
func Inspect(ds *Dataset) Summary {
	s := Summary{Format: ds.Format, Files: ds.Files, IDScheme: ds.IDScheme}
	s.Counts = countRecords(ds.Records, func(*Record) bool { return true })
	for _, name := range ds.Splits() {
		s.Splits = append(s.Splits, SplitSummary{Name: name, Counts: countRecords(ds.Records, func(r *Record) bool { return r.Split == name })})
	}
	index := map[[2]string]int{}
	for _, p := range ds.Problems {
		k := [2]string{string(p.Reason), string(p.Action)}
		if i, ok := index[k]; ok {
			s.Problems[i].Count++
			continue
		}
		index[k] = len(s.Problems)
		s.Problems = append(s.Problems, ProblemCount{Reason: p.Reason, Action: p.Action, Count: 1, Example: p.Error()})
	}
	if s.Splits == nil {
		s.Splits = []SplitSummary{}
	}
	if s.Problems == nil {
		s.Problems = []ProblemCount{}
	}
	return s
}

func countRecords(recs []Record, keep func(*Record) bool) Counts {
	var c Counts
	for i := range recs {
		r := &recs[i]
		if !keep(r) {
			continue
		}
		n := len(r.Captions)
		if c.Images == 0 || n < c.MinCaptions {
			c.MinCaptions = n
		}
		if n > c.MaxCaptions {
			c.MaxCaptions = n
		}
		if n == 0 {
			c.ImagesWithoutCaptions++
		}
		c.Images++
		c.Captions += n
	}
	if c.Images > 0 {
		c.MeanCaptions = float64(c.Captions) / float64(c.Images)
	}
	return c
}

// WriteSummary prints a summary as an aligned table, or as indented JSON when asJSON is set.
func WriteSummary(w io.Writer, s Summary, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "format\t%s\n", s.Format)
	fmt.Fprintf(tw, "files\t%s\n", strings.Join(s.Files, ", "))
	fmt.Fprintf(tw, "image ids\t%s\n", s.IDScheme)
	fmt.Fprintf(tw, "images\t%d\n", s.Images)
	fmt.Fprintf(tw, "captions\t%d\n", s.Captions)
	fmt.Fprintf(tw, "captions per image\tmin %d, mean %.2f, max %d\n", s.MinCaptions, s.MeanCaptions, s.MaxCaptions)
	if s.ImagesWithoutCaptions > 0 {
		fmt.Fprintf(tw, "images without captions\t%d\n", s.ImagesWithoutCaptions)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%-*s\timages\tcaptions\tno captions\tmin\tmean\tmax\t\n", splitColumnWidth(s), "split")
	row := func(name string, c Counts) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.2f\t%d\t\n", name, c.Images, c.Captions, c.ImagesWithoutCaptions, c.MinCaptions, c.MeanCaptions, c.MaxCaptions)
	}
	names := []string{}
	width := splitColumnWidth(s)
	for _, sp := range s.Splits {
		name := sp.Name
		if name == "" {
			name = "(unassigned)"
		}
		names = append(names, name)
	}
	// Pad the names so they read left-aligned while the numbers align right.
	for i, sp := range s.Splits {
		row(fmt.Sprintf("%-*s", width, names[i]), sp.Counts)
	}
	row(fmt.Sprintf("%-*s", width, "total"), s.Counts)
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if len(s.Problems) == 0 {
		_, err := fmt.Fprintln(w, "problems: none")
		return err
	}
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "problem\taction\tcount\tfirst")
	for _, p := range s.Problems {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", p.Reason, p.Action, p.Count, p.Example)
	}
	return tw.Flush()
}

// splitColumnWidth is the width of the split names column.
func splitColumnWidth(s Summary) int {
	w := len("total")
	for _, sp := range s.Splits {
		if sp.Name == "" {
			w = max(w, len("(unassigned)"))
		}
		w = max(w, len(sp.Name))
	}
	return w
}

// InspectOptions are the inputs of `imgcap data inspect`.
type InspectOptions struct {
	LoadOptions
	JSON bool // print JSON instead of a table
}

// RunInspect loads a dataset and writes its summary: the whole `imgcap data inspect` command.
func RunInspect(w io.Writer, opts InspectOptions) error {
	ds, err := Load(opts.LoadOptions)
	if err != nil {
		return err
	}
	return WriteSummary(w, Inspect(ds), opts.JSON)
}
