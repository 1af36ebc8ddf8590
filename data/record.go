package data

import (
	"fmt"
	"sort"
	"strings"
)

// Record is one image with its captions.
type Record struct {
	// ID is a numeric image id for COCO-style results JSON: the COCO image id (COCO files, Karpathy
	// cocoid), else the Flickr photo id that starts the file name (1000268201_693b08cb0e.jpg -> 1000268201)
	// when every image has a distinct one, else the image's 1-based position in the annotation files.
	// Dataset.IDScheme says which.
	ID int64
	// Name is the image file name as the annotations give it, relative to the images directory, with
	// '/' separators (Karpathy COCO: "val2014/COCO_val2014_000000391895.jpg").
	Name string
	// Path is Name joined to LoadOptions.ImagesDir (Name itself when no directory was given).
	Path string
	// Split is the split the image belongs to (train, val, test, restval, ...) or "" when unassigned.
	Split string
	// Captions are the cleaned captions: surrounding whitespace removed, inner whitespace runs (newlines,
	// tabs, double spaces) collapsed to one space. Order: caption number (Flickr), annotation id (COCO),
	// file order (Kaggle CSV, Karpathy).
	Captions []string
	// RawCaptions are the captions exactly as in the file, parallel to Captions.
	RawCaptions []string
	// CaptionIDs are parallel to Captions: the COCO annotation id, the Karpathy sentid, the Flickr caption
	// number n of name.jpg#n, or the row's position among the image's rows (Kaggle captions.txt).
	CaptionIDs []int64
}

// Format names an annotation file layout.
type Format string

// The supported annotation formats.
const (
	// FormatAuto detects the format from each file's name and content.
	FormatAuto Format = "auto"
	// FormatFlickrToken is Flickr8k.token.txt / Flickr8k.lemma.token.txt / Flickr30k results_20130124.token:
	// lines "name.jpg#n<TAB>caption".
	FormatFlickrToken Format = "flickr-token"
	// FormatFlickr8kCSV is the Kaggle Flickr8k captions.txt: CSV with header "image,caption".
	FormatFlickr8kCSV Format = "flickr8k-csv"
	// FormatFlickr30kCSV is the Kaggle Flickr30k results.csv: "image_name| comment_number| comment".
	FormatFlickr30kCSV Format = "flickr30k-csv"
	// FormatKarpathy is Karpathy's dataset_{flickr8k,flickr30k,coco}.json with per-image splits.
	FormatKarpathy Format = "karpathy"
	// FormatCOCO is MS-COCO captions_{train,val}{2014,2017}.json.
	FormatCOCO Format = "coco"
)

// Formats lists the concrete formats, for help texts and errors.
var Formats = []Format{FormatFlickrToken, FormatFlickr8kCSV, FormatFlickr30kCSV, FormatKarpathy, FormatCOCO}

// ParseFormat maps a user-given name to a Format; "" means auto.
func ParseFormat(s string) (Format, error) {
	f := Format(strings.ToLower(strings.TrimSpace(s)))
	if f == "" || f == FormatAuto {
		return FormatAuto, nil
	}
	for _, k := range Formats {
		if f == k {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown data format %q (want auto, %s)", s, joinFormats())
}

func joinFormats() string {
	s := make([]string, len(Formats))
	for i, f := range Formats {
		s[i] = string(f)
	}
	return strings.Join(s, ", ")
}

// Reason classifies a Problem.
type Reason string

// Problem reasons.
const (
	ReasonMalformed      Reason = "malformed"           // a line, row or JSON value does not follow the format
	ReasonEmptyCaption   Reason = "empty caption"       // a caption that is empty after cleaning
	ReasonDuplicate      Reason = "duplicate key"       // an image, caption key or annotation id seen before
	ReasonUnknownImage   Reason = "unknown image"       // a caption or split list names an image not in the annotations
	ReasonMissingImage   Reason = "missing image file"  // the image file is not in the images directory
	ReasonSplitConflict  Reason = "split conflict"      // an image listed in two split files
	ReasonAnomalousKey   Reason = "anomalous image key" // Flickr8k "name.jpg.1#0": a key with a suffix after the extension
	ReasonRepairedRow    Reason = "repaired row"        // a row with a known defect that was read after repair
	ReasonInvalidCaption Reason = "invalid caption"     // a caption that is not valid UTF-8
)

// Action says what the loader did about a Problem.
type Action string

// Problem actions.
const (
	// ActionSkipped: the line, caption or image was left out. Without LoadOptions.SkipBad, Load fails instead.
	ActionSkipped Action = "skipped"
	// ActionMerged: the captions were attached to the image the key evidently means (always done, reported).
	ActionMerged Action = "merged"
	// ActionRepaired: the row was read after fixing a known defect (always done, reported).
	ActionRepaired Action = "repaired"
)

// Problem is one defect found in the input, located by file and line or JSON path.
type Problem struct {
	File   string // annotation, split or image path
	Line   int    // 1-based line, 0 when not applicable
	Column int    // 1-based byte column for JSON files, 0 when not applicable
	Path   string // JSON path ($.annotations[17].caption), "" for text files
	Reason Reason
	Action Action
	Detail string
}

// Error formats the problem as file:line[:col]: [path: ]reason: detail.
func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Column > 0 {
			fmt.Fprintf(&b, ":%d", p.Column)
		}
	}
	b.WriteString(": ")
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(string(p.Reason))
	if p.Detail != "" {
		b.WriteString(": ")
		b.WriteString(p.Detail)
	}
	return b.String()
}

// Dataset is the result of Load.
type Dataset struct {
	Format   Format    // the format of the annotation files (detected when auto)
	Files    []string  // the annotation files read, in order
	Records  []Record  // images in annotation order (first appearance)
	Problems []Problem // every defect found; those with ActionSkipped were left out
	IDScheme string    // how Record.ID was assigned: IDCOCO, IDFlickrPhoto or IDPosition
}

// Record.ID schemes.
const (
	IDCOCO        = "coco"         // COCO image id from the annotations
	IDFlickrPhoto = "flickr-photo" // the leading decimal number of the file name (the Flickr photo id)
	IDPosition    = "position"     // 1-based position of the image in the annotation files
)

// Split returns the records of one split, in dataset order.
func (d *Dataset) Split(name string) []Record {
	var out []Record
	for _, r := range d.Records {
		if r.Split == name {
			out = append(out, r)
		}
	}
	return out
}

// Splits returns the split names present, train/val/test first, then others sorted; "" (unassigned) last.
func (d *Dataset) Splits() []string {
	seen := map[string]bool{}
	for _, r := range d.Records {
		seen[r.Split] = true
	}
	names := make([]string, 0, len(seen))
	for s := range seen {
		names = append(names, s)
	}
	sortSplitNames(names)
	return names
}

// splitRank orders split names for display.
func splitRank(s string) int {
	switch s {
	case "train":
		return 0
	case "restval":
		return 1
	case "val":
		return 2
	case "test":
		return 3
	case "":
		return 5
	}
	return 4
}

func sortSplitNames(names []string) {
	sort.Slice(names, func(i, j int) bool {
		ri, rj := splitRank(names[i]), splitRank(names[j])
		if ri != rj {
			return ri < rj
		}
		return names[i] < names[j]
	})
}
