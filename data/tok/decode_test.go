package tok

import (
	"slices"
	"testing"
)

// Expected outputs are Python's bytes.decode("utf-8", "replace") (= Rust's
// String::from_utf8_lossy): one U+FFFD per maximal invalid subsequence.
func TestLossyUTF8(t *testing.T) {
	const R = "\uFFFD"
	tests := []struct {
		in   string
		want string
	}{
		{"abc", "abc"},
		{"caf\xc3\xa9", "café"},
		{"\xe2\x80", R},                     // truncated 3-byte sequence: one replacement
		{"\xf0\x9f\x98", R},                 // truncated 4-byte sequence
		{"\xf0\x9f\x98a", R + "a"},          // truncated, then ASCII
		{"\xe2\x28\xa1", R + "(" + R},       // bad second byte
		{"\xf0\x80\x80", R + R + R},         // overlong prefix: F0 needs 90..BF
		{"\xed\xa0\x80", R + R + R},         // surrogate
		{"\xf4\x90\x80\x80", R + R + R + R}, // above U+10FFFF
		{"\xc0\xaf", R + R},                 // invalid lead byte
		{"\xff\xfe", R + R},
		{"\x80", R},
		{"a\xc3", "a" + R},
		{"\xf0\x9f\x98\x80", "😀"},
	}
	for _, tc := range tests {
		if got := string(appendLossyUTF8(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("lossy(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestGPT2Decode(t *testing.T) {
	tk := load(t, "gpt2")
	smile, err := tk.Encode("😀")
	if err != nil {
		t.Fatal(err)
	}
	if len(smile) != 2 {
		t.Fatalf("😀 = %v, want 2 byte-level tokens", smile)
	}
	tests := []struct {
		name string
		ids  []int
		skip bool
		want string
	}{
		{"first half of an emoji: invalid UTF-8 -> one U+FFFD", smile[:1], false, "\uFFFD"},
		{"second half alone", smile[1:], false, "\uFFFD"},
		{"whole emoji", smile, false, "😀"},
		{"special kept", []int{464, 50256}, false, "The<|endoftext|>"},
		{"special skipped", []int{464, 50256}, true, "The"},
		{"unknown ids ignored", []int{-1, 464, 999999}, false, "The"},
		{"empty", nil, false, ""},
	}
	for _, tc := range tests {
		if got := tk.Decode(tc.ids, tc.skip); got != tc.want {
			t.Errorf("%s: Decode(%v, %v) = %q, want %q", tc.name, tc.ids, tc.skip, got, tc.want)
		}
	}
	ids, _ := tk.Encode("a<|endoftext|>b")
	if !slices.Equal(ids, []int{64, 50256, 65}) {
		t.Errorf("Encode(a<|endoftext|>b) = %v, want [64 50256 65]", ids)
	}
}

// CleanUpTokenization's expectations follow transformers' clean_up_tokenization.
func TestCleanUpTokenization(t *testing.T) {
	tests := []struct{ in, want string }{
		{"it ' s a dog .", "it's a dog."},
		{"hello , world !", "hello, world!"},
		{"what ?", "what?"},
		{"don ' t", "don't"},
		{"i do n't know", "i don't know"},
		{"i 'm here , you 're there , we 've been", "i'm here, you're there, we've been"},
		{"the dog 's toy", "the dog's toy"},
		{"do not", "do not"}, // the Rust decoder's " do not" rule is not Python's
		{"a ' b", "a'b"},
	}
	for _, tc := range tests {
		if got := CleanUpTokenization(tc.in); got != tc.want {
			t.Errorf("CleanUpTokenization(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDecodeText(t *testing.T) {
	bert := load(t, "bert-base-uncased")
	ids, _ := EncodeSpecial(bert, "It's a dog, isn't it?")
	if got := bert.Decode(ids, true); got != "it ' s a dog, isn ' t it?" {
		t.Errorf("Decode = %q", got)
	}
	if got, want := DecodeText(bert, ids), "it's a dog, isn't it?"; got != want {
		t.Errorf("DecodeText = %q, want %q", got, want)
	}
	gpt2 := load(t, "gpt2")
	ids, _ = gpt2.Encode("It's a dog , yes .")
	if got, want := DecodeText(gpt2, ids), "It's a dog , yes ."; got != want {
		t.Errorf("GPT-2 DecodeText = %q, want %q (no clean-up by default)", got, want)
	}
	// The word-piece decoder's own per-token clean-up, as in tokenizers.
	if got := (wordPieceDecoder{prefix: "##", cleanup: true}).decode([]string{"a", "do", "not", "##s", ".", "'", "s"}); got != "a do nots. ' s" {
		t.Errorf("wordpiece decode = %q", got)
	}
}
