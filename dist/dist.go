// Package dist runs data-parallel training on libtorch's own collective-communication layer,
// c10d, the engine under PyTorch's DistributedDataParallel: a TCPStore for the rendezvous and a
// ProcessGroupGloo (CPU tensors) or ProcessGroupNCCL (CUDA tensors) for broadcast, all-reduce
// and barrier. gotch has no binding for c10d; `make setup` builds a small cgo shim of ours
// (cmd/gotchprep/distshim) into the prepared gotch module, and this package wraps it.
//
// Processes find each other the torchrun way: every process knows its rank, the world size and
// the address and port of rank 0, which serves the TCPStore (see Config and FromEnv). Every C++
// exception becomes a Go error, and every collective is bounded by Config.Timeout; a peer that
// dies closes its sockets, so the collectives of the others fail at once. After a failure the
// group is broken: every later call returns the first error.
package dist

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/sugarme/gotch"
	shim "github.com/sugarme/gotch/imgcapdist"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/torchx"
)

// Defaults of Config.
const (
	// DefaultPort is the TCPStore port of rank 0 when none is given (torchrun's).
	DefaultPort = 29500
	// DefaultTimeout bounds the rendezvous and each collective (PyTorch's default for Gloo).
	DefaultTimeout = 30 * time.Minute
	// DefaultBucketBytes is the size of the flat buckets tensors are packed into (DDP's 25 MiB).
	DefaultBucketBytes = 25 << 20
)

// Backends.
const (
	// Gloo is libtorch's CPU backend.
	Gloo = "gloo"
	// NCCL is libtorch's CUDA backend.
	NCCL = "nccl"
)

// ReduceOp is how AllReduce combines the ranks' values.
type ReduceOp int

const (
	// Sum adds the values of all ranks.
	Sum ReduceOp = iota
	// Avg adds them and divides by the world size (floating-point tensors only).
	Avg
)

// Config says how this process joins the group.
type Config struct {
	// Rank is this process's rank in [0, WorldSize); WorldSize the number of processes.
	Rank, WorldSize int
	// LocalRank is the rank among the processes of this machine (it picks the CUDA device);
	// LocalWorldSize their number.
	LocalRank, LocalWorldSize int
	// MasterAddr and MasterPort locate rank 0's TCPStore ("" and 0: 127.0.0.1 and DefaultPort).
	MasterAddr string
	MasterPort int
	// Backend is gloo, nccl, or "" to choose from Device: NCCL for a CUDA device, else Gloo.
	Backend string
	// Device is the device this rank trains on; NCCL communicates on it (zero value: the CPU).
	Device gotch.Device
	// Timeout bounds the rendezvous and each collective (0: DefaultTimeout).
	Timeout time.Duration
	// GlooInterface names the network interface Gloo uses (GLOO_SOCKET_IFNAME); "" picks the
	// address this machine uses to reach MasterAddr.
	GlooInterface string
	// BucketBytes is the size of the flat buckets tensors travel in (0: DefaultBucketBytes).
	BucketBytes int64
}

// FromEnv reads the torchrun environment: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
// MASTER_ADDR, MASTER_PORT and GLOO_SOCKET_IFNAME. ok is false when WORLD_SIZE is not set (a
// single process). Missing LOCAL_* values default to a single machine.
func FromEnv() (c Config, ok bool, err error) {
	ws := os.Getenv("WORLD_SIZE")
	if ws == "" {
		return Config{}, false, nil
	}
	get := func(name string, def int) (int, error) {
		v := strings.TrimSpace(os.Getenv(name))
		if v == "" {
			if def < 0 {
				return 0, fmt.Errorf("%s is not set", name)
			}
			return def, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s=%q: want a number >= 0", name, v)
		}
		return n, nil
	}
	if c.WorldSize, err = get("WORLD_SIZE", -1); err != nil {
		return c, false, err
	}
	if c.Rank, err = get("RANK", -1); err != nil {
		return c, false, err
	}
	if c.LocalRank, err = get("LOCAL_RANK", c.Rank); err != nil {
		return c, false, err
	}
	if c.LocalWorldSize, err = get("LOCAL_WORLD_SIZE", c.WorldSize); err != nil {
		return c, false, err
	}
	if c.MasterPort, err = get("MASTER_PORT", DefaultPort); err != nil {
		return c, false, err
	}
	c.MasterAddr = os.Getenv("MASTER_ADDR")
	c.GlooInterface = os.Getenv("GLOO_SOCKET_IFNAME")
	return c, true, c.check()
}

