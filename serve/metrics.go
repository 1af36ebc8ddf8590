package serve

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// The server's metrics, written in the Prometheus text exposition format (version 0.0.4) by
// hand: counters, gauges and histograms with labels are all it needs.

// Buckets of the latency histograms, in seconds.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}

// Buckets of the batch-size histogram.
var batchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128}

// metric is one family of samples.
type metric interface {
	write(w *bufio.Writer)
}

// labelKey joins label values into a map key.
func labelKey(values []string) string { return strings.Join(values, "\xff") }

// writeLabels writes {a="x",b="y"} (nothing without labels), with extra appended.
func writeLabels(w *bufio.Writer, names, values []string, extra ...string) {
	if len(names) == 0 && len(extra) == 0 {
		return
	}
	w.WriteByte('{')
	sep := ""
	for i, n := range names {
		fmt.Fprintf(w, `%s%s="%s"`, sep, n, escapeLabel(values[i]))
		sep = ","
	}
	for i := 0; i+1 < len(extra); i += 2 {
		fmt.Fprintf(w, `%s%s="%s"`, sep, extra[i], escapeLabel(extra[i+1]))
		sep = ","
	}
	w.WriteByte('}')
}

// escapeLabel escapes a label value: backslash, double quote and line feed.
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// helpEscaper escapes HELP text: backslash and line feed.
var helpEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`)

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// formatValue writes a sample value as Prometheus expects (+Inf, -Inf, NaN spelled out).
func formatValue(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func writeHeader(w *bufio.Writer, name, help, typ string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, helpEscaper.Replace(help), name, typ)
}

// counterVec is a counter with labels.
type counterVec struct {
	name, help string
	labels     []string
	mu         sync.Mutex
	vals       map[string]*sample
}

type sample struct {
	labels []string
	v      float64
}

func newCounterVec(name, help string, labels ...string) *counterVec {
	return &counterVec{name: name, help: help, labels: labels, vals: map[string]*sample{}}
}

// add adds v to the counter with the given label values.
func (c *counterVec) add(v float64, values ...string) {
	k := labelKey(values)
	c.mu.Lock()
	s := c.vals[k]
	if s == nil {
		s = &sample{labels: slices.Clone(values)}
		c.vals[k] = s
	}
	s.v += v
	c.mu.Unlock()
}

// get returns the counter's value for the label values (for tests).
func (c *counterVec) get(values ...string) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.vals[labelKey(values)]; s != nil {
		return s.v
	}
	return 0
}

func (c *counterVec) write(w *bufio.Writer) {
	writeHeader(w, c.name, c.help, "counter")
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range sortedKeys(c.vals) {
		s := c.vals[k]
		w.WriteString(c.name)
		writeLabels(w, c.labels, s.labels)
		fmt.Fprintf(w, " %s\n", formatValue(s.v))
	}
}

// gaugeFunc is a gauge read when scraped: fn returns one value per label-value tuple.
type gaugeFunc struct {
	name, help string
	labels     []string
	fn         func() []sample
}

func (g *gaugeFunc) write(w *bufio.Writer) {
	writeHeader(w, g.name, g.help, "gauge")
	for _, s := range g.fn() {
		w.WriteString(g.name)
		writeLabels(w, g.labels, s.labels)
		fmt.Fprintf(w, " %s\n", formatValue(s.v))
	}
}

// histogramVec is a histogram with labels.
type histogramVec struct {
	name, help string
	labels     []string
	buckets    []float64 // upper bounds, increasing; +Inf is implicit
	mu         sync.Mutex
	vals       map[string]*histogram
}

type histogram struct {
	labels []string
	counts []uint64 // per bucket (not cumulative); the last is +Inf
	sum    float64
	count  uint64
	max    float64
}

func newHistogramVec(name, help string, buckets []float64, labels ...string) *histogramVec {
	return &histogramVec{name: name, help: help, labels: labels, buckets: buckets, vals: map[string]*histogram{}}
}

// observe records v for the label values.
func (h *histogramVec) observe(v float64, values ...string) {
	k := labelKey(values)
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.vals[k]
	if e == nil {
		e = &histogram{labels: slices.Clone(values), counts: make([]uint64, len(h.buckets)+1)}
		h.vals[k] = e
	}
	i, _ := slices.BinarySearch(h.buckets, v) // first bound >= v: "le" is inclusive
	e.counts[i]++
	e.sum += v
	e.count++
	e.max = max(e.max, v)
}

// stats returns the count and the largest observation for the label values (for tests).
func (h *histogramVec) stats(values ...string) (count uint64, maxValue float64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.vals[labelKey(values)]; e != nil {
		return e.count, e.max
	}
	return 0, 0
}

func (h *histogramVec) write(w *bufio.Writer) {
	writeHeader(w, h.name, h.help, "histogram")
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range sortedKeys(h.vals) {
		e := h.vals[k]
		var cum uint64
		for i, c := range e.counts {
			cum += c
			le := math.Inf(1)
			if i < len(h.buckets) {
				le = h.buckets[i]
			}
			w.WriteString(h.name + "_bucket")
			writeLabels(w, h.labels, e.labels, "le", formatValue(le))
			fmt.Fprintf(w, " %d\n", cum)
		}
		w.WriteString(h.name + "_sum")
		writeLabels(w, h.labels, e.labels)
		fmt.Fprintf(w, " %s\n", formatValue(e.sum))
		w.WriteString(h.name + "_count")
		writeLabels(w, h.labels, e.labels)
		fmt.Fprintf(w, " %d\n", e.count)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// metrics are the server's instruments.
type metrics struct {
	httpRequests  *counterVec   // handler, code
	httpDuration  *histogramVec // handler
	captions      *counterVec   // model, outcome
	captionTime   *histogramVec // model: enqueue to answer
	batchSize     *histogramVec // model
	batchDuration *histogramVec // model
	rejected      *counterVec   // reason
	all           []metric
}

func newMetrics(gauges ...metric) *metrics {
	m := &metrics{
		httpRequests: newCounterVec("imgcap_http_requests_total", "HTTP requests by handler and status code.", "handler", "code"),
		httpDuration: newHistogramVec("imgcap_http_request_duration_seconds", "HTTP request latency by handler.", latencyBuckets, "handler"),
		captions: newCounterVec("imgcap_captions_total",
			"Caption jobs by model and outcome (ok, error, timeout, canceled, unavailable).", "model", "outcome"),
		captionTime:   newHistogramVec("imgcap_caption_duration_seconds", "Time from queueing an image to its caption, by model.", latencyBuckets, "model"),
		batchSize:     newHistogramVec("imgcap_batch_size", "Images per model call (dynamic batching), by model.", batchBuckets, "model"),
		batchDuration: newHistogramVec("imgcap_batch_duration_seconds", "Duration of one batched model call, by model.", latencyBuckets, "model"),
		rejected: newCounterVec("imgcap_rejected_requests_total",
			"Caption requests refused before captioning, by reason.", "reason"),
	}
	m.all = append([]metric{m.httpRequests, m.httpDuration, m.captions, m.captionTime, m.batchSize, m.batchDuration, m.rejected}, gauges...)
	return m
}

// write writes every metric in the text exposition format.
func (m *metrics) write(out io.Writer) error {
	w := bufio.NewWriter(out)
	for _, x := range m.all {
		x.write(w)
	}
	return w.Flush()
}
