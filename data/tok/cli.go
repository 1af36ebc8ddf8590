package tok

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
)

// RunOptions configures RunTokenize.
type RunOptions struct {
	// JSON prints one JSON object per input:
	// {"text": ..., "ids": [...], "tokens": [...], "decoded": ...}, the layout of the
	// reference oracle files; decoded is Decode(ids, true).
	JSON bool
	// JSONL reads one JSON string per input line, so that texts may hold newlines;
	// blank lines are skipped. Without it every line is one text (its "\n" or "\r\n"
	// removed).
	JSONL bool
	// Special adds the model's special tokens around each text (AddSpecial).
	Special bool
}

// RunTokenize reads texts from r and writes their ids and tokens to w, one output line per
// input. The plain output is the ids separated by spaces, a tab, then the tokens separated
// by spaces (tokens that are empty or hold white space or control characters are written
// as Go-quoted strings). Errors name the input line.
func RunTokenize(tk Tokenizer, r io.Reader, w io.Writer, o RunOptions) error {
	br := bufio.NewReaderSize(r, 64*1024)
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for lineNo := 1; ; lineNo++ {
		line, err := br.ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("tokenize: reading line %d: %w", lineNo, err)
		}
		if line == "" && err != nil {
			break
		}
		text := strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if o.JSONL {
			if strings.TrimSpace(text) == "" {
				if err != nil {
					break
				}
				continue
			}
			var s string
			if jerr := json.Unmarshal([]byte(text), &s); jerr != nil {
				return fmt.Errorf("tokenize: line %d: want a JSON string: %w", lineNo, jerr)
			}
			text = s
		}
		ids, eerr := tk.Encode(text)
		if eerr != nil {
			return fmt.Errorf("tokenize: line %d: %w", lineNo, eerr)
		}
		if o.Special {
			ids = tk.AddSpecial(ids)
		}
		toks := make([]string, len(ids))
		for i, id := range ids {
			toks[i], _ = tk.IDToToken(id)
		}
		if o.JSON {
			rec := struct {
				Text    string   `json:"text"`
				IDs     []int    `json:"ids"`
				Tokens  []string `json:"tokens"`
				Decoded string   `json:"decoded"`
			}{text, ids, toks, tk.Decode(ids, true)}
			if werr := enc.Encode(rec); werr != nil {
				return fmt.Errorf("tokenize: %w", werr)
			}
		} else {
			writePlain(bw, ids, toks)
		}
		if err != nil { // io.EOF after a last line without "\n"
			break
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("tokenize: %w", err)
	}
	return nil
}

func writePlain(w *bufio.Writer, ids []int, toks []string) {
	for i, id := range ids {
		if i > 0 {
			w.WriteByte(' ')
		}
		w.WriteString(strconv.Itoa(id))
	}
	w.WriteByte('\t')
	for i, t := range toks {
		if i > 0 {
			w.WriteByte(' ')
		}
		if t == "" || strings.IndexFunc(t, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			t = strconv.Quote(t)
		}
		w.WriteString(t)
	}
	w.WriteByte('\n')
}
