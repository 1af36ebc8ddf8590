package train

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
)

// progress draws a one-line status: a bar redrawn in place with carriage returns on a
// terminal, and plain lines every logEvery steps otherwise.
type progress struct {
	w        io.Writer
	tty      bool
	total    int
	logEvery int
	last     time.Time
	drawn    bool
}

func newProgress(w io.Writer, total, logEvery int) *progress {
	if w == nil {
		return nil
	}
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	if logEvery <= 0 {
		logEvery = 1
	}
	return &progress{w: w, tty: tty, total: total, logEvery: logEvery}
}

type progressInfo struct {
	step    int
	epoch   float64
	loss    float64 // smoothed
	lr      float64
	rate    float64 // samples per second
	eta     time.Duration
	elapsed time.Duration
}

func (p *progress) update(in progressInfo, force bool) {
	if p == nil {
		return
	}
	now := time.Now()
	if p.tty {
		if !force && now.Sub(p.last) < 100*time.Millisecond && in.step != p.total {
			return
		}
		p.last = now
		frac := float64(in.step) / float64(max(p.total, 1))
		const width = 24
		filled := int(frac * width)
		bar := strings.Repeat("=", filled)
		if filled < width {
			bar += ">" + strings.Repeat(" ", width-filled-1)
		}
		fmt.Fprintf(p.w, "\r[%s] %3.0f%% %s\x1b[K", bar, 100*frac, p.line(in))
		p.drawn = true
		return
	}
	if force || in.step%p.logEvery == 0 || in.step == p.total {
		fmt.Fprintln(p.w, p.line(in))
	}
}

func (p *progress) line(in progressInfo) string {
	eta := "?"
	if in.eta > 0 {
		eta = fmtDuration(in.eta)
	}
	return fmt.Sprintf("step %d/%d  epoch %.2f  loss %.4f  lr %.3g  %.1f samples/s  elapsed %s  ETA %s",
		in.step, p.total, in.epoch, in.loss, in.lr, in.rate, fmtDuration(in.elapsed), eta)
}

// message prints a line of its own, keeping the bar intact on a terminal.
func (p *progress) message(format string, args ...any) {
	if p == nil {
		return
	}
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
	fmt.Fprintf(p.w, format+"\n", args...)
	p.last = time.Time{}
}

func (p *progress) done() {
	if p != nil && p.tty && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

func fmtDuration(d time.Duration) string {
	s := int(math.Round(d.Seconds()))
	switch {
	case s >= 3600:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	case s >= 60:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	}
	return fmt.Sprintf("%ds", s)
}
