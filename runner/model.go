package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sugarme/gotch"

	"github.com/imgcap/imgcap/data/image"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/nn"
	"github.com/imgcap/imgcap/torchx"
)

// Model is a captioning model opened for inference: a Hugging Face model folder, a transformer
// training run or a VGG16+LSTM training run. Its methods run libtorch on the calling goroutine;
// call them from one goroutine at a time (a server gives each model its own worker).
type Model struct {
	// Name is the reference the model was opened with.
	Name string
	// Arch is the model family: vgg16_lstm, vit_gpt2, blip_caption, blip_retrieval.
	Arch string
	hf   *hfBundle
	vgg  *vggRun
	dev  gotch.Device // where the model was opened
}

// ResolveModel turns a model reference into a local folder. It is a variable so that the hub
// client can resolve Hugging Face hub ids (org/name) to cached snapshots; by default only local
// folders resolve.
var ResolveModel = func(ref string) (string, error) {
	if _, err := os.Stat(ref); err != nil {
		if strings.Count(ref, "/") == 1 && !strings.HasPrefix(ref, ".") {
			return "", fmt.Errorf("%s: no such folder (hub ids need `imgcap pull %s` first)", ref, ref)
		}
		return "", err
	}
	return ref, nil
}

// Open loads a model for inference on dev.
func Open(ref string, dev gotch.Device) (*Model, error) {
	dir, err := ResolveModel(ref)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, HFConfigFile)); err == nil {
		b, err := OpenModel(dir, dev)
		if err != nil {
			return nil, err
		}
		return &Model{Name: ref, Arch: b.arch, hf: b, dev: dev}, nil
	}
	r, err := openRun(dir, Env{Device: dev})
	if err != nil {
		return nil, err
	}
	return &Model{Name: ref, Arch: r.cfg.Model.Arch, vgg: r, dev: dev}, nil
}

// QuantizeInt8 switches the model to int8 linear layers for CPU inference (nn.QuantizeInt8) and
// frees their float32 weights: the model can only caption afterwards. log (nil: none) gets one
// line saying what was quantized.
func (m *Model) QuantizeInt8(log *slog.Logger) error {
	env := Env{Device: m.dev, Int8: true, Logger: log}
	if m.hf != nil {
		return quantize(m.hf.model, env)
	}
	return quantize(m.vgg.model, env)
}

// openInference opens a model folder (or hub id, or transformer run) for inference: OpenModel,
// then int8 layers when env.Int8 is set.
func openInference(ref string, env Env) (*hfBundle, error) {
	b, err := OpenModel(ref, env.Device)
	if err != nil {
		return nil, err
	}
	if err := quantize(b.model, env); err != nil {
		return nil, err
	}
	return b, nil
}

// quantize switches model to int8 linear layers when env.Int8 is set, and logs what it did.
func quantize(model any, env Env) error {
	if !env.Int8 {
		return nil
	}
	if env.Device.IsCuda() {
		return errors.New("--int8 runs on the CPU only: leave out --device or use --device cpu")
	}
	start := time.Now()
	rep, err := nn.QuantizeInt8(model, nn.Int8Options{ReleaseFloat: true})
	if err != nil {
		return err
	}
	env.logger().Info(rep.String(), "seconds", fmt.Sprintf("%.1f", time.Since(start).Seconds()))
	return nil
}

// Processor is the model's image preprocessing.
func (m *Model) Processor() *image.Processor {
	if m.hf != nil {
		return m.hf.proc
	}
	return m.vgg.pipe.Proc
}

// HasTokenizer reports whether captions come with text (a folder without tokenizer files gives
// ids only).
func (m *Model) HasTokenizer() bool { return m.vgg != nil || m.hf.tok != nil }

// CaptionImages captions decoded images in one batch. o.Prompt, when set, is tokenized with the
// model's tokenizer.
func (m *Model) CaptionImages(ctx context.Context, imgs []*image.RGB, o models.GenerateOptions) (caps []models.Caption, err error) {
	if len(imgs) == 0 {
		return nil, nil
	}
	if m.hf != nil && o.Prompt != "" && len(o.PromptIDs) == 0 {
		if o.PromptIDs, err = m.hf.promptIDs(o.Prompt); err != nil {
			return nil, err
		}
	}
	if m.vgg != nil && (o.Prompt != "" || len(o.PromptIDs) > 0) {
		return nil, fmt.Errorf("%s: VGG16+LSTM captions take no prompt", m.Name)
	}
	proc := m.Processor()
	pixels := make([][]float32, len(imgs))
	var chw []int64
	for i, img := range imgs {
		px, err := proc.Preprocess(img)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		pixels[i] = px.Data
		chw = []int64{int64(px.C), int64(px.H), int64(px.W)}
	}
	err = torchx.NoGrad(func() error {
		return torchx.WithScope(func(s *torchx.Scope) error {
			dev := gotch.CPU
			if m.hf != nil {
				dev = m.hf.dev
			} else {
				dev = m.vgg.pipe.Device
			}
			b, err := models.Collate(pixels, chw, nil, 0, nil, nil, dev)
			if err != nil {
				return err
			}
			defer b.Drop()
			if m.hf != nil {
				caps, err = m.hf.captionPixels(ctx, b.Pixels, o)
				return err
			}
			if caps, err = m.vgg.model.Caption(ctx, b.Pixels, o); err != nil {
				return err
			}
			for i := range caps {
				caps[i].Text = m.vgg.vocab.Decode(toInts(caps[i].IDs), true)
			}
			return nil
		})
	})
	return caps, err
}
