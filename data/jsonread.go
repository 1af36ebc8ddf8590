package data

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// jsonReader is a small pull parser for the caption annotation files.
//
// encoding/json needs about 2 s for a 600k-caption COCO file (100 MB); this reader walks the bytes once,
// decodes only the fields the loaders ask for and skips (but fully validates) everything else, so the
// same file loads in a fraction of that. It follows RFC 8259 and, for the values it decodes, matches
// encoding/json: invalid UTF-8 becomes U+FFFD, lone surrogates become U+FFFD, nesting is limited to
// maxJSONDepth. It keeps the path of the value being read so errors can name it ($.annotations[17].caption).
type jsonReader struct {
	data    []byte
	pos     int
	depth   int
	path    []pathElem
	scratch []byte
}

// pathElem is one step of the JSON path: an object key (its raw bytes in data) or an array index.
type pathElem struct {
	keyStart, keyEnd int // raw key bytes, without quotes; keyEnd < 0 marks an array index
	index            int
}

// maxJSONDepth bounds nesting so hostile input cannot exhaust the stack (encoding/json uses the same limit).
const maxJSONDepth = 10000

// jsonError is a syntax or schema error at a byte offset and JSON path.
type jsonError struct {
	Offset int
	Path   string
	Msg    string
}

// Error formats the error as "byte N: path: message".
func (e *jsonError) Error() string {
	return fmt.Sprintf("byte %d: %s: %s", e.Offset, e.Path, e.Msg)
}

func newJSONReader(data []byte) *jsonReader {
	r := &jsonReader{data: data}
	// A UTF-8 byte order mark is not JSON, but some editors write one; accept it.
	if len(data) >= 3 && data[0] == 0xEF && data[1] == 0xBB && data[2] == 0xBF {
		r.pos = 3
	}
	return r
}

// pathString renders the current path as $.a.b[3].c (keys that are not identifiers are quoted).
func (r *jsonReader) pathString() string {
	var b strings.Builder
	b.WriteByte('$')
	for _, p := range r.path {
		if p.keyEnd < 0 {
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(p.index))
			b.WriteByte(']')
			continue
		}
		key := decodeKeyForPath(r.data[p.keyStart:p.keyEnd])
		if isIdent(key) {
			b.WriteByte('.')
			b.WriteString(key)
		} else {
			b.WriteByte('[')
			b.WriteString(strconv.Quote(key))
			b.WriteByte(']')
		}
	}
	return b.String()
}

