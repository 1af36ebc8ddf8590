// Package eval scores image captions the way the COCO caption evaluation
// code (pycocoevalcap, tylin/coco-caption) does, and adds what it lacks:
// bootstrap confidence intervals, retrieval recall, and an Evaluator that
// captions a split with a model and writes COCO-style results and scores.
//
// # Numbers equal to pycocoevalcap
//
// PTB tokenization (PTBTokenize): Stanford CoreNLP 3.4.1's PTBTokenizer with
// -preserveLines -lowerCase, re-implemented rule for rule (longest match,
// rule order, JFlex trailing context, %caseless), followed by the wrapper's
// removal of PTB quote tokens (two backquotes, two apostrophes, ` and '),
// dashes (- --), ellipses (...) and . , ; : ? !. Quirks kept: text is
// lower-cased after bracket escaping, so -lrb- -rrb- -lcb- ... stay; "!!",
// "?!" stay; clitics split (is n't, ca n't, child 's); £ -> #, € -> $;
// "5 1/2" is one token with a no-break space; abbreviations keep their
// period. References and candidates are each tokenized as one text, so a
// caption's end may depend on the next caption, as in the reference tool.
//
// BLEU-1..4 (BLEU): clipped n-gram counts summed over the corpus; the
// effective reference length of an image is the reference length closest
// to the candidate's (ties to the shorter); precisions (c+1e-15)/(g+1e-9);
// brevity penalty exp(1-1/r) for r = (len+1e-15)/(reflen+1e-9) < 1.
// Per-image BLEU uses the same formula on the image's own counts.
//
// ROUGE-L (ROUGEL): per image, the maximum LCS precision and the maximum
// LCS recall over references (taken separately), F with beta = 1.2; corpus =
// mean over images; words split on single spaces.
//
// CIDEr-D (CIDErD): n = 1..4, sigma = 6; tf-idf vectors with document
// frequency counted over the reference sets of the images being scored
// (so per-image values depend on the whole set); clipped cosine similarity
// min(c,r)*r/(|c||r|) times a Gaussian length penalty, where the lengths
// are bigram counts (max(0, words-1)), a coco-caption quirk; averaged over
// n, divided by the number of references, times 10; corpus = mean.
//
// These match the fixtures computed with the reference tool within 1e-13
// relative error (see the tests).
//
// # METEOR (no paraphrase)
//
// The official METEOR 1.5 jar and its paraphrase tables are not available.
// Package eval/meteor re-implements METEOR 1.5's method for English: the
// exact, stem (Snowball English) and WordNet synonym modules, function-word
// weighting, the alignment search and the default parameters, but without
// paraphrase matching. It also uses imgcap's own word lists rather than
// METEOR's: its function-word list (meteor.FunctionWords) and the
// abbreviation list of its text normalizer (meteor.Normalize) were written
// for imgcap, not copied from METEOR 1.5 or the Moses tokenizer. For both
// reasons its numbers are not the official METEOR and are labelled
// "METEOR (no paraphrase)" everywhere (KeyMETEOR, meteor.Caveat). It needs
// WordNet 3.0 database files: Debian's wordnet-base, found through
// $IMGCAP_WORDNET_DIR or /usr/share/wordnet; without them METEOR reports
// an error and the other metrics still work.
//
// # Beyond the reference tool
//
// Confidence intervals (Options.Bootstrap): percentile bootstrap over
// images with a seeded generator; every resample recomputes each corpus
// score as the full-set score is computed (BLEU and METEOR from summed
// statistics, ROUGE-L and CIDEr-D as means); CIDEr-D's document frequencies
// stay those of the full set.
//
// Retrieval (Retrieval): image->text and text->image Recall@1/5/10 and
// median/mean rank from a similarity matrix with several texts per image.
//
// Inputs and outputs: ReadCOCORefs (COCO captions annotations),
// ReadCOCOResults / WriteCOCOResults (COCO results [{"image_id",
// "caption"}]), RunScore (the `imgcap score` command), Evaluator (caption a
// split with a model, write results, score, print and save).
package eval
