package runner

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"

	"github.com/imgcap/imgcap/config"
	"github.com/imgcap/imgcap/data"
	"github.com/imgcap/imgcap/eval"
	"github.com/imgcap/imgcap/internal/atomicfile"
	"github.com/imgcap/imgcap/models"
	"github.com/imgcap/imgcap/models/blip"
	"github.com/imgcap/imgcap/torchx"
)

// Retrieval evaluation as BLIP does it (evaluation() and itm_eval() of BLIP's
// train_retrieval.py): every image of a split against every caption of the split. Images and
// texts are ranked by the cosine similarity of their contrastive (ITC) features; then the ITM
// head scores the top k candidates of every query, each getting ITM match logit + ITC similarity,
// and the others −100. Recall@1/5/10 are reported in both directions.

// DefaultRetrievalK is how many ITC candidates ITM re-ranks per query: BLIP's k_test for COCO
// (configs/retrieval_coco.yaml; Flickr30k uses 128).
const DefaultRetrievalK = 256

// RetrievalTextLength is the text length of BLIP's retrieval evaluation (max_length=35 in
// blip_retrieval's tokenizer calls).
const RetrievalTextLength = 35

// RetrievalOptions control EvaluateRetrieval.
type RetrievalOptions struct {
	// K is how many ITC candidates the ITM head re-ranks per query (0: DefaultRetrievalK).
	K int
	// BatchSize is the number of images per vision-model batch (0: 16).
	BatchSize int
	// MaxLength is the longest text in tokens (0: RetrievalTextLength).
	MaxLength int
	// EmbedCacheBytes bounds the image embeddings kept from the ranking pass for the ITM pass
	// (0: 2 GiB); beyond it the images are encoded a second time.
	EmbedCacheBytes int64
}

// RetrievalReport is the result of a retrieval evaluation.
type RetrievalReport struct {
	Split  string `json:"split,omitempty"`
	Images int    `json:"n_images"`
	Texts  int    `json:"n_texts"`
	K      int    `json:"k"`
	// ITC ranks by contrastive similarity alone; Reranked after ITM re-ranking (BLIP's result).
	ITC      *eval.RetrievalResult `json:"itc"`
	Reranked *eval.RetrievalResult `json:"itc_itm"`
	// Metrics are Reranked under BLIP's names (fractions, not percent): txt_r1, txt_r5, txt_r10
	// (image → text), img_r1, img_r5, img_r10 (text → image), their means txt_r_mean and
	// img_r_mean, and r_mean.
	Metrics map[string]float64 `json:"metrics"`
}

// RetrievalMetrics names a retrieval result's recalls as BLIP does (fractions).
func RetrievalMetrics(r *eval.RetrievalResult) map[string]float64 {
	t, i := r.ImageToText, r.TextToImage
	m := map[string]float64{
		"txt_r1": t.R1, "txt_r5": t.R5, "txt_r10": t.R10,
		"img_r1": i.R1, "img_r5": i.R5, "img_r10": i.R10,
	}
	m["txt_r_mean"] = (t.R1 + t.R5 + t.R10) / 3
	m["img_r_mean"] = (i.R1 + i.R5 + i.R10) / 3
	m["r_mean"] = (m["txt_r_mean"] + m["img_r_mean"]) / 2
	return m
}

// retrievalModel is the bundle's BLIP retrieval model, or an error naming what the bundle is.
func (b *hfBundle) retrievalModel() (*blipRetrieval, error) {
	r, ok := b.model.(*blipRetrieval)
	if !ok {
		return nil, fmt.Errorf("the model is a %s model: matching images and texts needs a BLIP retrieval model (BlipForImageTextRetrieval or a blip_retrieval run)", b.arch)
	}
	if b.tok == nil {
		return nil, fmt.Errorf("the %s model folder has no tokenizer files: texts cannot be matched", b.arch)
	}
	return r, nil
}

// encodeTexts tokenizes texts as [CLS] text [SEP] (truncated to maxLen tokens) and collates
// them: ids and attention mask [M, T] on the model's device. itmFirst ≥ 0 replaces column 0.
func (b *hfBundle) encodeTexts(texts []string, maxLen int, itmFirst int64) (*models.Batch, error) {
	enc := blipLabels(b.tok, "", maxLen)
	rows := make([][]int64, len(texts))
	for i, t := range texts {
		ids, err := enc(t)
		if err != nil {
			return nil, fmt.Errorf("text %d: %w", i, err)
		}
		if itmFirst >= 0 {
			ids[0] = itmFirst
		}
		rows[i] = ids
	}
	return models.Collate(nil, nil, rows, b.pad, nil, nil, b.dev)
}