func decodeKeyForPath(raw []byte) string {
	sub := &jsonReader{data: append(append([]byte{'"'}, raw...), '"')}
	s, err := sub.str()
	if err != nil {
		return string(raw)
	}
	return s
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func (r *jsonReader) errorf(format string, args ...any) *jsonError {
	return &jsonError{Offset: r.pos, Path: r.pathString(), Msg: fmt.Sprintf(format, args...)}
}

func (r *jsonReader) skipWS() {
	for r.pos < len(r.data) {
		switch r.data[r.pos] {
		case ' ', '\t', '\n', '\r':
			r.pos++
		default:
			return
		}
	}
}

// peek returns the first byte of the next value (after whitespace), or 0 at the end of input.
func (r *jsonReader) peek() byte {
	r.skipWS()
	if r.pos >= len(r.data) {
		return 0
	}
	return r.data[r.pos]
}

// kind names the JSON type of the next value for error messages.
func (r *jsonReader) kind() string {
	switch r.peek() {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	case 0:
		return "end of input"
	default:
		c := r.data[r.pos]
		if c == '-' || c >= '0' && c <= '9' {
			return "number"
		}
		return fmt.Sprintf("invalid character %q", c)
	}
}

// end checks that only whitespace follows the top-level value.
func (r *jsonReader) end() error {
	r.skipWS()
	if r.pos != len(r.data) {
		return r.errorf("invalid character %q after top-level value", r.data[r.pos])
	}
	return nil
}

// object reads an object and calls fn for each member; fn must consume the member's value.
// During fn the member's key is on the path.
func (r *jsonReader) object(fn func(key []byte) error) error {
	if r.peek() != '{' {
		return r.errorf("want object, got %s", r.kind())
	}
	r.pos++
	if r.depth++; r.depth > maxJSONDepth {
		return r.errorf("nesting deeper than %d", maxJSONDepth)
	}
	if r.peek() == '}' {
		r.pos++
		r.depth--
		return nil
	}
	for {
		if r.peek() != '"' {
			return r.errorf("want object key, got %s", r.kind())
		}
		start := r.pos + 1
		key, err := r.keyBytes()
		if err != nil {
			return err
		}
		end := r.pos - 1
		if r.peek() != ':' {
			return r.errorf("want ':' after object key, got %s", r.kind())
		}
		r.pos++
		r.path = append(r.path, pathElem{keyStart: start, keyEnd: end})
		if err := fn(key); err != nil {
			return err
		}
		r.path = r.path[:len(r.path)-1]
		switch r.peek() {
		case ',':
			r.pos++
		case '}':
			r.pos++
			r.depth--
			return nil
		default:
			return r.errorf("want ',' or '}' in object, got %s", r.kind())
		}
	}
}

// array reads an array and calls fn for each element; fn must consume the element.
func (r *jsonReader) array(fn func(i int) error) error {
	if r.peek() != '[' {
		return r.errorf("want array, got %s", r.kind())
	}
	r.pos++
	if r.depth++; r.depth > maxJSONDepth {
		return r.errorf("nesting deeper than %d", maxJSONDepth)
	}
	if r.peek() == ']' {
		r.pos++
		r.depth--
		return nil
	}
	for i := 0; ; i++ {
		r.path = append(r.path, pathElem{keyEnd: -1, index: i})
		if err := fn(i); err != nil {
			return err
		}
		r.path = r.path[:len(r.path)-1]
		switch r.peek() {
		case ',':
			r.pos++
		case ']':
			r.pos++
			r.depth--
			return nil
		default:
			return r.errorf("want ',' or ']' in array, got %s", r.kind())
		}
	}
}

// strSpecial marks bytes that end the fast path of string scanning.
var strSpecial = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'] = true
	t['\\'] = true
	for c := 0x80; c < 0x100; c++ {
		t[c] = true
	}
	return t
}()

// keyBytes reads a string and returns its decoded bytes; they alias the input or a scratch buffer and are
// valid until the next key is read.
func (r *jsonReader) keyBytes() ([]byte, error) {
	r.pos++ // opening quote
	start := r.pos
	for r.pos < len(r.data) && !strSpecial[r.data[r.pos]] {
		r.pos++
	}
	if r.pos < len(r.data) && r.data[r.pos] == '"' {
		r.pos++
		return r.data[start : r.pos-1], nil
	}
	r.pos = start
	buf, err := r.decodeString(r.scratch[:0])
	r.scratch = buf
	return buf, err
}

// str reads a string value.
func (r *jsonReader) str() (string, error) {
	if r.peek() != '"' {
		return "", r.errorf("want string, got %s", r.kind())
	}
	start := r.pos + 1
	end, ascii := scanPlain(r.data, start)
	if end < len(r.data) && r.data[end] == '"' {
		if seg := r.data[start:end]; ascii || utf8.Valid(seg) {
			r.pos = end + 1
			return string(seg), nil
		}
	}
	r.pos = start
	buf, err := r.decodeString(r.scratch[:0])
	r.scratch = buf
	if err != nil {
		return "", err
	}
	return string(buf), nil
}

// strAppend reads a string value and appends its decoded bytes to arena. Loaders collect all the
// strings they keep in one arena and convert it to a single string at the end: one allocation instead of
// one per caption.
func (r *jsonReader) strAppend(arena []byte) ([]byte, error) {
	if r.peek() != '"' {
		return arena, r.errorf("want string, got %s", r.kind())
	}
	start := r.pos + 1
	end, ascii := scanPlain(r.data, start)
	if end < len(r.data) && r.data[end] == '"' {
		if seg := r.data[start:end]; ascii || utf8.Valid(seg) {
			r.pos = end + 1
			return append(arena, seg...), nil
		}
	}
	r.pos = start
	return r.decodeString(arena)
}

