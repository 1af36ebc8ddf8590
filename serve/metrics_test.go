package serve

import (
	"context"
	"math"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\.)*)"`)
)

// exposition is a parsed text exposition: samples by "name{labels}" and the declared types.
type exposition struct {
	samples map[string]float64
	types   map[string]string
}

// parseExposition checks the Prometheus text format (version 0.0.4) line by line: HELP and
// TYPE before a family's samples, valid names, quoted and escaped label values, float values,
// and histograms whose buckets are cumulative and end at +Inf = _count.
func parseExposition(t *testing.T, text string) exposition {
	t.Helper()
	e := exposition{samples: map[string]float64{}, types: map[string]string{}}
	helped := map[string]bool{}
	buckets := map[string][]float64{} // histogram series (name without _bucket, labels without le) -> cumulative counts
	counts := map[string]float64{}
	if !strings.HasSuffix(text, "\n") {
		t.Error("the exposition does not end with a newline")
	}
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if f := strings.Fields(line); len(f) >= 3 && f[0] == "#" {
			switch f[1] {
			case "HELP":
				helped[f[2]] = true
			case "TYPE":
				if len(f) != 4 || !slices.Contains([]string{"counter", "gauge", "histogram", "summary", "untyped"}, f[3]) {
					t.Errorf("line %d: bad TYPE line %q", i+1, line)
				}
				if _, dup := e.types[f[2]]; dup {
					t.Errorf("line %d: %s declared twice", i+1, f[2])
				}
				e.types[f[2]] = f[3]
			}
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("line %d: not a sample: %q", i+1, line)
			continue
		}
		name, labels, value := m[1], m[2], m[3]
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Errorf("line %d: value %q: %v", i+1, value, err)
		}
		family := name
		if e.types[family] == "" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if base, ok := strings.CutSuffix(name, suffix); ok && e.types[base] == "histogram" {
					family = base
				}
			}
		}
		if e.types[family] == "" || !helped[family] {
			t.Errorf("line %d: %s has no TYPE/HELP before it", i+1, name)
		}
		e.samples[name+labels] = v
		if e.types[family] == "histogram" {
			var le string
			var rest []string
			for _, p := range labelPair.FindAllStringSubmatch(labels, -1) {
				if p[1] == "le" {
					le = p[2]
				} else {
					rest = append(rest, p[0])
				}
			}
			series := family + "{" + strings.Join(rest, ",") + "}"
			switch {
			case strings.HasSuffix(name, "_bucket"):
				if le == "" {
					t.Errorf("line %d: bucket without le", i+1)
				}
				if b := buckets[series]; len(b) > 0 && v < b[len(b)-1] {
					t.Errorf("line %d: bucket counts decrease", i+1)
				}
				buckets[series] = append(buckets[series], v)
				if le == "+Inf" {
					counts[series+"inf"] = v
				}
			case strings.HasSuffix(name, "_count"):
				counts[series] = v
			}
		}
	}
	for series := range buckets {
		if inf, ok := counts[series+"inf"]; !ok || inf != counts[series] {
			t.Errorf("%s: +Inf bucket %v, _count %v", series, inf, counts[series])
		}
	}
	return e
}

// TestMetrics checks /metrics after a few requests: the format, and that the counts match what
// happened.
func TestMetrics(t *testing.T) {
	_, hs := startServer(t, Options{Models: []Model{fakeModel(newFake(false))}})
	for range 3 {
		if r := <-send(t, context.Background(), hs.URL, 10); r.code != http.StatusOK {
			t.Fatalf("%d %s", r.code, r.body)
		}
	}
	if code, _ := post(t, context.Background(), hs.URL+"/api/caption", "application/json", strings.NewReader(`{"image":"aGVsbG8="}`)); code != http.StatusBadRequest {
		t.Fatalf("a text file: status %d", code)
	}
	code, h, body := get(t, hs.URL+"/metrics")
	if code != http.StatusOK || !strings.HasPrefix(h.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("status %d, Content-Type %q", code, h.Get("Content-Type"))
	}
	e := parseExposition(t, string(body))
	want := map[string]float64{
		`imgcap_captions_total{model="fake",outcome="ok"}`:              3,
		`imgcap_http_requests_total{handler="caption",code="200"}`:      3,
		`imgcap_http_requests_total{handler="caption",code="400"}`:      1,
		`imgcap_http_request_duration_seconds_count{handler="caption"}`: 4,
		`imgcap_rejected_requests_total{reason="bad_image"}`:            1,
		`imgcap_batch_size_count{model="fake"}`:                         3,
		`imgcap_batch_size_sum{model="fake"}`:                           3,
		`imgcap_batch_size_bucket{model="fake",le="1"}`:                 3,
		`imgcap_caption_duration_seconds_count{model="fake"}`:           3,
		`imgcap_batch_duration_seconds_count{model="fake"}`:             3,
		`imgcap_model_info{model="fake",arch="test"}`:                   1,
		`imgcap_queue_length{model="fake"}`:                             0,
		`imgcap_worker_busy{model="fake"}`:                              0,
		`imgcap_inflight_requests`:                                      0,
		`imgcap_inflight_requests_peak`:                                 1,
		`imgcap_inflight_requests_limit`:                                32, // max(16, 4×MaxBatch)
	}
	for k, v := range want {
		if got, ok := e.samples[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	for name, typ := range map[string]string{"imgcap_captions_total": "counter", "imgcap_batch_size": "histogram", "imgcap_queue_length": "gauge"} {
		if e.types[name] != typ {
			t.Errorf("%s has type %q, want %s", name, e.types[name], typ)
		}
	}
}

// TestExpositionEscaping checks label escaping and special values.
func TestExpositionEscaping(t *testing.T) {
	c := newCounterVec("x_total", "help with\nnewline", "model")
	c.add(2, "dir/with \"quotes\" and \\ and\nnewline")
	h := newHistogramVec("y_seconds", "h", []float64{0.5, 1}, "model")
	h.observe(0.5, "m") // le is inclusive
	h.observe(math.Inf(1), "m")
	g := &gaugeFunc{name: "z", help: "g", fn: func() []sample { return []sample{{v: math.NaN()}} }}
	m := &metrics{all: []metric{c, h, g}}
	var b strings.Builder
	if err := m.write(&b); err != nil {
		t.Fatal(err)
	}
	e := parseExposition(t, b.String())
	want := map[string]float64{
		`x_total{model="dir/with \"quotes\" and \\ and\nnewline"}`: 2,
		`y_seconds_bucket{model="m",le="0.5"}`:                     1,
		`y_seconds_bucket{model="m",le="1"}`:                       1,
		`y_seconds_bucket{model="m",le="+Inf"}`:                    2,
		`y_seconds_count{model="m"}`:                               2,
		`y_seconds_sum{model="m"}`:                                 math.Inf(1),
	}
	for k, v := range want {
		if got, ok := e.samples[k]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v\n%s", k, got, ok, v, b.String())
		}
	}
	if !strings.Contains(b.String(), "\nz NaN\n") {
		t.Errorf("NaN gauge not written as NaN:\n%s", b.String())
	}
	if strings.Count(b.String(), "\n") != len(strings.Split(strings.TrimSpace(b.String()), "\n")) {
		t.Error("a raw newline leaked into a line")
	}
}
