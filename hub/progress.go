package hub

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// progress writes download progress to a writer: on a terminal one line per file, redrawn in
// place a few times a second; elsewhere (a log file, a pipe) a line when a file starts, one
// every ten seconds and one when it ends. A nil *progress writes nothing.
type progress struct {
	mu       sync.Mutex
	w        io.Writer
	tty      bool
	interval time.Duration
	open     bool // a terminal line is being redrawn
}

func newProgress(w io.Writer) *progress {
	if w == nil {
		return nil
	}
	p := &progress{w: w, interval: 10 * time.Second}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty, p.interval = true, 200*time.Millisecond
		}
	}
	return p
}

// note writes one line of information.
func (p *progress) note(format string, args ...any) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLine()
	fmt.Fprintf(p.w, format+"\n", args...)
}

// endLine finishes a terminal line being redrawn.
func (p *progress) endLine() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

// bar follows one file's download; it is an io.Writer counting the bytes written to the file.
type bar struct {
	p        *progress
	name     string
	total, n int64
	from     int64 // bytes already there when the transfer started
	started  time.Time
	last     time.Time
}

// start begins following a file of total bytes of which initial are already downloaded.
func (p *progress) start(name string, total, initial int64) *bar {
	if p == nil {
		return nil
	}
	b := &bar{p: p, name: name, total: total, n: initial, from: initial, started: time.Now()}
	b.last = b.started
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLine()
	if p.tty {
		b.draw()
	} else if initial > 0 {
		fmt.Fprintf(p.w, "%s: downloading %s, resuming a partial download at %s\n", name, fmtBytes(total), fmtBytes(initial))
	} else {
		fmt.Fprintf(p.w, "%s: downloading %s\n", name, fmtBytes(total))
	}
	return b
}

// Write counts n more bytes and redraws when it is time.
func (b *bar) Write(buf []byte) (int, error) {
	if b == nil {
		return len(buf), nil
	}
	b.n += int64(len(buf))
	now := time.Now()
	if now.Sub(b.last) < b.p.interval {
		return len(buf), nil
	}
	b.last = now
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	if b.p.tty {
		b.draw()
	} else {
		fmt.Fprintf(b.p.w, "%s: %s\n", b.name, b.status())
	}
	return len(buf), nil
}

// restart sets the count back, for a transfer that starts over.
func (b *bar) restart(n int64) {
	if b != nil {
		b.n, b.from, b.started = n, n, time.Now()
	}
}

// status is "12.0 MB / 548.1 MB (2%), 45.6 MB/s".
func (b *bar) status() string {
	pct := 100.0
	if b.total > 0 {
		pct = 100 * float64(b.n) / float64(b.total)
	}
	return fmt.Sprintf("%s / %s (%.0f%%), %s", fmtBytes(b.n), fmtBytes(b.total), pct, b.rate())
}

func (b *bar) rate() string {
	s := time.Since(b.started).Seconds()
	if s <= 0 {
		return "- B/s"
	}
	return fmtBytes(int64(float64(b.n-b.from)/s)) + "/s"
}

// draw redraws the terminal line; the caller holds the lock.
func (b *bar) draw() {
	fmt.Fprintf(b.p.w, "\r%s: %s\x1b[K", b.name, b.status())
	b.p.open = true
}

// done reports the file complete.
func (b *bar) done() {
	if b == nil {
		return
	}
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	msg := fmt.Sprintf("%s: %s done in %s (%s)", b.name, fmtBytes(b.total), time.Since(b.started).Round(100*time.Millisecond), b.rate())
	if b.p.tty {
		fmt.Fprintf(b.p.w, "\r%s\x1b[K\n", msg)
		b.p.open = false
	} else {
		fmt.Fprintln(b.p.w, msg)
	}
}

// fail ends the file's line after a failure, leaving the error to be reported by the caller.
func (b *bar) fail() {
	if b == nil {
		return
	}
	b.p.mu.Lock()
	defer b.p.mu.Unlock()
	b.p.endLine()
}

// fmtBytes writes a byte count in decimal units, as huggingface_hub's progress bars do.
func fmtBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %cB", v, "kMGTP"[i])
}