// pixelBatch preprocesses image files into one batch on the model's device.
func (b *hfBundle) pixelBatch(paths []string) (*models.Batch, error) {
	pixels := make([][]float32, len(paths))
	var chw []int64
	for i, p := range paths {
		px, err := b.proc.PreprocessFile(p)
		if err != nil {
			return nil, err
		}
		pixels[i] = px.Data
		chw = []int64{int64(px.C), int64(px.H), int64(px.W)}
	}
	return models.Collate(pixels, chw, nil, 0, nil, paths, b.dev)
}

// evaluateRetrieval ranks the records' images and captions (see the file comment).
func (b *hfBundle) evaluateRetrieval(ctx context.Context, recs []data.Record, o RetrievalOptions) (*RetrievalReport, error) {
	m, err := b.retrievalModel()
	if err != nil {
		return nil, err
	}
	r := m.r
	o.K = cmp.Or(o.K, DefaultRetrievalK)
	o.BatchSize = cmp.Or(o.BatchSize, 16)
	o.MaxLength = cmp.Or(o.MaxLength, RetrievalTextLength)
	o.EmbedCacheBytes = cmp.Or(o.EmbedCacheBytes, 2<<30)
	var texts []string
	var textToImage []int
	for i, rec := range recs {
		for _, c := range rec.Captions {
			texts = append(texts, blip.PreCaption(c, blip.MaxCaptionWords))
			textToImage = append(textToImage, i)
		}
	}
	N, M := len(recs), len(texts)
	if N == 0 || M == 0 {
		return nil, fmt.Errorf("retrieval: %d images and %d captions; need both", N, M)
	}
	rep := &RetrievalReport{Images: N, Texts: M, K: o.K}
	err = torchx.NoGrad(func() error {
		return torchx.WithScope(func(outer *torchx.Scope) (err error) {
			defer torchx.Catch(&err)
			// Texts: contrastive features ([CLS] input) and the ITM inputs.
			tb, err := b.encodeTexts(texts, o.MaxLength, -1)
			torchx.MustOK(err)
			defer tb.Drop()
			itmIDs, itmMask := tb.InputIDs, tb.AttentionMask
			if m.itmFirst >= 0 {
				itmIDs = torchx.Must(blip.ReplaceFirstToken(tb.InputIDs, m.itmFirst))
			}
			var textFeat []float32
			const textBatch = 256
			for t0 := 0; t0 < M; t0 += textBatch {
				n := min(textBatch, M-t0)
				torchx.MustOK(torchx.WithScope(func(*torchx.Scope) (err error) {
					defer torchx.Catch(&err)
					ids := torchx.Must(tb.InputIDs.Narrow(0, int64(t0), int64(n), false))
					mask := torchx.Must(tb.AttentionMask.Narrow(0, int64(t0), int64(n), false))
					f := torchx.Must(r.EncodeTexts(ids, mask))
					v, err := torchx.Float32s(f)
					textFeat = append(textFeat, v...)
					return err
				}))
			}
			D := len(textFeat) / M
			// Images: contrastive features, and the embeddings ITM cross-attends while they fit.
			paths := make([]string, N)
			for i, rec := range recs {
				paths[i] = rec.Path
			}
			var imageFeat []float32
			var embeds []*ts.Tensor // per batch, while caching
			caching := true
			var cached int64
			for i0 := 0; i0 < N; i0 += o.BatchSize {
				if err := ctx.Err(); err != nil {
					return err
				}
				batch := paths[i0:min(i0+o.BatchSize, N)]
				torchx.MustOK(torchx.WithScope(func(s *torchx.Scope) (err error) {
					defer torchx.Catch(&err)
					pb, err := b.pixelBatch(batch)
					torchx.MustOK(err)
					defer pb.Drop()
					e, f := torchx.Must2(r.EncodeImages(pb.Pixels))
					v, err := torchx.Float32s(f)
					torchx.MustOK(err)
					imageFeat = append(imageFeat, v...)
					if caching {
						cached += int64(e.Numel()) * 4
						if cached <= o.EmbedCacheBytes {
							embeds = append(embeds, s.Keep(e))
						} else {
							caching = false
							embeds = nil // the kept ones are freed with the outer scope
						}
					}
					return nil
				}))
			}
			// ITC similarities [N][M] (the features are normalised: cosine similarities).
			sim := make([][]float32, N)
			fi := torchx.Must(ts.OfSlice(imageFeat))
			fi = torchx.Must(fi.View([]int64{int64(N), int64(D)}, true))
			ft := torchx.Must(ts.OfSlice(textFeat))
			ft = torchx.Must(ft.View([]int64{int64(M), int64(D)}, true))
			ftT := torchx.Must(ft.T(false))
			const simRows = 256
			for i0 := 0; i0 < N; i0 += simRows {
				n := min(simRows, N-i0)
				torchx.MustOK(torchx.WithScope(func(*torchx.Scope) (err error) {
					defer torchx.Catch(&err)
					rows := torchx.Must(fi.Narrow(0, int64(i0), int64(n), false))
					v, err := torchx.Float32s(torchx.Must(rows.Matmul(ftT, false)))
					torchx.MustOK(err)
					for j := 0; j < n; j++ {
						sim[i0+j] = v[j*M : (j+1)*M]
					}
					return nil
				}))
			}
			// The ITM pairs: each image's top-k texts, each text's top-k images.
			kT, kI := min(o.K, M), min(o.K, N)
			pairs := make([][]int, N) // texts to score with image i, sorted
			topT := make([][]int, N)
			for i := range sim {
				topT[i] = topK(len(sim[i]), kT, func(t int) float32 { return sim[i][t] })
				pairs[i] = append(pairs[i], topT[i]...)
			}
			topI := make([][]int, M)
			for t := 0; t < M; t++ {
				topI[t] = topK(N, kI, func(i int) float32 { return sim[i][t] })
				for _, i := range topI[t] {
					pairs[i] = append(pairs[i], t)
				}
			}
			for i := range pairs {
				slices.Sort(pairs[i])
				pairs[i] = slices.Compact(pairs[i])
			}
			// ITM logits of the pairs, image by image.
			itm := make([]map[int]float32, N)
			const maxRows = 128
			for i0 := 0; i0 < N; i0 += o.BatchSize {
				if err := ctx.Err(); err != nil {
					return err
				}
				n := min(o.BatchSize, N-i0)
				torchx.MustOK(torchx.WithScope(func(*torchx.Scope) (err error) {
					defer torchx.Catch(&err)
					var e *ts.Tensor
					if caching {
						e = embeds[i0/o.BatchSize]
					} else {
						pb, err := b.pixelBatch(paths[i0 : i0+n])
						torchx.MustOK(err)
						defer pb.Drop()
						e, _ = torchx.Must2(r.EncodeImages(pb.Pixels))
					}
					for j := 0; j < n; j++ {
						i := i0 + j
						img := torchx.Must(e.Narrow(0, int64(j), 1, false))
						itm[i] = make(map[int]float32, len(pairs[i]))
						for p0 := 0; p0 < len(pairs[i]); p0 += maxRows {
							chunk := pairs[i][p0:min(p0+maxRows, len(pairs[i]))]
							torchx.MustOK(torchx.WithScope(func(*torchx.Scope) (err error) {
								defer torchx.Catch(&err)
								idx := make([]int64, len(chunk))
								for k, t := range chunk {
									idx[k] = int64(t)
								}
								it := torchx.Must(ts.OfSlice(idx))
								if b.dev != gotch.CPU {
									it = torchx.Must(it.To(b.dev, true))
								}
								ids := torchx.Must(itmIDs.IndexSelect(0, it, false))
								mask := torchx.Must(itmMask.IndexSelect(0, it, false))
								lg, err := r.PairLogits(img, ids, mask)
								torchx.MustOK(err)
								for k, t := range chunk {
									itm[i][t] = lg[k][1]
								}
								return nil
							}))
						}
					}
					return nil
				}))
			}
			// Scores: ITC alone; ITM + ITC on the top k, −100 elsewhere (BLIP's fill value).
			dense := func(fill func(i, t int) float64) [][]float64 {
				out := make([][]float64, N)
				for i := range out {
					row := make([]float64, M)
					for t := range row {
						row[t] = fill(i, t)
					}
					out[i] = row
				}
				return out
			}
			if rep.ITC, err = eval.Retrieval(dense(func(i, t int) float64 { return float64(sim[i][t]) }), textToImage); err != nil {
				return err
			}
			i2t := dense(func(int, int) float64 { return -100 })
			for i, top := range topT {
				for _, t := range top {
					i2t[i][t] = float64(itm[i][t]) + float64(sim[i][t])
				}
			}
			a, err := eval.Retrieval(i2t, textToImage)
			torchx.MustOK(err)
			t2i := i2t
			for i := range t2i {
				for t := range t2i[i] {
					t2i[i][t] = -100
				}
			}
			for t, is := range topI {
				for _, i := range is {
					t2i[i][t] = float64(itm[i][t]) + float64(sim[i][t])
				}
			}
			bres, err := eval.Retrieval(t2i, textToImage)
			torchx.MustOK(err)
			rep.Reranked = &eval.RetrievalResult{ImageToText: a.ImageToText, TextToImage: bres.TextToImage}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	rep.Metrics = RetrievalMetrics(rep.Reranked)
	return rep, nil
}

// topK returns the indices of the k largest of n scores, best first (ties: lower index first).
func topK(n, k int, score func(int) float32) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(score(b), score(a)) })
	return idx[:k]
}

// printRetrieval writes a retrieval report as a table.
func printRetrieval(w io.Writer, rep *RetrievalReport) {
	fmt.Fprintf(w, "retrieval%s: %d images, %d texts; ITM re-ranks the top %d ITC candidates of each query\n",
		map[bool]string{true: " (" + rep.Split + " split)", false: ""}[rep.Split != ""], rep.Images, rep.Texts, rep.K)
	fmt.Fprintf(w, "%-24s %7s %7s %7s %8s %8s\n", "", "R@1", "R@5", "R@10", "med.rank", "mean")
	row := func(name string, s eval.RetrievalScores) {
		fmt.Fprintf(w, "%-24s %7.2f %7.2f %7.2f %8.1f %8.1f\n", name, 100*s.R1, 100*s.R5, 100*s.R10, s.MedianRank, s.MeanRank)
	}
	row("image→text ITC+ITM", rep.Reranked.ImageToText)
	row("text→image ITC+ITM", rep.Reranked.TextToImage)
	row("image→text ITC only", rep.ITC.ImageToText)
	row("text→image ITC only", rep.ITC.TextToImage)
	fmt.Fprintf(w, "r_mean %.2f (percent, as BLIP reports)\n", 100*rep.Metrics["r_mean"])
}

// EvaluateRetrieval ranks a dataset split's images and captions with a BLIP retrieval model
// folder or blip_retrieval run (ITC, then ITM re-ranking of the top k), prints the table to
// env.Out and writes retrieval.json into o.OutDir (default: RUN/eval-SPLIT for runs,
// runs/eval-NAME-SPLIT for folders). imgcap eval reaches the same evaluation with ro's defaults.
func EvaluateRetrieval(ctx context.Context, dir string, dc config.DataConfig, ec config.EvalConfig, o EvalOptions, ro RetrievalOptions, env Env) (*RetrievalReport, error) {
	b, err := openInference(dir, env)
	if err != nil {
		return nil, err
	}
	o.Split = cmp.Or(o.Split, ec.Split)
	if o.OutDir == "" {
		o.OutDir = filepath.Join(dir, "eval-"+o.Split)
		if !isRunDir(dir) {
			o.OutDir = filepath.Join("runs", "eval-"+filepath.Base(filepath.Clean(dir))+"-"+o.Split)
		}
	}
	recs, err := splitRecords(dc, o)
	if err != nil {
		return nil, err
	}
	ro.BatchSize = cmp.Or(ro.BatchSize, ec.BatchSize)
	rep, err := b.evaluateRetrieval(ctx, recs, ro)
	if err != nil {
		return nil, err
	}
	rep.Split = o.Split
	return rep, reportRetrieval(rep, o.OutDir, env)
}

// reportRetrieval prints a retrieval report and writes it to outDir/retrieval.json.
func reportRetrieval(rep *RetrievalReport, outDir string, env Env) error {
	printRetrieval(env.out(), rep)
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(outDir, "retrieval.json"), append(data, '\n'))
}

