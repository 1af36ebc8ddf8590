package weights

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// A pickle is a small program for a stack machine; its GLOBAL, STACK_GLOBAL and INST opcodes
// name Python objects (module + attribute) that the unpickler fetches and may call. A
// PyTorch state dict only needs the few names allowedGlobal accepts. scanPickle walks every
// opcode of a pickle before anything is decoded and refuses the file if it names anything
// else, so that a checkpoint that would run code in Python (os.system, builtins.eval, ...) is
// rejected by name instead of being half-decoded. gotch's unpickler never runs Python, but it
// silently maps a few names (copy_reg._reconstructor, __builtin__.object) to its own types,
// which its FindClass hook cannot veto; the scan closes that gap.

// allowedRebuilds are the tensor-rebuild functions a state dict may call.
var allowedRebuilds = map[string]bool{
	"torch._utils._rebuild_tensor":    true,
	"torch._utils._rebuild_tensor_v2": true,
	"torch._utils._rebuild_parameter": true,
}

// allowedGlobal accepts the globals a plain state dict needs: torch's tensor-rebuild
// functions, its typed storage classes (torch.cuda's too, which old files saved on a GPU may
// name; their tensors load on the CPU) and collections.OrderedDict.
func allowedGlobal(module, name string) error {
	full := module + "." + name
	switch {
	case full == "collections.OrderedDict", allowedRebuilds[full]:
		return nil
	case (module == "torch" || module == "torch.cuda") && strings.HasSuffix(name, "Storage"):
		if _, ok := supportedStorages[name]; ok {
			return nil
		}
		return fmt.Errorf("tensor storage %s is not supported (supported: %s)", full, storageNames())
	}
	return fmt.Errorf("pickle references the global %s: only plain state dicts of tensors are loaded "+
		"(allowed: torch._utils tensor-rebuild functions, torch.*Storage classes, collections.OrderedDict)", full)
}

