package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/imgcap/imgcap/internal/atomicfile"
)

// Files the trainer writes into the run directory besides checkpoints.
const (
	// ConfigFile is the resolved configuration of the run.
	ConfigFile = "config.yaml"
	// MetricsFile is the metrics log, one JSON Record per line.
	MetricsFile = "metrics.jsonl"
	// LossPlot draws the training loss and val_loss against the step.
	LossPlot = "loss.png"
	// MetricsPlot draws the other evaluation metrics against the step.
	MetricsPlot = "metrics.png"
)

// Record is one line of metrics.jsonl. Training lines carry lr, loss (the mean over the
// optimizer steps since the previous line), grad_norm (of the last step, before clipping),
// samples_per_s and elapsed_s; evaluation lines carry "eval": true and the metrics (val_loss,
// bleu4, ...). Every line has step and epoch (fractional: micro-batches consumed / batches per
// epoch).
type Record map[string]any

type point struct{ step, value float64 }

// metricsLog appends records to metrics.jsonl and keeps the series the plots draw.
type metricsLog struct {
	path   string
	f      *os.File
	loss   []point
	series map[string][]point // evaluation metrics
}

// openMetrics opens runDir/metrics.jsonl for appending. Lines of steps after keepThrough
// (written by a session that stopped after its last checkpoint) are dropped, so that a
// resumed run's log reads like an uninterrupted one; keepThrough < 0 keeps nothing.
func openMetrics(runDir string, keepThrough int) (*metricsLog, error) {
	m := &metricsLog{path: filepath.Join(runDir, MetricsFile), series: map[string][]point{}}
	var kept bytes.Buffer
	if keepThrough >= 0 {
		old, err := os.ReadFile(m.path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		sc := bufio.NewScanner(bytes.NewReader(old))
		sc.Buffer(make([]byte, 1<<20), 1<<26)
		for sc.Scan() {
			var r Record
			if json.Unmarshal(sc.Bytes(), &r) != nil {
				continue // a torn last line
			}
			step, _ := r["step"].(float64)
			if int(step) > keepThrough {
				continue
			}
			kept.Write(sc.Bytes())
			kept.WriteByte('\n')
			m.remember(r)
		}
	}
	if err := atomicfile.WriteFile(m.path, kept.Bytes()); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(m.path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	m.f = f
	return m, nil
}

func (m *metricsLog) remember(r Record) {
	step, _ := r["step"].(float64)
	if eval, _ := r["eval"].(bool); eval {
		for k, v := range r {
			if f, ok := v.(float64); ok && k != "step" && k != "epoch" && k != "elapsed_s" {
				m.series[k] = append(m.series[k], point{step, f})
			}
		}
		return
	}
	if loss, ok := r["loss"].(float64); ok {
		m.loss = append(m.loss, point{step, loss})
	}
}

// write appends one record (non-finite numbers are written as null). A nil log (a
// data-parallel rank other than 0) writes nothing.
func (m *metricsLog) write(r Record) error {
	if m == nil {
		return nil
	}
	clean := Record{}
	for k, v := range r {
		if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
			clean[k] = nil
			continue
		}
		clean[k] = v
	}
	b, err := json.Marshal(clean)
	if err != nil {
		return err
	}
	if _, err := m.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%s: %w", m.path, err)
	}
	m.remember(clean)
	return nil
}

func (m *metricsLog) close() error {
	if m == nil {
		return nil
	}
	return m.f.Close()
}

// plot redraws loss.png (training loss and val_loss) and metrics.png (the other evaluation
// metrics, when there are any) in runDir.
func (m *metricsLog) plot(runDir string) error {
	if m == nil {
		return nil
	}
	lossSeries := map[string][]point{}
	if len(m.loss) > 0 {
		lossSeries["train loss"] = m.loss
	}
	if v := m.series["val_loss"]; len(v) > 0 {
		lossSeries["val_loss"] = v
	}
	if len(lossSeries) > 0 {
		if err := savePlot(filepath.Join(runDir, LossPlot), "loss", lossSeries); err != nil {
			return err
		}
	}
	other := map[string][]point{}
	for k, v := range m.series {
		if k != "val_loss" {
			other[k] = v
		}
	}
	if len(other) > 0 {
		return savePlot(filepath.Join(runDir, MetricsPlot), "evaluation metrics", other)
	}
	return nil
}

func savePlot(path, title string, series map[string][]point) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step"
	p.Add(plotter.NewGrid())
	names := make([]string, 0, len(series))
	for k := range series {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, name := range names {
		pts := series[name]
		xys := make(plotter.XYs, 0, len(pts))
		for _, pt := range pts {
			if !math.IsNaN(pt.value) && !math.IsInf(pt.value, 0) {
				xys = append(xys, plotter.XY{X: pt.step, Y: pt.value})
			}
		}
		if len(xys) == 0 {
			continue
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		line.Color = plotutil.Color(i)
		points.Color = plotutil.Color(i)
		points.Radius = vg.Points(1.5)
		if len(xys) > 50 {
			points.Radius = 0
		}
		p.Add(line, points)
		p.Legend.Add(name, line)
	}
	p.Legend.Top = true
	w, err := p.WriterTo(8*vg.Inch, 4.5*vg.Inch, "png")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}