// SWAR constants: every byte 0x01, every byte 0x80.
const (
	swarOnes = 0x0101010101010101
	swarHigh = 0x8080808080808080
)

// scanPlain returns the index of the first '"', '\\' or control byte at or after i (len(d) if none),
// and whether the bytes before it are all ASCII. It tests 8 bytes at a time: string bodies are most of a
// caption file.
func scanPlain(d []byte, i int) (end int, ascii bool) {
	ascii = true
	for ; i+8 <= len(d); i += 8 {
		x := binary.LittleEndian.Uint64(d[i:])
		q := x ^ (swarOnes * '"')
		b := x ^ (swarOnes * '\\')
		// A byte is zero in q or b, or below 0x20 in x: (v - 0x01..) & ^v & 0x80.. finds them exactly
		// (only bytes above a found one can be false positives).
		if ((q-swarOnes)&^q|(b-swarOnes)&^b|(x-swarOnes*0x20)&^x)&swarHigh != 0 {
			break
		}
		if x&swarHigh != 0 {
			ascii = false
		}
	}
	for ; i < len(d); i++ {
		c := d[i]
		if c == '"' || c == '\\' || c < 0x20 {
			return i, ascii
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	return i, ascii
}

// decodeString decodes the string body starting at r.pos (after the opening quote) into buf, handling
// escapes and replacing invalid UTF-8 like encoding/json does.
func (r *jsonReader) decodeString(buf []byte) ([]byte, error) {
	for {
		if r.pos >= len(r.data) {
			return buf, r.errorf("unterminated string")
		}
		c := r.data[r.pos]
		switch {
		case c == '"':
			r.pos++
			return buf, nil
		case c < 0x20:
			return buf, r.errorf("control character %q in string", c)
		case c == '\\':
			if r.pos+1 >= len(r.data) {
				return buf, r.errorf("unterminated string")
			}
			e := r.data[r.pos+1]
			r.pos += 2
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r.pos -= 2
				rr, ok := r.hex4(r.pos + 2)
				if !ok {
					return buf, r.errorf("invalid \\u escape in string")
				}
				r.pos += 6
				if utf16.IsSurrogate(rr) {
					// A valid pair combines; anything else is U+FFFD (as encoding/json).
					if r2, ok := r.hex4(r.pos + 2); ok && r.pos+1 < len(r.data) && r.data[r.pos] == '\\' && r.data[r.pos+1] == 'u' {
						if dec := utf16.DecodeRune(rr, r2); dec != utf8.RuneError {
							r.pos += 6
							buf = utf8.AppendRune(buf, dec)
							break
						}
					}
					rr = utf8.RuneError
				}
				buf = utf8.AppendRune(buf, rr)
			default:
				r.pos -= 2
				return buf, r.errorf("invalid escape \\%c in string", e)
			}
		case c < utf8.RuneSelf:
			buf = append(buf, c)
			r.pos++
		default:
			rr, size := utf8.DecodeRune(r.data[r.pos:])
			if rr == utf8.RuneError && size == 1 {
				buf = utf8.AppendRune(buf, utf8.RuneError)
			} else {
				buf = append(buf, r.data[r.pos:r.pos+size]...)
			}
			r.pos += size
		}
	}
}

// hex4 parses 4 hex digits at off.
func (r *jsonReader) hex4(off int) (rune, bool) {
	if off+4 > len(r.data) {
		return 0, false
	}
	var v rune
	for _, c := range r.data[off : off+4] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// skipString skips a string, validating its escapes.
func (r *jsonReader) skipString() error {
	d := r.data
	p := r.pos + 1
	for {
		p, _ = scanPlain(d, p)
		if p >= len(d) {
			r.pos = p
			return r.errorf("unterminated string")
		}
		switch c := d[p]; {
		case c == '"':
			r.pos = p + 1
			return nil
		case c == '\\':
			if p+1 >= len(d) {
				r.pos = p
				return r.errorf("unterminated string")
			}
			switch d[p+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				p += 2
			case 'u':
				if _, ok := r.hex4(p + 2); !ok {
					r.pos = p
					return r.errorf("invalid \\u escape in string")
				}
				p += 6
			default:
				r.pos = p
				return r.errorf("invalid escape \\%c in string", d[p+1])
			}
		default:
			r.pos = p
			return r.errorf("control character %q in string", c)
		}
	}
}

// number scans a JSON number and returns its text and whether it is an integer (no fraction or exponent).
func (r *jsonReader) number() (text []byte, integer bool, err error) {
	r.skipWS()
	start := r.pos
	d := r.data
	p := r.pos
	if p < len(d) && d[p] == '-' {
		p++
	}
	switch {
	case p < len(d) && d[p] == '0':
		p++
	case p < len(d) && d[p] >= '1' && d[p] <= '9':
		for p < len(d) && d[p] >= '0' && d[p] <= '9' {
			p++
		}
	default:
		r.pos = p
		return nil, false, r.errorf("invalid number")
	}
	integer = true
	if p < len(d) && d[p] == '.' {
		integer = false
		p++
		if p >= len(d) || d[p] < '0' || d[p] > '9' {
			r.pos = p
			return nil, false, r.errorf("invalid number: want digit after '.'")
		}
		for p < len(d) && d[p] >= '0' && d[p] <= '9' {
			p++
		}
	}
	if p < len(d) && (d[p] == 'e' || d[p] == 'E') {
		integer = false
		p++
		if p < len(d) && (d[p] == '+' || d[p] == '-') {
			p++
		}
		if p >= len(d) || d[p] < '0' || d[p] > '9' {
			r.pos = p
			return nil, false, r.errorf("invalid number: want digit in exponent")
		}
		for p < len(d) && d[p] >= '0' && d[p] <= '9' {
			p++
		}
	}
	r.pos = p
	return d[start:p], integer, nil
}

// int64 reads an integer number. A number with a fraction or exponent, or out of range, is an error
// (encoding/json refuses those for int64 fields too).
func (r *jsonReader) int64() (int64, error) {
	if c := r.peek(); c != '-' && (c < '0' || c > '9') {
		return 0, r.errorf("want integer, got %s", r.kind())
	}
	start := r.pos
	text, integer, err := r.number()
	if err != nil {
		return 0, err
	}
	if !integer {
		r.pos = start
		return 0, r.errorf("want integer, got number %s", text)
	}
	// Fast path: up to 18 digits cannot overflow.
	if n := len(text); n <= 18 && text[0] != '-' {
		var v int64
		for _, c := range text {
			v = v*10 + int64(c-'0')
		}
		return v, nil
	}
	v, perr := strconv.ParseInt(string(text), 10, 64)
	if perr != nil {
		r.pos = start
		return 0, r.errorf("integer %s out of range", text)
	}
	return v, nil
}

// literal consumes one of true, false, null.
func (r *jsonReader) literal(word string) error {
	if len(r.data)-r.pos < len(word) || string(r.data[r.pos:r.pos+len(word)]) != word {
		return r.errorf("invalid literal, want %s", word)
	}
	r.pos += len(word)
	return nil
}

// null consumes a null if one is next and reports whether it did.
func (r *jsonReader) null() (bool, error) {
	if r.peek() != 'n' {
		return false, nil
	}
	return true, r.literal("null")
}

// skip consumes and validates any value.
func (r *jsonReader) skip() error {
	switch c := r.peek(); c {
	case '{':
		return r.object(func([]byte) error { return r.skip() })
	case '[':
		return r.array(func(int) error { return r.skip() })
	case '"':
		return r.skipString()
	case 't':
		return r.literal("true")
	case 'f':
		return r.literal("false")
	case 'n':
		return r.literal("null")
	case 0:
		return r.errorf("unexpected end of input, want a value")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			_, _, err := r.number()
			return err
		}
		return r.errorf("invalid character %q looking for a value", c)
	}
}
