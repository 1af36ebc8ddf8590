package image

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseConfigDefaults(t *testing.T) {
	cases := []struct {
		name string
		json string
		want Config
	}{
		{"vit minimal", `{"image_processor_type": "ViTImageProcessor"}`,
			Config{Type: "ViTImageProcessor", DoResize: true, Size: Size{Height: 224, Width: 224}, Resample: Bilinear,
				DoRescale: true, RescaleFactor: 1.0 / 255, DoNormalize: true,
				ImageMean: [3]float64{0.5, 0.5, 0.5}, ImageStd: [3]float64{0.5, 0.5, 0.5}}},
		{"old feature extractor key, int size", `{"feature_extractor_type": "ViTFeatureExtractor", "size": 32, "resample": 3}`,
			Config{Type: "ViTFeatureExtractor", DoResize: true, Size: Size{Height: 32, Width: 32}, Resample: Bicubic,
				DoRescale: true, RescaleFactor: 1.0 / 255, DoNormalize: true,
				ImageMean: [3]float64{0.5, 0.5, 0.5}, ImageStd: [3]float64{0.5, 0.5, 0.5}}},
		{"blip minimal", `{"image_processor_type": "BlipImageProcessor", "processor_class": "BlipProcessor"}`,
			Config{Type: "BlipImageProcessor", DoConvertRGB: true, DoResize: true, Size: Size{Height: 384, Width: 384},
				Resample: Bicubic, DoRescale: true, RescaleFactor: 1.0 / 255, DoNormalize: true,
				ImageMean: OpenAICLIPMean, ImageStd: OpenAICLIPStd}},
		{"blip nulls keep defaults, scalar mean", `{"image_processor_type": "BlipImageProcessor", "image_mean": 0.25, "image_std": null, "do_normalize": null}`,
			Config{Type: "BlipImageProcessor", DoConvertRGB: true, DoResize: true, Size: Size{Height: 384, Width: 384},
				Resample: Bicubic, DoRescale: true, RescaleFactor: 1.0 / 255, DoNormalize: true,
				ImageMean: [3]float64{0.25, 0.25, 0.25}, ImageStd: OpenAICLIPStd}},
		{"clip shortest edge + crop", `{"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 40}, "crop_size": 32, "do_rescale": false}`,
			Config{Type: "CLIPImageProcessor", DoConvertRGB: true, DoResize: true, Size: Size{ShortestEdge: 40},
				Resample: Bicubic, DoCenterCrop: true, CropSize: Size{Height: 32, Width: 32}, DoRescale: false,
				RescaleFactor: 1.0 / 255, DoNormalize: true, ImageMean: OpenAICLIPMean, ImageStd: OpenAICLIPStd}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseConfig([]byte(c.json))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestParseConfigFixtures(t *testing.T) {
	blip, err := LoadConfig("testdata/hf/blip_caption/preprocessor_config.json")
	if err != nil {
		t.Fatal(err)
	}
	if blip.Size != (Size{Height: 64, Width: 64}) || blip.Resample != Bicubic || !blip.DoConvertRGB ||
		blip.RescaleFactor != 0.00392156862745098 || blip.ImageStd[2] != 0.27577711 {
		t.Errorf("blip config %+v", blip)
	}
	vit, err := LoadConfig("testdata/hf/vit_gpt2/preprocessor_config.json")
	if err != nil {
		t.Fatal(err)
	}
	if vit.Size != (Size{Height: 48, Width: 48}) || vit.Resample != Bilinear || vit.ImageMean != ImagenetStandardMean {
		t.Errorf("vit config %+v", vit)
	}
}

func TestParseConfigErrors(t *testing.T) {
	cases := []struct{ json, want string }{
		{`not json`, "preprocessor config"},
		{`{"size": 3}`, "no \"image_processor_type\""},
		{`{"image_processor_type": "DetrImageProcessor"}`, "unsupported image processor type \"DetrImageProcessor\""},
		{`{"image_processor_type": "ViTImageProcessor", "do_resize": "yes"}`, "key \"do_resize\""},
		{`{"image_processor_type": "ViTImageProcessor", "resample": 7}`, "key \"resample\": unknown PIL filter code 7"},
		{`{"image_processor_type": "ViTImageProcessor", "size": {"height": 10}}`, "key \"size\""},
		{`{"image_processor_type": "ViTImageProcessor", "size": {"longest_edge": 10}}`, "unsupported key \"longest_edge\""},
		{`{"image_processor_type": "ViTImageProcessor", "size": -4}`, "key \"size\""},
		{`{"image_processor_type": "ViTImageProcessor", "crop_size": {"shortest_edge": 10}}`, "key \"crop_size\""},
		{`{"image_processor_type": "ViTImageProcessor", "image_mean": [0.1, 0.2]}`, "key \"image_mean\": want 3 values"},
		{`{"image_processor_type": "ViTImageProcessor", "image_std": [0, 1, 1]}`, "image_std[0] is 0"},
		{`{"image_processor_type": "ViTImageProcessor", "rescale_factor": "x"}`, "key \"rescale_factor\""},
		{`{"image_processor_type": "CLIPImageProcessor", "crop_size": null, "do_center_crop": true}`, ""},
	}
	for _, c := range cases {
		_, err := ParseConfig([]byte(c.json))
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: unexpected error %v", c.json, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.json, err, c.want)
		}
	}
}

func TestSizeOutput(t *testing.T) {
	// transformers get_resize_output_image_size(default_to_square=False): short side -> n,
	// long side -> int(n * long / short).
	cases := []struct {
		s          Size
		h, w       int
		wantH, wnt int
	}{
		{Size{Height: 10, Width: 20}, 83, 97, 10, 20},
		{Size{ShortestEdge: 64}, 83, 97, 64, 74}, // 64*97/83 = 74.8
		{Size{ShortestEdge: 64}, 97, 83, 74, 64},
		{Size{ShortestEdge: 224}, 480, 640, 224, 298}, // 298.67
		{Size{ShortestEdge: 50}, 100, 100, 50, 50},
	}
	for _, c := range cases {
		h, w := c.s.Output(c.h, c.w)
		if h != c.wantH || w != c.wnt {
			t.Errorf("%v on %dx%d (HxW): %dx%d, want %dx%d", c.s, c.h, c.w, h, w, c.wantH, c.wnt)
		}
	}
}

func TestMarshalHFRoundTrip(t *testing.T) {
	for _, typ := range []string{"ViTImageProcessor", "BlipImageProcessor", "CLIPImageProcessor"} {
		c, err := DefaultConfig(typ)
		if err != nil {
			t.Fatal(err)
		}
		c.Size = Size{Height: 96, Width: 64}
		if typ == "CLIPImageProcessor" {
			c.Size = Size{ShortestEdge: 80}
		}
		b, err := c.MarshalHF()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseConfig(b)
		if err != nil {
			t.Fatalf("%s: %v\n%s", typ, err, b)
		}
		if !reflect.DeepEqual(c, back) {
			t.Errorf("%s round trip:\n%+v\n%+v", typ, c, back)
		}
	}
}
