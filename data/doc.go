// Package data reads image-caption datasets (Flickr8k, Flickr30k, MS-COCO and the Karpathy splits) into
// records, assigns splits, summarizes them (imgcap data inspect), and feeds training and evaluation
// through a deterministic parallel batch loader.
//
// Everything here is pure Go: image decoding, tokenizing and tensor building are done by the caller's
// per-item function given to the Loader.
//
// # Formats
//
// Load reads these files (Format names in parentheses; FormatAuto tells them apart by content):
//
//   - Flickr8k.token.txt, Flickr8k.lemma.token.txt, Flickr30k results_20130124.token (flickr-token):
//     "name.jpg#n<TAB>caption". Splits come from Flickr_8k.{train,dev,test}Images.txt or the
//     flickr30k_entities {train,val,test}.txt lists (bare ids), given as LoadOptions.SplitFiles.
//   - Kaggle Flickr8k captions.txt (flickr8k-csv): CSV "image,caption" read with encoding/csv.
//   - Kaggle Flickr30k results.csv (flickr30k-csv): "image_name| comment_number| comment".
//   - MS-COCO captions_{train,val}{2014,2017}.json (coco), one or several files.
//   - Karpathy dataset_{flickr8k,flickr30k,coco}.json (karpathy), with per-image train/val/test/restval.
//
// # Quirks and how they are handled
//
//   - Flickr8k "2258277193_586949ec62.jpg.1#0": the image has #1..#4 and no #0, so the key is read as
//     "2258277193_586949ec62.jpg#0" (merged, reported with ActionMerged). The image is in no split list.
//   - Kaggle captions.txt: quoted captions with commas and doubled quotes are real CSV; the header may be
//     "image, caption". Rows of an image need not be consecutive.
//   - results.csv: the row "2199200615.jpg| 4   A dog runs across the grass ." lacks its second '|'; it is
//     repaired (ActionRepaired) because it is unambiguous. Copies where '|' became ',' (captions cut at their
//     first comma) are refused with an explanation.
//   - COCO: annotations are unsorted and not grouped; captions are ordered by annotation id. Captions with
//     stray spaces or newlines are cleaned (Record.Captions) and kept verbatim (Record.RawCaptions). Images
//     with 6 captions keep all 6. A COCO results file given as annotations is recognized and refused.
//   - Karpathy Flickr8k copies with blanked test sentences: records without captions are kept.
//   - Karpathy restval: merged into train by default (LoadOptions.Restval).
//   - Text files may have a UTF-8 BOM, CRLF line ends, blank lines and no final newline; a space instead
//     of the TAB after "#n" is accepted.
//
// Bad input (malformed lines or JSON values, empty or invalid-UTF-8 captions, duplicate keys, captions
// or split entries naming unknown images, missing image files) makes Load fail with a LoadError naming
// file and line or JSON path; with LoadOptions.SkipBad the bad parts are left out and reported in
// Dataset.Problems. JSON syntax errors and unknown formats always fail.
//
// # Image ids
//
// Every record has a numeric Record.ID for COCO-style results: the COCO id, else the Flickr photo id
// that begins the file name when these are distinct (the same for every Flickr format), else the
// 1-based position. Dataset.IDScheme says which.
//
// # Splits
//
// Split lists (LoadOptions.SplitFiles) win, then a seeded split (LoadOptions.SplitFractions), then the
// format's own splits. The seeded split depends only on the image names and the seed.
//
// # Loader
//
// Loader runs a caller's TransformFunc on worker goroutines and returns batches in order. Shuffling,
// the PerImage caption choice and each item's *rand.Rand derive from (seed, epoch, index), so batches do
// not depend on the number of workers or on scheduling, and Loader.Iter can resume at any
// (epoch, batch) Position exactly.
package data