func (c Config) check() error {
	switch {
	case c.WorldSize < 1:
		return fmt.Errorf("dist: world size %d, want >= 1", c.WorldSize)
	case c.Rank < 0 || c.Rank >= c.WorldSize:
		return fmt.Errorf("dist: rank %d outside [0, %d)", c.Rank, c.WorldSize)
	case c.MasterPort < 0 || c.MasterPort > 65535:
		return fmt.Errorf("dist: master port %d out of range", c.MasterPort)
	case c.Timeout < 0:
		return fmt.Errorf("dist: negative timeout %v", c.Timeout)
	}
	return nil
}

// Available reports the backends this build has, and when Gloo is missing, why.
func Available() (gloo, nccl bool, note string) {
	return shim.HaveGloo(), shim.HaveNCCL(), shim.Unavailable
}

// Group is this process's membership in a process group. Its methods are collectives: every
// rank must call the same ones in the same order. They may be called from any goroutine, one
// at a time (Group serializes them).
type Group struct {
	cfg     Config
	backend string

	mu     sync.Mutex
	h      unsafe.Pointer // the shim's group; nil after Close
	broken error          // the first failure
}

// Init joins the group c describes. Rank 0 serves the TCPStore; Init returns once every rank
// has joined, or fails after c.Timeout.
func Init(c Config) (*Group, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	if c.MasterAddr == "" {
		c.MasterAddr = "127.0.0.1"
	}
	if c.MasterPort == 0 {
		c.MasterPort = DefaultPort
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.BucketBytes <= 0 {
		c.BucketBytes = DefaultBucketBytes
	}
	if c.Device == (gotch.Device{}) {
		c.Device = gotch.CPU
	}
	backend := strings.ToLower(c.Backend)
	if backend == "" {
		backend = Gloo
		if c.Device.IsCuda() {
			backend = NCCL
		}
	}
	gloo, nccl, note := Available()
	switch backend {
	case Gloo:
		if !gloo {
			return nil, fmt.Errorf("dist: no Gloo backend in this build: %s", note)
		}
		if c.Device.IsCuda() {
			return nil, errors.New("dist: Gloo communicates CPU tensors; train on CUDA with the nccl backend")
		}
	case NCCL:
		if !nccl {
			return nil, errors.New("dist: no NCCL backend in this build: it needs a CUDA libtorch (LIBTORCH=/path make setup) whose NCCL and CUDA headers compile")
		}
		if !c.Device.IsCuda() {
			return nil, errors.New("dist: NCCL communicates CUDA tensors; train on CPU with the gloo backend")
		}
	default:
		return nil, fmt.Errorf("dist: backend %q: want gloo or nccl", c.Backend)
	}
	host := ""
	if backend == Gloo && c.GlooInterface == "" {
		var err error
		if host, err = localAddrFor(c.MasterAddr, c.MasterPort); err != nil {
			return nil, err
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() && c.LocalWorldSize > 0 && c.LocalWorldSize < c.WorldSize {
			// Several machines, but the master's name resolves to a loopback address here (as
			// a Debian hostname does on its own machine): the others could not reach it.
			if host, err = externalAddr(); err != nil {
				return nil, err
			}
		}
	}
	dev := -1
	if c.Device.IsCuda() {
		dev = c.Device.Value
	}
	h, err := shim.New(backend, c.MasterAddr, c.MasterPort, c.Rank, c.WorldSize, c.Timeout, host, c.GlooInterface, dev)
	if err != nil {
		return nil, fmt.Errorf("dist: rank %d of %d joining %s:%d (waiting up to %v for the others): %w",
			c.Rank, c.WorldSize, c.MasterAddr, c.MasterPort, c.Timeout, err)
	}
	return &Group{cfg: c, backend: backend, h: h}, nil
}

// localAddrFor is the address of this machine on the route to the master: the address Gloo
// binds, which the other ranks connect to.
func localAddrFor(addr string, port int) (string, error) {
	conn, err := net.Dial("udp", net.JoinHostPort(addr, strconv.Itoa(port)))
	if err != nil {
		return "", fmt.Errorf("dist: no route to the master %s: %w", addr, err)
	}
	defer conn.Close()
	ua, ok := conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return "", fmt.Errorf("dist: local address for %s: unexpected %v", addr, conn.LocalAddr())
	}
	return ua.IP.String(), nil
}

// externalAddr is the first non-loopback IPv4 address of an interface that is up.
func externalAddr() (string, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return "", fmt.Errorf("dist: list network interfaces: %w", err)
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := i.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
				return n.IP.String(), nil
			}
		}
	}
	return "", errors.New("dist: no network interface with an address the other machines could reach; set GLOO_SOCKET_IFNAME")
}