// evaluateRetrievalMetrics is the blip_retrieval family's evaluation: for the trainer (o zero:
// metrics of the validation records) and for EvaluateModel (a split, reported and written to
// o.OutDir). The score report's Corpus holds RetrievalReport.Metrics.
func evaluateRetrievalMetrics(ctx context.Context, b *hfBundle, recs []data.Record, ec config.EvalConfig, o EvalOptions, env Env) (*eval.ScoreReport, error) {
	rep, err := b.evaluateRetrieval(ctx, recs, RetrievalOptions{BatchSize: ec.BatchSize})
	if err != nil {
		return nil, err
	}
	rep.Split = o.Split
	if o.OutDir != "" {
		if err := reportRetrieval(rep, o.OutDir, env); err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0, len(rep.Metrics))
	for k := range rep.Metrics {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return &eval.ScoreReport{Result: &eval.Result{Metrics: keys, NumImages: rep.Images, Corpus: rep.Metrics}}, nil
}

// splitRecords loads the records of split o.Split of the dataset dc, at most o.MaxImages.
func splitRecords(dc config.DataConfig, o EvalOptions) ([]data.Record, error) {
	ds, err := LoadDataset(dc, 0)
	if err != nil {
		return nil, err
	}
	recs := ds.Split(o.Split)
	if len(recs) == 0 {
		return nil, fmt.Errorf("split %q has no images (splits: %v)", o.Split, ds.Splits())
	}
	if o.MaxImages > 0 && len(recs) > o.MaxImages {
		recs = recs[:o.MaxImages]
	}
	return recs, nil
}

// MatchResult holds the scores of every image-text pair, indexed [image][text].
type MatchResult struct {
	Images []string `json:"images"`
	Texts  []string `json:"texts"`
	// ITMProb is the ITM head's match probability (softmax of its logits, index 1).
	ITMProb [][]float32 `json:"itm_prob"`
	// ITMLogits are the ITM head's logits [no match, match].
	ITMLogits [][][2]float32 `json:"itm_logits"`
	// ITC is the cosine similarity of the contrastive image and text features.
	ITC [][]float32 `json:"itc"`
}

// MatchFiles scores every image file against every text with a BLIP retrieval model folder (or
// hub id, or blip_retrieval run): ITM match probabilities and ITC similarities. Texts are
// tokenized as Hugging Face's BlipProcessor does ([CLS] text [SEP]).
func MatchFiles(ctx context.Context, model string, images, texts []string, env Env) (*MatchResult, error) {
	if len(images) == 0 || len(texts) == 0 {
		return nil, fmt.Errorf("match: %d images and %d texts; need at least one of each", len(images), len(texts))
	}
	b, err := openInference(model, env)
	if err != nil {
		return nil, err
	}
	m, err := b.retrievalModel()
	if err != nil {
		return nil, err
	}
	res := &MatchResult{Images: images, Texts: texts}
	maxLen := m.r.Cfg.Text.MaxPositionEmbeddings
	err = torchx.NoGrad(func() error {
		const batch = 8
		for i0 := 0; i0 < len(images); i0 += batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			err := torchx.WithScope(func(*torchx.Scope) error {
				pb, err := b.pixelBatch(images[i0:min(i0+batch, len(images))])
				if err != nil {
					return err
				}
				defer pb.Drop()
				tb, err := b.encodeTexts(texts, maxLen, -1)
				if err != nil {
					return err
				}
				defer tb.Drop()
				s, err := m.r.Match(pb.Pixels, tb.InputIDs, tb.AttentionMask)
				if err != nil {
					return err
				}
				if m.itmFirst >= 0 {
					// ITM reads [ENC] where the original BLIP put it; ITC keeps [CLS].
					eb, err := b.encodeTexts(texts, maxLen, m.itmFirst)
					if err != nil {
						return err
					}
					defer eb.Drop()
					se, err := m.r.Match(pb.Pixels, eb.InputIDs, eb.AttentionMask)
					if err != nil {
						return err
					}
					s.ITMLogits, s.ITMProb = se.ITMLogits, se.ITMProb
				}
				res.ITMProb = append(res.ITMProb, s.ITMProb...)
				res.ITMLogits = append(res.ITMLogits, s.ITMLogits...)
				res.ITC = append(res.ITC, s.ITC...)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// familyEvalHook is the trainer's periodic evaluation for a family with its own evaluation: (at
// most eval.max_images of) the validation records.
func familyEvalHook(f *hfFamily, b *hfBundle, cfg config.Config, valRecs []data.Record, env Env) func(context.Context, int) (map[string]float64, error) {
	if cfg.Eval.MaxImages > 0 && len(valRecs) > cfg.Eval.MaxImages {
		valRecs = valRecs[:cfg.Eval.MaxImages]
	}
	return func(ctx context.Context, step int) (map[string]float64, error) {
		rep, err := f.evaluate(ctx, b, valRecs, cfg.Eval, EvalOptions{}, env)
		if err != nil {
			return nil, err
		}
		return rep.Corpus, nil
	}
}

// evaluateFamily is EvaluateModel for a family with its own evaluation: the split's records
// (at most o.MaxImages), scored, reported and written to o.OutDir.
func evaluateFamily(ctx context.Context, f *hfFamily, b *hfBundle, dc config.DataConfig, ec config.EvalConfig, o EvalOptions, env Env) (*eval.ScoreReport, error) {
	o.Split = cmp.Or(o.Split, ec.Split)
	recs, err := splitRecords(dc, o)
	if err != nil {
		return nil, err
	}
	return f.evaluate(ctx, b, recs, ec, o, env)
}
