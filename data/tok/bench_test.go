package tok

import (
	"path/filepath"
	"testing"
)

// benchTexts are the 325 reference captions (COCO-style text plus hard cases).
func benchTexts(b *testing.B) []string {
	var out []string
	for _, c := range gpt2Cases(b) {
		out = append(out, c.Text)
	}
	return out
}

func benchEncode(b *testing.B, tk Tokenizer) {
	texts := benchTexts(b)
	for _, s := range texts { // warm the word cache, as in steady-state training
		if _, err := tk.Encode(s); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		if _, err := tk.Encode(texts[i%len(texts)]); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "captions/s")
}

func benchEncodeParallel(b *testing.B, tk Tokenizer) {
	texts := benchTexts(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := tk.Encode(texts[i%len(texts)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "captions/s")
}

// uncached loads a private copy of a tokenizer with its word cache turned off.
func uncached(b *testing.B, rel string) Tokenizer {
	tk, err := Load(filepath.Join(fixtures(b), rel))
	if err != nil {
		b.Fatal(err)
	}
	switch m := tk.(*pipeline).model.(type) {
	case *bpeModel:
		m.cache = nil
	case *wordPieceModel:
		m.cache = nil
	}
	return tk
}

func BenchmarkEncodeGPT2(b *testing.B)            { benchEncode(b, load(b, "gpt2")) }
func BenchmarkEncodeGPT2NoCache(b *testing.B)     { benchEncode(b, uncached(b, "gpt2")) }
func BenchmarkEncodeGPT2Parallel(b *testing.B)    { benchEncodeParallel(b, load(b, "gpt2")) }
func BenchmarkEncodeBERT(b *testing.B)            { benchEncode(b, load(b, "bert-base-uncased")) }
func BenchmarkEncodeBERTNoCache(b *testing.B)     { benchEncode(b, uncached(b, "bert-base-uncased")) }
func BenchmarkEncodeBERTParallel(b *testing.B)    { benchEncodeParallel(b, load(b, "bert-base-uncased")) }
func BenchmarkEncodeWordVocab(b *testing.B)       { benchEncode(b, BuildWordVocab(benchTexts(b), 1)) }
func BenchmarkDecodeGPT2(b *testing.B)            { benchDecode(b, load(b, "gpt2")) }
func BenchmarkDecodeBERT(b *testing.B)            { benchDecode(b, load(b, "bert-base-uncased")) }
func BenchmarkLoadGPT2TokenizerJSON(b *testing.B) { benchLoad(b, "gpt2/tokenizer.json") }
func BenchmarkLoadGPT2VocabMerges(b *testing.B)   { benchLoad(b, "gpt2/vocab.json") }
func BenchmarkLoadBERTTokenizerJSON(b *testing.B) { benchLoad(b, "bert-base-uncased/tokenizer.json") }
func BenchmarkLoadBERTVocabTxt(b *testing.B)      { benchLoad(b, "bert-base-uncased/vocab.txt") }

func benchDecode(b *testing.B, tk Tokenizer) {
	var all [][]int
	for _, s := range benchTexts(b) {
		ids, _ := tk.Encode(s)
		all = append(all, ids)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = tk.Decode(all[i%len(all)], true)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "captions/s")
}

func benchLoad(b *testing.B, rel string) {
	path := filepath.Join(fixtures(b), rel)
	for i := 0; i < b.N; i++ {
		if _, err := Load(path); err != nil {
			b.Fatal(err)
		}
	}
}