// Rank is this process's rank.
func (g *Group) Rank() int { return g.cfg.Rank }

// WorldSize is the number of processes in the group.
func (g *Group) WorldSize() int { return g.cfg.WorldSize }

// LocalRank is this process's rank on its machine.
func (g *Group) LocalRank() int { return g.cfg.LocalRank }

// Backend is gloo or nccl.
func (g *Group) Backend() string { return g.backend }

// Timeout is the bound of each collective.
func (g *Group) Timeout() time.Duration { return g.cfg.Timeout }

// do runs one shim call under the group's lock, with the sticky-failure rule.
func (g *Group) do(op string, fn func(h unsafe.Pointer) error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.h == nil {
		return fmt.Errorf("dist: %s: the group is closed", op)
	}
	if g.broken != nil {
		return fmt.Errorf("dist: %s: the group failed earlier: %w", op, g.broken)
	}
	if err := fn(g.h); err != nil {
		g.broken = fmt.Errorf("rank %d of %d: %w%s", g.cfg.Rank, g.cfg.WorldSize, err, peerHint(err))
		return fmt.Errorf("dist: %w", g.broken)
	}
	return nil
}

// peerHint explains the transport errors a rank sees when another rank dies or stalls.
func peerHint(err error) string {
	msg := strings.ToLower(err.Error())
	switch {
	case strings.Contains(msg, "closed by peer"), strings.Contains(msg, "reset by peer"),
		strings.Contains(msg, "broken pipe"), strings.Contains(msg, "connection refused"):
		return " (another process of the group died or left: its own error says why)"
	case strings.Contains(msg, "timed out"), strings.Contains(msg, "timeout"):
		return " (another process of the group did not take part within the timeout: it may be stuck, or busy for longer than the group's timeout)"
	}
	return ""
}

func handles(tensors []*ts.Tensor) ([]unsafe.Pointer, error) {
	out := make([]unsafe.Pointer, len(tensors))
	for i, t := range tensors {
		if t == nil {
			return nil, fmt.Errorf("dist: tensor %d is nil", i)
		}
		out[i] = t.Ctensor()
	}
	return out, nil
}

// Broadcast overwrites every rank's tensors with root's, in place. All ranks pass tensors of
// the same shapes, dtypes and order; they travel packed in flat buckets.
func (g *Group) Broadcast(tensors []*ts.Tensor, root int) error {
	hs, err := handles(tensors)
	if err != nil {
		return err
	}
	return g.do("broadcast", func(h unsafe.Pointer) error {
		return shim.Broadcast(h, hs, root, g.cfg.BucketBytes)
	})
}

