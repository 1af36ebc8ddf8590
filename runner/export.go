package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"

	"github.com/sugarme/gotch"
	gnn "github.com/sugarme/gotch/nn"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/internal/atomicfile"
	"github.com/imgcap/imgcap/torchx"
	"github.com/imgcap/imgcap/weights"
)

// ParseExportDType maps --dtype values to tensor types.
func ParseExportDType(s string) (gotch.DType, error) {
	switch s {
	case "", "fp32", "float32":
		return gotch.Float, nil
	case "fp16", "float16":
		return gotch.Half, nil
	case "bf16", "bfloat16":
		return gotch.BFloat16, nil
	}
	return 0, fmt.Errorf("dtype %q: want fp32, fp16 or bf16", s)
}

// ExportOptions control Export.
type ExportOptions struct {
	Out   string      // folder to write (created; existing model files are replaced)
	DType gotch.DType // floating-point tensors are stored in this type
}

// Export writes a model (a Hugging Face model folder, a transformer run or a VGG16+LSTM run) as
// a folder others can load: for the transformer families a Hugging Face model folder
// (config.json, model.safetensors under Hugging Face's names and layouts, generation_config.json,
// preprocessor_config.json and the tokenizer files) that transformers' from_pretrained and
// imgcap read; for VGG16+LSTM, model.safetensors (torchvision names for the encoder), model.json
// (its config) and the word vocabulary. It returns the files written.
func Export(ref string, o ExportOptions, env Env) ([]string, error) {
	if o.Out == "" {
		return nil, errors.New("export: no output folder")
	}
	m, err := Open(ref, env.Device)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	src, err := ResolveModel(ref)
	if err != nil {
		return nil, err
	}
	var written []string
	write := func(name string, data []byte) error {
		written = append(written, name)
		return atomicfile.WriteFile(filepath.Join(o.Out, name), data)
	}
	copyFile := func(name string) error {
		data, err := os.ReadFile(filepath.Join(src, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		return write(name, data)
	}
	meta := map[string]string{"format": "pt", "exported_by": "imgcap", "source": filepath.Base(filepath.Clean(ref))}
	if m.vgg != nil {
		if err := saveWeights(filepath.Join(o.Out, "model.safetensors"), m.vgg.model.VarStore(), o.DType, meta); err != nil {
			return nil, err
		}
		written = append(written, "model.safetensors")
		for _, f := range []string{ModelConfigFile, VocabFile} {
			if err := copyFile(f); err != nil {
				return nil, err
			}
		}
		return written, nil
	}
	if err := saveWeights(filepath.Join(o.Out, "model.safetensors"), m.hf.model.VarStore(), o.DType, meta); err != nil {
		return nil, err
	}
	written = append(written, "model.safetensors")
	if err := copyFile(HFConfigFile); err != nil {
		return nil, err
	}
	if o.DType != gotch.Float {
		if err := setTorchDType(filepath.Join(o.Out, HFConfigFile), o.DType); err != nil {
			return nil, err
		}
	}
	if err := copyFile(HFGenerationFile); err != nil {
		return nil, err
	}
	pc, err := m.hf.proc.Config().MarshalHF()
	if err != nil {
		return nil, err
	}
	if err := write(HFPreprocessorFile, append(pc, '\n')); err != nil {
		return nil, err
	}
	for _, f := range tokenizerFiles {
		if err := copyFile(f); err != nil {
			return nil, err
		}
	}
	sort.Strings(written)
	return written, nil
}

// saveWeights writes every persistent variable of vs to a safetensors file, floating-point ones
// converted to dtype.
func saveWeights(path string, vs *gnn.VarStore, dtype gotch.DType, meta map[string]string) error {
	if dtype == gotch.Float {
		return weights.SaveVarStore(path, vs, meta)
	}
	return torchx.WithScope(func(s *torchx.Scope) error {
		tensors := map[string]*ts.Tensor{}
		// Not BLIP's momentum encoders and queues (non-persistent training state).
		for name, t := range weights.StateDict(vs) {
			if t.DType() == gotch.Float || t.DType() == gotch.Double {
				c, err := t.Totype(dtype, false)
				if err != nil {
					return torchx.Err(name, err)
				}
				tensors[name] = c
				continue
			}
			c, err := t.ShallowClone()
			if err != nil {
				return torchx.Err(name, err)
			}
			tensors[name] = c
		}
		err := weights.WriteSafetensors(path, tensors, meta)
		runtime.KeepAlive(vs)
		return err
	})
}

// setTorchDType records the stored dtype in config.json's torch_dtype, as transformers does.
func setTorchDType(path string, dtype gotch.DType) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	m["torch_dtype"] = map[gotch.DType]string{gotch.Half: "float16", gotch.BFloat16: "bfloat16"}[dtype]
	out, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, append(out, '\n'))
}
