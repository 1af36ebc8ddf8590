package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Size is a resize or crop target from a preprocessor config: either an exact Height×Width, or (Hugging Face's
// {"shortest_edge": n}) the shorter side scaled to ShortestEdge keeping the aspect ratio.
type Size struct {
	Height, Width int // exact output size when both are > 0
	ShortestEdge  int // when > 0: shorter side becomes this, the longer one int(n*long/short)
}

// String formats the size as "HxW" or "shortest_edge=N".
func (s Size) String() string {
	if s.ShortestEdge > 0 {
		return fmt.Sprintf("shortest_edge=%d", s.ShortestEdge)
	}
	return fmt.Sprintf("%dx%d", s.Height, s.Width)
}

// Output returns the size an h×w input becomes, following transformers' get_resize_output_image_size
// (default_to_square=False for shortest_edge).
func (s Size) Output(h, w int) (oh, ow int) {
	if s.ShortestEdge <= 0 {
		return s.Height, s.Width
	}
	short, long := h, w
	if w <= h {
		short, long = w, h
	}
	newShort := s.ShortestEdge
	newLong := int(float64(newShort*long) / float64(short))
	if w <= h {
		return newLong, newShort
	}
	return newShort, newLong
}

// MaxSide is the largest resize or crop side a Config accepts.
const MaxSide = 16384

// Config is a Hugging Face image processor configuration (preprocessor_config.json) with the processor class's
// defaults filled in for absent keys.
type Config struct {
	Type          string     // processor class: "BlipImageProcessor", "ViTImageProcessor", "CLIPImageProcessor", ...
	DoConvertRGB  bool       // do_convert_rgb; this package always yields RGB, so it is informational
	DoResize      bool       // do_resize
	Size          Size       // size: resize target
	Resample      Filter     // resample: PIL filter code
	DoCenterCrop  bool       // do_center_crop
	CropSize      Size       // crop_size: Height×Width only
	DoRescale     bool       // do_rescale
	RescaleFactor float64    // rescale_factor (1/255 by default)
	DoNormalize   bool       // do_normalize
	ImageMean     [3]float64 // image_mean per RGB channel
	ImageStd      [3]float64 // image_std per RGB channel
}

// Hugging Face constants (transformers.image_utils).
var (
	// ImagenetStandardMean is IMAGENET_STANDARD_MEAN (ViT's default).
	ImagenetStandardMean = [3]float64{0.5, 0.5, 0.5}
	// ImagenetStandardStd is IMAGENET_STANDARD_STD.
	ImagenetStandardStd = [3]float64{0.5, 0.5, 0.5}
	// OpenAICLIPMean is OPENAI_CLIP_MEAN (BLIP's and CLIP's default).
	OpenAICLIPMean = [3]float64{0.48145466, 0.4578275, 0.40821073}
	// OpenAICLIPStd is OPENAI_CLIP_STD.
	OpenAICLIPStd = [3]float64{0.26862954, 0.26130258, 0.27577711}
)

// DefaultConfig returns the defaults of a transformers image processor class (v4.36): ViTImageProcessor
// (also ViTFeatureExtractor), BlipImageProcessor and CLIPImageProcessor (also CLIPFeatureExtractor).
func DefaultConfig(typ string) (Config, error) {
	switch typ {
	case "ViTImageProcessor", "ViTFeatureExtractor":
		return Config{Type: typ, DoResize: true, Size: Size{Height: 224, Width: 224}, Resample: Bilinear,
			DoRescale: true, RescaleFactor: 1.0 / 255, DoNormalize: true,
			ImageMean: ImagenetStandardMean, ImageStd: ImagenetStandardStd}, nil
	case "BlipImageProcessor":
		return Config{Type: typ, DoConvertRGB: true, DoResize: true, Size: Size{Height: 384, Width: 384},
			Resample: Bicubic, DoRescale: true, RescaleFactor: 1.0 / 255, DoNormalize: true,
			ImageMean: OpenAICLIPMean, ImageStd: OpenAICLIPStd}, nil
	case "CLIPImageProcessor", "CLIPFeatureExtractor":
		return Config{Type: typ, DoConvertRGB: true, DoResize: true, Size: Size{ShortestEdge: 224},
			Resample: Bicubic, DoCenterCrop: true, CropSize: Size{Height: 224, Width: 224},
			DoRescale: true, RescaleFactor: 1.0 / 255, DoNormalize: true,
			ImageMean: OpenAICLIPMean, ImageStd: OpenAICLIPStd}, nil
	}
	return Config{}, fmt.Errorf("unsupported image processor type %q (want ViTImageProcessor, BlipImageProcessor or CLIPImageProcessor)", typ)
}

// LoadConfig reads a preprocessor_config.json file (see ParseConfig); errors name the file.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ParseConfig parses a preprocessor_config.json. The processor class comes from "image_processor_type" (or the
// older "feature_extractor_type"); keys the file omits take that class's defaults. Keys that do not affect
// pixel values (processor_class, ...) are ignored; a wrongly typed value is an error naming its key.
func ParseConfig(data []byte) (Config, error) {
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return Config{}, fmt.Errorf("preprocessor config: %w", err)
	}
	var typ string
	for _, k := range []string{"image_processor_type", "feature_extractor_type"} {
		if v, ok := raw[k]; ok {
			if err := json.Unmarshal(v, &typ); err != nil {
				return Config{}, fmt.Errorf("preprocessor config: key %q: want a string: %w", k, err)
			}
			break
		}
	}
	if typ == "" {
		return Config{}, fmt.Errorf("preprocessor config: no \"image_processor_type\" or \"feature_extractor_type\" key, so the defaults are unknown")
	}
	c, err := DefaultConfig(typ)
	if err != nil {
		return Config{}, fmt.Errorf("preprocessor config: %w", err)
	}
	keyErr := func(k string, err error) error {
		return fmt.Errorf("preprocessor config: key %q: %w", k, err)
	}
	boolKeys := map[string]*bool{
		"do_convert_rgb": &c.DoConvertRGB, "do_resize": &c.DoResize, "do_center_crop": &c.DoCenterCrop,
		"do_rescale": &c.DoRescale, "do_normalize": &c.DoNormalize,
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := raw[k]
		if string(v) == "null" {
			continue // transformers treats None as "use the default"
		}
		if p, ok := boolKeys[k]; ok {
			if err := json.Unmarshal(v, p); err != nil {
				return Config{}, keyErr(k, fmt.Errorf("want true or false, got %s", v))
			}
			continue
		}
		switch k {
		case "size":
			s, err := parseSize(v, true)
			if err != nil {
				return Config{}, keyErr(k, err)
			}
			c.Size = s
		case "crop_size":
			s, err := parseSize(v, false)
			if err != nil {
				return Config{}, keyErr(k, err)
			}
			c.CropSize = s
		case "resample":
			var n int
			if err := json.Unmarshal(v, &n); err != nil {
				return Config{}, keyErr(k, fmt.Errorf("want a PIL filter code 0..5, got %s", v))
			}
			if !Filter(n).Valid() {
				return Config{}, keyErr(k, fmt.Errorf("unknown PIL filter code %d (want 0..5)", n))
			}
			c.Resample = Filter(n)
		case "rescale_factor":
			var f float64
			if err := json.Unmarshal(v, &f); err != nil {
				return Config{}, keyErr(k, fmt.Errorf("want a number, got %s", v))
			}
			c.RescaleFactor = f
		case "image_mean", "image_std":
			t, err := parseTriple(v)
			if err != nil {
				return Config{}, keyErr(k, err)
			}
			if k == "image_mean" {
				c.ImageMean = t
			} else {
				c.ImageStd = t
			}
		}
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("preprocessor config: %w", err)
	}
	return c, nil
}

