package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultIsValid(t *testing.T) {
	if errs := Validate(Default()); len(errs) > 0 {
		t.Fatalf("defaults invalid: %v", errs)
	}
	if _, err := Load(Options{}); err != nil {
		t.Fatalf("Load with no file: %v", err)
	}
}

func TestLoadLayers(t *testing.T) {
	file := writeFile(t, `
model:
  arch: vit_gpt2
  image_size: 32
train:
  lr: 0.01
  batch_size: 4
data:
  split_files:
    train: a.txt
`)
	tests := []struct {
		name  string
		opts  Options
		check func(t *testing.T, c Config)
	}{
		{"file", Options{File: file}, func(t *testing.T, c Config) {
			if c.Model.Arch != "vit_gpt2" || c.Model.ImageSize != 32 || c.Train.LR != 0.01 || c.Train.BatchSize != 4 {
				t.Errorf("file values not applied: %+v %+v", c.Model, c.Train)
			}
			if c.Train.Epochs != Default().Train.Epochs {
				t.Errorf("default epochs lost: %d", c.Train.Epochs)
			}
			if c.Data.SplitFiles["train"] != "a.txt" {
				t.Errorf("split_files = %v", c.Data.SplitFiles)
			}
		}},
		{"env over file", Options{File: file, Env: []string{"IMGCAP_TRAIN_LR=0.5", "IMGCAP_TRAIN_BATCH_SIZE=9", "IMGCAP_WORDNET_DIR=/x", "PATH=/bin"}}, func(t *testing.T, c Config) {
			if c.Train.LR != 0.5 || c.Train.BatchSize != 9 {
				t.Errorf("env not applied: lr=%v batch=%d", c.Train.LR, c.Train.BatchSize)
			}
		}},
		{"set over env", Options{File: file, Env: []string{"IMGCAP_TRAIN_LR=0.5"}, Sets: []string{"train.lr=1e-4", "eval.metrics=[bleu, cider]", "data.split_files.val=v.txt", "model.prompt=a picture of "}}, func(t *testing.T, c Config) {
			if c.Train.LR != 1e-4 {
				t.Errorf("--set lr not applied: %v", c.Train.LR)
			}
			if strings.Join(c.Eval.Metrics, ",") != "bleu,cider" {
				t.Errorf("metrics = %v", c.Eval.Metrics)
			}
			if c.Data.SplitFiles["val"] != "v.txt" || c.Data.SplitFiles["train"] != "a.txt" {
				t.Errorf("split_files = %v", c.Data.SplitFiles)
			}
			if c.Model.Prompt != "a picture of " {
				t.Errorf("prompt = %q", c.Model.Prompt)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	file := writeFile(t, `model:
  arch: resnet
  imge_size: 224
  dropout: 1.5
train:
  lr: fast
  epochs: 2.5
  batch_size: 0
  schedule: cosine
bogus: 1
eval:
  metrics: [bleu, spice]
`)
	_, err := Load(Options{File: file, Sets: []string{"train.nope=1", "train.seed=abc", "noequals"}})
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %T %v", err, err)
	}
	msg := err.Error()
	wants := []string{
		":2: model.arch: \"resnet\" is not one of vgg16_lstm",
		":3: model.imge_size: unknown key (did you mean model.image_size?)",
		":4: model.dropout: must be within [0, 1)",
		":8: train.batch_size: must be positive",
		":12: eval.metrics: \"spice\" is not one of",
		":6: train.lr: want a number, got \"fast\"",
		":7: train.epochs: want an integer, got \"2.5\"",
		":10: bogus: unknown key",
		"--set: train.nope: unknown key",
		"--set: train.seed: want an integer, got \"abc\"",
		"--set: \"noequals\": want key=value",
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q in:\n%s", w, msg)
		}
	}
	if len(errs) != len(wants) {
		t.Errorf("got %d problems, want %d:\n%s", len(errs), len(wants), msg)
	}

	fixed := writeFile(t, `model:
  arch: resnet
  dropout: 1.5
train:
  lr: -1
  batch_size: 0
eval:
  metrics: [bleu, spice]
  min_new_tokens: 50
`)
	_, err = Load(Options{File: fixed})
	msg = err.Error()
	for _, w := range []string{
		":2: model.arch: \"resnet\" is not one of vgg16_lstm",
		":3: model.dropout: must be within [0, 1)",
		":5: train.lr: must be positive",
		":6: train.batch_size: must be positive",
		":8: eval.metrics: \"spice\" is not one of",
		":9: eval.min_new_tokens: must be within",
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("missing %q in:\n%s", w, msg)
		}
	}
}

func TestLoadBadYAML(t *testing.T) {
	tests := []struct{ name, body, want string }{
		{"syntax", "model:\n  arch: [unclosed\n", "not valid YAML"},
		{"top level list", "- a\n- b\n", "top level must be a mapping"},
		{"section not mapping", "model: 3\n", "model: want a mapping of keys"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(Options{File: writeFile(t, tc.body)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := Load(Options{File: filepath.Join(t.TempDir(), "missing.yaml")}); err == nil {
		t.Error("missing file accepted")
	}
	if _, err := Load(Options{File: writeFile(t, "")}); err != nil {
		t.Errorf("empty file should mean defaults: %v", err)
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	c := Default()
	c.Model.Arch = "blip_caption"
	c.Model.Prompt = "a picture of "
	c.Data.SplitFiles = map[string]string{"train": "t.txt"}
	out, err := YAML(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Load(Options{File: writeFile(t, string(out))})
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, out)
	}
	if back.Model.Arch != c.Model.Arch || back.Model.Prompt != c.Model.Prompt || back.Data.SplitFiles["train"] != "t.txt" {
		t.Errorf("round trip changed values: %+v", back.Model)
	}
}

func TestRepoConfigsAreValid(t *testing.T) {
	files, err := filepath.Glob("../configs/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if _, err := Load(Options{File: f}); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("train.batch_size"); got != "IMGCAP_TRAIN_BATCH_SIZE" {
		t.Errorf("EnvName = %s", got)
	}
	for _, k := range Keys() {
		key, ok := envKey(EnvName(k), leafTypes())
		if !ok || key != k {
			t.Errorf("env name of %s maps back to %q", k, key)
		}
	}
}