func storageNames() string {
	names := make([]string, 0, len(supportedStorages))
	for n := range supportedStorages {
		names = append(names, "torch."+n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// pickleReader reads a pickle's bytes and counts them.
type pickleReader struct {
	r *bufio.Reader
	n int64
}

func (p *pickleReader) byte() (byte, error) {
	b, err := p.r.ReadByte()
	if err == nil {
		p.n++
	}
	return b, err
}

// bytes reads n bytes; if keep is false (or n is large) they are skipped and nil is returned.
func (p *pickleReader) bytes(n int64, keep bool) ([]byte, error) {
	if n < 0 {
		return nil, fmt.Errorf("negative length %d", n)
	}
	if keep && n <= 4096 {
		b := make([]byte, n)
		k, err := io.ReadFull(p.r, b)
		p.n += int64(k)
		return b, err
	}
	k, err := io.CopyN(io.Discard, p.r, n)
	p.n += k
	return nil, err
}

func (p *pickleReader) line() (string, error) {
	s, err := p.r.ReadString('\n')
	p.n += int64(len(s))
	if err != nil {
		return "", err
	}
	if len(s) > 1<<16 {
		return "", errors.New("text argument too long")
	}
	return strings.TrimSuffix(s, "\n"), nil
}

func (p *pickleReader) uint(size int) (uint64, error) {
	b, err := p.bytes(int64(size), true)
	if err != nil {
		return 0, err
	}
	var buf [8]byte
	copy(buf[:], b)
	return binary.LittleEndian.Uint64(buf[:]), nil
}

// stackItem is what the scan knows about a value on the pickle stack: a string or nothing.
type stackItem struct {
	str   string
	known bool
}

// scanPickle reads one pickle from r up to and including its STOP opcode without building any
// object, and fails on the first global that allow refuses, on opcodes a state dict never uses
// (extension registry, out-of-band buffers) and on malformed input. It returns the pickle's
// length in bytes.
func scanPickle(r *bufio.Reader, allow func(module, name string) error) (int64, error) {
	p := &pickleReader{r: r}
	n, err := scanOps(p, allow)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = errors.New("pickle truncated (no STOP opcode)")
		}
		return p.n, fmt.Errorf("byte %d: %w", p.n, err)
	}
	return n, nil
}

func scanOps(p *pickleReader, allow func(module, name string) error) (int64, error) {
	// The scan tracks only the two topmost stack values, and those only when they are string
	// literals (or memo entries holding one): that is all STACK_GLOBAL consumes in any pickle
	// Python writes. Every other opcode makes the top unknown, which only errs on the side of
	// refusing.
	var top [2]stackItem
	memo := map[uint64]stackItem{}
	push := func(it stackItem) { top[0], top[1] = top[1], it }
	pushUnknown := func() { top[0], top[1] = stackItem{}, stackItem{} }
	pushString := func(b []byte, keep bool) {
		if b == nil && keep {
			b = []byte{}
		}
		if keep {
			push(stackItem{str: string(b), known: true})
		} else {
			push(stackItem{})
		}
	}
	global := func(module, name string) error {
		if err := allow(module, name); err != nil {
			return err
		}
		pushUnknown()
		return nil
	}
	for {
		op, err := p.byte()
		if err != nil {
			return 0, err
		}
		switch op {
		case '.': // STOP
			return p.n, nil
		case 0x80: // PROTO
			v, err := p.bytes(1, true)
			if err != nil {
				return 0, err
			}
			if v[0] > 5 {
				return 0, fmt.Errorf("unsupported pickle protocol %d", v[0])
			}
		case 0x95: // FRAME: an 8-byte length; the frame's opcodes follow inline
			if _, err := p.bytes(8, false); err != nil {
				return 0, err
			}
		case 0x94: // MEMOIZE
			memo[uint64(len(memo))] = top[1]
		case 'p': // PUT
			s, err := p.line()
			if err != nil {
				return 0, err
			}
			idx, err := strconv.ParseUint(s, 10, 63)
			if err != nil {
				return 0, fmt.Errorf("PUT index %q", s)
			}
			memo[idx] = top[1]
		case 'q', 'r': // BINPUT, LONG_BINPUT
			size := 1
			if op == 'r' {
				size = 4
			}
			idx, err := p.uint(size)
			if err != nil {
				return 0, err
			}
			memo[idx] = top[1]
		case 'g': // GET
			s, err := p.line()
			if err != nil {
				return 0, err
			}
			idx, err := strconv.ParseUint(s, 10, 63)
			if err != nil {
				return 0, fmt.Errorf("GET index %q", s)
			}
			push(memo[idx])
		case 'h', 'j': // BINGET, LONG_BINGET
			size := 1
			if op == 'j' {
				size = 4
			}
			idx, err := p.uint(size)
			if err != nil {
				return 0, err
			}
			push(memo[idx])
		case 'c', 'i': // GLOBAL, INST: "module\nname\n"
			module, err := p.line()
			if err != nil {
				return 0, err
			}
			name, err := p.line()
			if err != nil {
				return 0, err
			}
			if err := global(module, name); err != nil {
				return 0, err
			}
		case 0x93: // STACK_GLOBAL: module and name are the two topmost stack values
			if !top[0].known || !top[1].known {
				return 0, errors.New("STACK_GLOBAL whose module and name are not string literals")
			}
			if err := global(top[0].str, top[1].str); err != nil {
				return 0, err
			}
		case 0x82, 0x83, 0x84: // EXT1, EXT2, EXT4
			return 0, fmt.Errorf("opcode EXT%d (a global from the copyreg extension registry) is not allowed", map[byte]int{0x82: 1, 0x83: 2, 0x84: 4}[op])
		case 0x97, 0x98: // NEXT_BUFFER, READONLY_BUFFER
			return 0, errors.New("out-of-band buffers (pickle protocol 5) are not allowed")
		case 'S', 'V': // STRING (quoted repr), UNICODE (raw-unicode-escape)
			s, err := p.line()
			if err != nil {
				return 0, err
			}
			if op == 'S' {
				if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
					s = s[1 : len(s)-1]
				} else {
					return 0, fmt.Errorf("STRING argument %q is not quoted", s)
				}
			}
			pushString([]byte(s), !strings.Contains(s, `\`))
		case 'U', 0x8c: // SHORT_BINSTRING, SHORT_BINUNICODE
			n, err := p.uint(1)
			if err != nil {
				return 0, err
			}
			b, err := p.bytes(int64(n), true)
			if err != nil {
				return 0, err
			}
			pushString(b, true)
		case 'T', 'X': // BINSTRING, BINUNICODE
			n, err := p.uint(4)
			if err != nil {
				return 0, err
			}
			if op == 'T' && int32(n) < 0 {
				return 0, errors.New("BINSTRING with a negative length")
			}
			b, err := p.bytes(int64(n), true)
			if err != nil {
				return 0, err
			}
			pushString(b, b != nil)
		case 0x8d: // BINUNICODE8
			n, err := p.uint(8)
			if err != nil {
				return 0, err
			}
			if n > 1<<40 {
				return 0, fmt.Errorf("BINUNICODE8 length %d", n)
			}
			b, err := p.bytes(int64(n), true)
			if err != nil {
				return 0, err
			}
			pushString(b, b != nil)
		case 'C', 'B', 0x8e, 0x96, 0x8a, 0x8b: // SHORT_BINBYTES, BINBYTES, BINBYTES8, BYTEARRAY8, LONG1, LONG4
			size := map[byte]int{'C': 1, 'B': 4, 0x8e: 8, 0x96: 8, 0x8a: 1, 0x8b: 4}[op]
			n, err := p.uint(size)
			if err != nil {
				return 0, err
			}
			if op == 0x8b && int32(n) < 0 {
				return 0, errors.New("LONG4 with a negative length")
			}
			if n > 1<<40 {
				return 0, fmt.Errorf("byte string length %d", n)
			}
			if _, err := p.bytes(int64(n), false); err != nil {
				return 0, err
			}
			pushUnknown()
		case 'F', 'I', 'L', 'P': // FLOAT, INT, LONG, PERSID: a text line
			if _, err := p.line(); err != nil {
				return 0, err
			}
			pushUnknown()
		case 'K', 'M', 'J', 'G': // BININT1, BININT2, BININT, BINFLOAT
			size := map[byte]int64{'K': 1, 'M': 2, 'J': 4, 'G': 8}[op]
			if _, err := p.bytes(size, false); err != nil {
				return 0, err
			}
			pushUnknown()
		case '(', '0', '1', '2', 'N', 'Q', 'R', 'a', 'b', 'd', '}', 'e', 'l', ']', 'o', 's', 't', ')', 'u',
			0x81, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8f, 0x90, 0x91, 0x92:
			// MARK, POP, POP_MARK, DUP, NONE, BINPERSID, REDUCE, APPEND, BUILD, DICT, EMPTY_DICT,
			// APPENDS, LIST, EMPTY_LIST, OBJ, SETITEM, TUPLE, EMPTY_TUPLE, SETITEMS, NEWOBJ,
			// TUPLE1-3, NEWTRUE, NEWFALSE, EMPTY_SET, ADDITEMS, FROZENSET, NEWOBJ_EX: no argument.
			pushUnknown()
		default:
			return 0, fmt.Errorf("unknown pickle opcode 0x%02x", op)
		}
	}
}