// Validate reports settings that cannot produce an image.
func (c Config) Validate() error {
	var errs []string
	if c.DoResize {
		s := c.Size
		if s.ShortestEdge <= 0 && (s.Height <= 0 || s.Width <= 0) {
			errs = append(errs, fmt.Sprintf("size %s: want positive height and width or shortest_edge", s))
		}
		if !c.Resample.Valid() {
			errs = append(errs, fmt.Sprintf("resample: unknown filter %d", int(c.Resample)))
		}
	}
	if c.DoCenterCrop && (c.CropSize.Height <= 0 || c.CropSize.Width <= 0) {
		errs = append(errs, fmt.Sprintf("crop_size %s: want positive height and width", c.CropSize))
	}
	for _, v := range []int{c.Size.Height, c.Size.Width, c.Size.ShortestEdge, c.CropSize.Height, c.CropSize.Width} {
		if v > MaxSide {
			errs = append(errs, fmt.Sprintf("size %d exceeds the maximum side %d", v, MaxSide))
			break
		}
	}
	if c.DoNormalize {
		for i, s := range c.ImageStd {
			if s == 0 {
				errs = append(errs, fmt.Sprintf("image_std[%d] is 0", i))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

// OutputSize returns the height and width of the pixel values an h×w image becomes.
func (c Config) OutputSize(h, w int) (int, int) {
	if c.DoResize {
		h, w = c.Size.Output(h, w)
	}
	if c.DoCenterCrop {
		h, w = c.CropSize.Height, c.CropSize.Width
	}
	return h, w
}

// parseSize accepts an int (square, as transformers' get_size_dict with default_to_square=True does in the
// processors' constructors), {"height", "width"} or, when allowShortest, {"shortest_edge"}.
func parseSize(v json.RawMessage, allowShortest bool) (Size, error) {
	var n int
	if err := json.Unmarshal(v, &n); err == nil {
		if n <= 0 {
			return Size{}, fmt.Errorf("want a positive size, got %d", n)
		}
		return Size{Height: n, Width: n}, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(v, &m); err != nil {
		return Size{}, fmt.Errorf("want an int or an object, got %s", v)
	}
	get := func(k string) (int, bool, error) {
		r, ok := m[k]
		if !ok || string(r) == "null" {
			return 0, false, nil
		}
		var x int
		if err := json.Unmarshal(r, &x); err != nil || x <= 0 {
			return 0, true, fmt.Errorf("%s: want a positive int, got %s", k, r)
		}
		return x, true, nil
	}
	h, hasH, err := get("height")
	if err != nil {
		return Size{}, err
	}
	w, hasW, err := get("width")
	if err != nil {
		return Size{}, err
	}
	se, hasSE, err := get("shortest_edge")
	if err != nil {
		return Size{}, err
	}
	for k := range m {
		switch k {
		case "height", "width", "shortest_edge":
		default:
			return Size{}, fmt.Errorf("unsupported key %q (want height and width, or shortest_edge)", k)
		}
	}
	switch {
	case hasH && hasW && !hasSE:
		return Size{Height: h, Width: w}, nil
	case hasSE && !hasH && !hasW && allowShortest:
		return Size{ShortestEdge: se}, nil
	}
	if allowShortest {
		return Size{}, fmt.Errorf("want {\"height\", \"width\"} or {\"shortest_edge\"}, got %s", v)
	}
	return Size{}, fmt.Errorf("want {\"height\", \"width\"}, got %s", v)
}

// parseTriple accepts one number (used for all three channels, as transformers does) or a list of three.
func parseTriple(v json.RawMessage) ([3]float64, error) {
	var x float64
	if err := json.Unmarshal(v, &x); err == nil {
		return [3]float64{x, x, x}, nil
	}
	var l []float64
	if err := json.Unmarshal(v, &l); err != nil {
		return [3]float64{}, fmt.Errorf("want a number or a list of 3 numbers, got %s", v)
	}
	if len(l) != 3 {
		return [3]float64{}, fmt.Errorf("want 3 values (one per RGB channel), got %d", len(l))
	}
	return [3]float64{l[0], l[1], l[2]}, nil
}

// MarshalHF writes the config as a Hugging Face preprocessor_config.json that ParseConfig (and
// transformers) read back to the same settings.
func (c Config) MarshalHF() ([]byte, error) {
	size := func(s Size) any {
		if s.ShortestEdge > 0 {
			return map[string]int{"shortest_edge": s.ShortestEdge}
		}
		return map[string]int{"height": s.Height, "width": s.Width}
	}
	m := map[string]any{
		"image_processor_type": c.Type, "do_convert_rgb": c.DoConvertRGB, "do_resize": c.DoResize,
		"size": size(c.Size), "resample": int(c.Resample), "do_center_crop": c.DoCenterCrop,
		"do_rescale": c.DoRescale, "rescale_factor": c.RescaleFactor, "do_normalize": c.DoNormalize,
		"image_mean": c.ImageMean[:], "image_std": c.ImageStd[:],
	}
	if c.DoCenterCrop {
		m["crop_size"] = size(c.CropSize)
	}
	return json.MarshalIndent(m, "", "  ")
}