// AllReduce replaces every rank's tensors by their sum (Sum) or mean (Avg) over the ranks, in
// place, in flat buckets.
func (g *Group) AllReduce(tensors []*ts.Tensor, op ReduceOp) error {
	hs, err := handles(tensors)
	if err != nil {
		return err
	}
	if op != Sum && op != Avg {
		return fmt.Errorf("dist: unknown reduce op %d", op)
	}
	return g.do("all-reduce", func(h unsafe.Pointer) error {
		return shim.AllReduce(h, hs, op == Avg, g.cfg.BucketBytes)
	})
}

// Barrier returns when every rank has reached it.
func (g *Group) Barrier() error {
	return g.do("barrier", shim.Barrier)
}

// BroadcastBytes sends root's b to every rank and returns it there (root gets b back).
func (g *Group) BroadcastBytes(b []byte, root int) ([]byte, error) {
	var out []byte
	err := torchx.NoGrad(func() error {
		return torchx.WithScope(func(*torchx.Scope) error {
			n := int64(len(b))
			if g.cfg.Rank != root {
				n = 0
			}
			size, err := g.tensor([]int64{n})
			if err != nil {
				return err
			}
			if err := g.Broadcast([]*ts.Tensor{size}, root); err != nil {
				return err
			}
			v, err := torchx.Int64s(size)
			if err != nil {
				return err
			}
			if v[0] < 0 || v[0] > 1<<31 {
				return fmt.Errorf("dist: broadcast of %d bytes", v[0])
			}
			buf := make([]byte, v[0])
			if g.cfg.Rank == root {
				copy(buf, b)
			}
			if len(buf) == 0 {
				out = buf
				return nil
			}
			t, err := g.tensor(buf)
			if err != nil {
				return err
			}
			if err := g.Broadcast([]*ts.Tensor{t}, root); err != nil {
				return err
			}
			c, err := t.To(gotch.CPU, false)
			if err != nil {
				return torchx.Err("dist: to cpu", err)
			}
			if err := c.CopyData(buf, uint(len(buf))); err != nil {
				return torchx.Err("dist: read broadcast bytes", err)
			}
			out = buf
			return nil
		})
	})
	return out, err
}

// AllReduceValues combines a few numbers over the ranks (Sum or Avg) and returns the result:
// for flags, counts and losses.
func (g *Group) AllReduceValues(v []float64, op ReduceOp) ([]float64, error) {
	out := make([]float64, len(v))
	if len(v) == 0 {
		return out, nil
	}
	err := torchx.NoGrad(func() error {
		return torchx.WithScope(func(*torchx.Scope) error {
			t, err := g.tensor(v)
			if err != nil {
				return err
			}
			if err := g.AllReduce([]*ts.Tensor{t}, op); err != nil {
				return err
			}
			c, err := t.To(gotch.CPU, false)
			if err != nil {
				return torchx.Err("dist: to cpu", err)
			}
			return torchx.Err("dist: read values", c.CopyData(out, uint(len(out))))
		})
	})
	return out, err
}

// tensor makes a tensor of values on the group's device.
func (g *Group) tensor(values any) (*ts.Tensor, error) {
	t, err := ts.OfSlice(values)
	if err != nil {
		return nil, torchx.Err("dist: tensor", err)
	}
	if !g.cfg.Device.IsCuda() {
		return t, nil
	}
	d, err := t.To(g.cfg.Device, false)
	return d, torchx.Err("dist: to "+torchx.DeviceName(g.cfg.Device), err)
}

// Close leaves the group. Calling it again does nothing.
func (g *Group) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.h != nil {
		shim.Free(g.h)
		g.h = nil
	}
	return nil
}

// EnsureGrad gives t a zero gradient when it has none, so that a parameter the local batch did
// not reach still takes part in the gradient all-reduce.
func EnsureGrad(t *ts.Tensor) error {
	if t == nil {
		return errors.New("dist: EnsureGrad of a nil tensor")
	}
	if err := shim.EnsureGrad(t.Ctensor()); err != nil {
		return fmt.Errorf("dist: %w", err)
	}
	return nil
}
