package tok

import (
	"bufio"
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// oracleInput writes the oracle texts as JSON lines (texts hold newlines).
func oracleInput(t *testing.T, texts []string) string {
	var b strings.Builder
	for _, s := range texts {
		data, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(data)
		b.WriteString("\n\n") // blank lines are skipped
	}
	return b.String()
}

func TestRunTokenizeJSONMatchesGPT2Oracle(t *testing.T) {
	cases := gpt2Cases(t)
	var texts []string
	for _, c := range cases {
		texts = append(texts, c.Text)
	}
	var out bytes.Buffer
	if err := RunTokenize(load(t, "gpt2"), strings.NewReader(oracleInput(t, texts)), &out, RunOptions{JSON: true, JSONL: true}); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	n := 0
	for ; sc.Scan(); n++ {
		var got gpt2Case
		if err := json.Unmarshal(sc.Bytes(), &got); err != nil {
			t.Fatalf("output line %d: %v", n+1, err)
		}
		if n >= len(cases) {
			break
		}
		want := cases[n]
		if got.Text != want.Text || !slices.Equal(got.IDs, want.IDs) || !slices.Equal(got.Tokens, want.Tokens) || got.Decoded != want.Decoded {
			t.Errorf("line %d:\n got %+v\nwant %+v", n+1, got, want)
		}
	}
	if n != len(cases) {
		t.Errorf("%d output lines, want %d", n, len(cases))
	}
}

func TestRunTokenizeBERTSpecial(t *testing.T) {
	cases := bertCases(t)
	var texts []string
	for _, c := range cases {
		texts = append(texts, c.Text)
	}
	var out bytes.Buffer
	if err := RunTokenize(load(t, "bert-base-uncased"), strings.NewReader(oracleInput(t, texts)), &out, RunOptions{JSON: true, JSONL: true, Special: true}); err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(&out)
	for i, want := range cases {
		var got bertCase
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("output %d: %v", i+1, err)
		}
		if !slices.Equal(got.IDs, want.IDs) || !slices.Equal(got.Tokens, want.Tokens) || got.Decoded != want.Decoded {
			t.Errorf("line %d:\n got %+v\nwant %+v", i+1, got, want)
		}
	}
}

func TestRunTokenizePlain(t *testing.T) {
	tk := load(t, "bert-base-uncased")
	a, _ := tk.TokenToID("a")
	dog, _ := tk.TokenToID("dog")
	tests := []struct {
		name string
		in   string
		o    RunOptions
		want string
	}{
		{"lines, CRLF, last line without newline", "a dog\r\n\nA DOG", RunOptions{},
			itoa(a) + " " + itoa(dog) + "\ta dog\n\t\n" + itoa(a) + " " + itoa(dog) + "\ta dog\n"},
		{"special", "a dog\n", RunOptions{Special: true},
			"101 " + itoa(a) + " " + itoa(dog) + " 102\t[CLS] a dog [SEP]\n"},
		{"jsonl", "\"a\\ndog\"\n", RunOptions{JSONL: true}, itoa(a) + " " + itoa(dog) + "\ta dog\n"},
		{"empty input", "", RunOptions{}, ""},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		if err := RunTokenize(tk, strings.NewReader(tc.in), &out, tc.o); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if out.String() != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, out.String(), tc.want)
		}
	}
	// Tokens with white space are quoted.
	var out bytes.Buffer
	writer := bufio.NewWriter(&out)
	writePlain(writer, []int{1, 2}, []string{"a b", ""})
	writer.Flush()
	if got := out.String(); got != "1 2\t\"a b\" \"\"\n" {
		t.Errorf("writePlain = %q", got)
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestRunTokenizeErrors(t *testing.T) {
	tk := load(t, "gpt2")
	tests := []struct {
		name string
		in   string
		o    RunOptions
		want string
	}{
		{"invalid UTF-8", "ok\nbad \xff line\n", RunOptions{}, "line 2: tok: text is not valid UTF-8 (byte 4 is 0xff)"},
		{"not a JSON string", "\"ok\"\n{\"text\": 1}\n", RunOptions{JSONL: true}, "line 2: want a JSON string"},
	}
	for _, tc := range tests {
		err := RunTokenize(tk, strings.NewReader(tc.in), &bytes.Buffer{}, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}
