package runner

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/data/image"
)

// TestTrainAugmentRandAugment checks the data.augment -> image.Augment conversion that the VGG, ViT-GPT-2 and
// BLIP training loaders all use.
func TestTrainAugmentRandAugment(t *testing.T) {
	blip := image.RandAugment{N: 2, M: 5, Ops: image.BLIPRandAugmentOps()}
	tests := []struct {
		name string
		yaml string
		want *image.Augment
	}{
		{"defaults: no augmentation", "", nil},
		{"rand_augment alone turns augmentation on", "data:\n  augment:\n    rand_augment: {n: 2, m: 5}\n",
			&image.Augment{Scale: [2]float64{0.5, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}, RandAugment: blip}},
		{"BLIP's transform", "data:\n  augment:\n    random_resized_crop: true\n    hflip: 0.5\n    rand_augment: {n: 2, m: 5}\n",
			&image.Augment{RandomResizedCrop: true, Scale: [2]float64{0.5, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3},
				HFlip: 0.5, RandAugment: blip}},
		{"n 0 leaves it off", "data:\n  augment:\n    hflip: 0.5\n    rand_augment: {n: 0, m: 9, ops: [Rotate]}\n",
			&image.Augment{Scale: [2]float64{0.5, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3}, HFlip: 0.5}},
		{"own ops and magnitude", "data:\n  augment:\n    rand_augment: {n: 3, m: 7.5, ops: [rotate, Solarize]}\n",
			&image.Augment{Scale: [2]float64{0.5, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3},
				RandAugment: image.RandAugment{N: 3, M: 7.5, Ops: []string{"rotate", "Solarize"}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(file, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := config.Load(config.Options{File: file})
			if err != nil {
				t.Fatal(err)
			}
			got := trainAugment(c.Data.Augment)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v\nwant %+v", got, tc.want)
			}
			if got != nil {
				if err := got.Validate(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestBLIPConfigsUseRandAugment loads the BLIP recipes and checks that their training transform is BLIP's:
// RandomResizedCrop, flip 0.5, RandomAugment(2, 5, BLIP's ops).
func TestBLIPConfigsUseRandAugment(t *testing.T) {
	for _, name := range []string{"blip_large_coco_caption.yaml", "blip_retrieval_coco.yaml", "blip_pretrain.yaml"} {
		t.Run(name, func(t *testing.T) {
			c, err := config.Load(config.Options{File: filepath.Join("..", "configs", name)})
			if err != nil {
				t.Fatal(err)
			}
			a := trainAugment(c.Data.Augment)
			if a == nil || !a.RandomResizedCrop || a.HFlip != 0.5 {
				t.Fatalf("got %+v, want random resized crops and flips", a)
			}
			if want := (image.RandAugment{N: 2, M: 5, Ops: image.BLIPRandAugmentOps()}); !reflect.DeepEqual(a.RandAugment, want) {
				t.Errorf("RandAugment %+v, want %+v", a.RandAugment, want)
			}
		})
	}
}

// TestRandAugmentOpNamesAgree keeps config's copy of the op names (config imports nothing of imgcap's) equal
// to the image package's.
func TestRandAugmentOpNamesAgree(t *testing.T) {
	if !reflect.DeepEqual(config.RandAugmentOps, image.RandAugmentOps()) {
		t.Errorf("config.RandAugmentOps %v != image.RandAugmentOps %v", config.RandAugmentOps, image.RandAugmentOps())
	}
	if !reflect.DeepEqual(config.BLIPRandAugmentOps(), image.BLIPRandAugmentOps()) {
		t.Errorf("config.BLIPRandAugmentOps %v != image.BLIPRandAugmentOps %v", config.BLIPRandAugmentOps(), image.BLIPRandAugmentOps())
	}
}

// TestRandAugmentReachesPixels runs a converted config through a BLIP image processor: with rand_augment alone
// some training images differ from the evaluation pixels and some (no op applied, or an op that is a no-op at
// M 5) do not, and a seed reproduces them.
func TestRandAugmentReachesPixels(t *testing.T) {
	c := config.Default()
	c.Data.Augment.RandAugment.N = 2
	aug := trainAugment(c.Data.Augment)
	if aug == nil {
		t.Fatal("rand_augment n 2 gave no augmentation")
	}
	cfg, err := image.DefaultConfig("BlipImageProcessor")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Size = image.Size{Height: 32, Width: 32}
	p, err := image.NewProcessor(cfg, image.DecodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m := image.NewRGB(40, 36)
	for i := range m.Pix {
		m.Pix[i] = uint8(i*7 + i/120*13)
	}
	eval, _ := p.Preprocess(m)
	run := func() (outs [][]float32) {
		r := rand.New(rand.NewPCG(5, 6))
		for i := 0; i < 30; i++ {
			px, err := p.PreprocessTrain(m, *aug, r)
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, px.Data)
		}
		return outs
	}
	a := run()
	changed := 0
	for _, o := range a {
		if !reflect.DeepEqual(o, eval.Data) {
			changed++
		}
	}
	if changed == 0 || changed == len(a) {
		t.Errorf("%d of %d training images differ from evaluation, want some but not all", changed, len(a))
	}
	if !reflect.DeepEqual(a, run()) {
		t.Error("the same seed gave different images")
	}
}
