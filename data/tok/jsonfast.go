package tok

import (
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Hand-written decoders for the two large parts of tokenizer files, the vocabulary
// (an object of token: id) and the merges (a list of "a b" strings or of [a, b] pairs).
// encoding/json decodes them through reflection, several times slower. They run from
// UnmarshalJSON, after encoding/json has checked that the document is valid JSON, so
// they only need to check the shape of the data.

// jsonVocab decodes a JSON object of token: non-negative integer id.
type jsonVocab map[string]int

// UnmarshalJSON implements json.Unmarshaler.
func (v *jsonVocab) UnmarshalJSON(data []byte) error {
	l := jlex{b: data}
	l.ws()
	if l.peek() != '{' {
		return l.errf("want an object of token: id")
	}
	l.i++
	m := make(map[string]int, len(data)/12)
	l.ws()
	if l.peek() == '}' {
		*v = m
		return nil
	}
	for {
		l.ws()
		key, err := l.str()
		if err != nil {
			return err
		}
		l.ws()
		if l.peek() != ':' {
			return l.errf("want ':'")
		}
		l.i++
		l.ws()
		id, err := l.uint()
		if err != nil {
			return fmt.Errorf("token %q: %w", key, err)
		}
		m[key] = id
		l.ws()
		switch l.peek() {
		case ',':
			l.i++
		case '}':
			*v = m
			return nil
		default:
			return l.errf("want ',' or '}'")
		}
	}
}

// jsonMerges decodes a JSON list of merges, either ["a b", ...] or [["a", "b"], ...].
type jsonMerges [][2]string

// UnmarshalJSON implements json.Unmarshaler.
func (v *jsonMerges) UnmarshalJSON(data []byte) error {
	l := jlex{b: data}
	l.ws()
	if l.peek() != '[' {
		return l.errf("want a list of merges")
	}
	l.i++
	out := make([][2]string, 0, len(data)/12)
	l.ws()
	if l.peek() == ']' {
		*v = out
		return nil
	}
	for n := 0; ; n++ {
		l.ws()
		var pr [2]string
		switch l.peek() {
		case '"':
			s, err := l.str()
			if err != nil {
				return err
			}
			if pr, err = splitMerge(s); err != nil {
				return fmt.Errorf("merges[%d]: %w", n, err)
			}
		case '[':
			l.i++
			for k := 0; k < 2; k++ {
				l.ws()
				if k == 1 {
					if l.peek() != ',' {
						return fmt.Errorf("merges[%d]: want 2 strings", n)
					}
					l.i++
					l.ws()
				}
				s, err := l.str()
				if err != nil {
					return fmt.Errorf("merges[%d]: %w", n, err)
				}
				pr[k] = s
			}
			l.ws()
			if l.peek() != ']' {
				return fmt.Errorf("merges[%d]: want 2 strings", n)
			}
			l.i++
		default:
			return fmt.Errorf("merges[%d]: want \"a b\" or [\"a\", \"b\"]", n)
		}
		out = append(out, pr)
		l.ws()
		switch l.peek() {
		case ',':
			l.i++
		case ']':
			*v = out
			return nil
		default:
			return l.errf("want ',' or ']'")
		}
	}
}

type jlex struct {
	b []byte
	i int
}

func (l *jlex) peek() byte {
	if l.i < len(l.b) {
		return l.b[l.i]
	}
	return 0
}

func (l *jlex) ws() {
	for l.i < len(l.b) {
		switch l.b[l.i] {
		case ' ', '\t', '\n', '\r':
			l.i++
		default:
			return
		}
	}
}

func (l *jlex) errf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: %s", l.i, fmt.Sprintf(format, args...))
}

// uint reads a non-negative integer that fits an int32.
func (l *jlex) uint() (int, error) {
	start := l.i
	for l.i < len(l.b) && l.b[l.i] >= '0' && l.b[l.i] <= '9' {
		l.i++
	}
	if start == l.i {
		return 0, l.errf("want a non-negative integer id")
	}
	if c := l.peek(); c == '.' || c == 'e' || c == 'E' {
		return 0, l.errf("want an integer id")
	}
	n, err := strconv.ParseInt(string(l.b[start:l.i]), 10, 32)
	if err != nil {
		return 0, l.errf("id %s is out of range", l.b[start:l.i])
	}
	return int(n), nil
}

// str reads a JSON string, decoding escapes as encoding/json does (a lone surrogate
// becomes U+FFFD).
func (l *jlex) str() (string, error) {
	if l.peek() != '"' {
		return "", l.errf("want a string")
	}
	l.i++
	start := l.i
	for l.i < len(l.b) {
		c := l.b[l.i]
		if c == '"' {
			s := string(l.b[start:l.i])
			l.i++
			return s, nil
		}
		if c == '\\' {
			break
		}
		l.i++
	}
	buf := append([]byte(nil), l.b[start:l.i]...)
	for l.i < len(l.b) {
		c := l.b[l.i]
		switch {
		case c == '"':
			l.i++
			return string(buf), nil
		case c != '\\':
			buf = append(buf, c)
			l.i++
			continue
		}
		if l.i+1 >= len(l.b) {
			break
		}
		e := l.b[l.i+1]
		l.i += 2
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
			r, ok := l.hex4()
			if !ok {
				return "", l.errf("bad \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := rune(-1)
				if l.i+1 < len(l.b) && l.b[l.i] == '\\' && l.b[l.i+1] == 'u' {
					save := l.i
					l.i += 2
					if x, ok := l.hex4(); ok {
						r2 = x
					} else {
						l.i = save
					}
				}
				if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
					r = d
				} else {
					r = utf8.RuneError
					if r2 >= 0 {
						buf = utf8.AppendRune(buf, r)
						r = r2
						if utf16.IsSurrogate(r) {
							r = utf8.RuneError
						}
					}
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", l.errf("bad escape \\%c", e)
		}
	}
	return "", l.errf("unterminated string")
}

func (l *jlex) hex4() (rune, bool) {
	if l.i+4 > len(l.b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(l.b[l.i:l.i+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	l.i += 4
	return rune(n), true
}
