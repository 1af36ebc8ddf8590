package data

import (
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// SplitFraction is one part of a seeded random split: Fraction of the images go to split Name.
type SplitFraction struct {
	Name     string
	Fraction float64
}

// ParseSplitFractions parses "train=0.8,val=0.1,test=0.1". Fractions must be positive and sum to at
// most 1; images beyond the sum stay unassigned.
func ParseSplitFractions(s string) ([]SplitFraction, error) {
	var out []SplitFraction
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("split fraction %q: want name=fraction", part)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return nil, fmt.Errorf("split fraction %q: %v", part, err)
		}
		out = append(out, SplitFraction{Name: strings.TrimSpace(name), Fraction: f})
	}
	if err := checkFractions(out); err != nil {
		return nil, err
	}
	return out, nil
}

func checkFractions(fr []SplitFraction) error {
	if len(fr) == 0 {
		return fmt.Errorf("split fractions: none given")
	}
	sum := 0.0
	seen := map[string]bool{}
	for _, f := range fr {
		if f.Name == "" {
			return fmt.Errorf("split fractions: empty split name")
		}
		if seen[f.Name] {
			return fmt.Errorf("split fractions: split %q given twice", f.Name)
		}
		seen[f.Name] = true
		if !(f.Fraction > 0 && f.Fraction <= 1) {
			return fmt.Errorf("split fractions: %s=%v, want a fraction in (0, 1]", f.Name, f.Fraction)
		}
		sum += f.Fraction
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("split fractions sum to %v, want at most 1", sum)
	}
	return nil
}

// seededSplit assigns images to splits at random, reproducibly: the images are put in byte order of their
// names (so the result does not depend on the annotation file's order or format), shuffled with a stream
// derived from seed, and cut at the rounded cumulative fractions. Each image gets exactly one split (or
// none when the fractions sum to less than 1).
func seededSplit(names []string, fr []SplitFraction, seed uint64) []string {
	order := make([]int32, len(names))
	for i := range order {
		order[i] = int32(i)
	}
	sort.Slice(order, func(a, b int) bool { return names[order[a]] < names[order[b]] })
	shuffle(newPCG(seed, purposeSplit), order)
	out := make([]string, len(names))
	n := float64(len(names))
	cum, start := 0.0, 0
	for _, f := range fr {
		cum += f.Fraction
		end := int(math.Round(math.Min(cum, 1) * n))
		for _, i := range order[start:end] {
			out[i] = f.Name
		}
		start = end
	}
	return out
}

// splitSpec is one split file with the split it defines.
type splitSpec struct {
	name, file string
}

// parseSplitSpecs turns "name=path" or "path" entries into specs; a bare path's split comes from its
// file name (see splitNameFromFile).
func parseSplitSpecs(entries []string) ([]splitSpec, error) {
	var out []splitSpec
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if name, file, ok := strings.Cut(e, "="); ok && isSplitName(name) {
			out = append(out, splitSpec{name: name, file: file})
			continue
		}
		name, err := splitNameFromFile(e)
		if err != nil {
			return nil, err
		}
		out = append(out, splitSpec{name: name, file: e})
	}
	return out, nil
}

func isSplitName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// splitNameFromFile names the split a list file defines: Flickr_8k.trainImages.txt -> train,
// Flickr_8k.devImages.txt -> val ("dev" is read as "val" so that every dataset has train/val/test),
// flickr30k_entities test.txt -> test.
func splitNameFromFile(file string) (string, error) {
	base := strings.ToLower(filepath.Base(file))
	for _, c := range []struct{ key, name string }{{"restval", "restval"}, {"train", "train"}, {"dev", "val"}, {"val", "val"}, {"test", "test"}} {
		if strings.Contains(base, c.key) {
			return c.name, nil
		}
	}
	return "", fmt.Errorf("split file %s: cannot tell the split from its name (want train, dev, val, test or restval in it); write name=%s", file, file)
}

// imageLookup finds images by the names split lists use: the full name, the base name, or the base name
// without extension (Flickr30k lists bare ids like 1000092795).
type imageLookup struct {
	byKey map[string]int // -1 marks an ambiguous key
}

func newImageLookup(names []string) *imageLookup {
	l := &imageLookup{byKey: make(map[string]int, 2*len(names))}
	add := func(k string, i int, exact bool) {
		if j, ok := l.byKey[k]; ok && j != i {
			if !exact {
				l.byKey[k] = -1
				return
			}
		}
		l.byKey[k] = i
	}
	for i, n := range names { // short forms first, then exact names override them
		base := path.Base(n)
		add(base, i, false)
		add(strings.TrimSuffix(base, path.Ext(base)), i, false)
	}
	for i, n := range names {
		add(n, i, true)
	}
	return l
}

func (l *imageLookup) find(key string) (int, bool) {
	i, ok := l.byKey[key]
	return i, ok && i >= 0
}

// assignSplitFiles sets splits from list files. Images in no list stay unassigned (""). A name not in the
// annotations, or an image listed twice, is a problem (the first listing wins).
func assignSplitFiles(specs []splitSpec, names []string, splits []string) ([]Problem, error) {
	for i := range splits {
		splits[i] = ""
	}
	type first struct {
		file string
		line int
	}
	where := make([]first, len(names))
	look := newImageLookup(names)
	var problems []Problem
	for _, sp := range specs {
		data, err := os.ReadFile(sp.file)
		if err != nil {
			return nil, fmt.Errorf("split file: %w", err)
		}
		parseSplitList(data, func(line int, key string) {
			p := Problem{File: sp.file, Line: line, Action: ActionSkipped}
			i, ok := look.find(key)
			switch {
			case !ok:
				p.Reason, p.Detail = ReasonUnknownImage, fmt.Sprintf("%q (split %s) is not in the annotations", clip(key), sp.name)
			case where[i].file == "":
				splits[i] = sp.name
				where[i] = first{sp.file, line}
				return
			case splits[i] == sp.name:
				p.Reason, p.Detail = ReasonDuplicate, fmt.Sprintf("%s listed again (first at %s:%d)", names[i], where[i].file, where[i].line)
			default:
				p.Reason, p.Detail = ReasonSplitConflict, fmt.Sprintf("%s is in split %s (%s:%d) and in split %s; kept in %s", names[i], splits[i], where[i].file, where[i].line, sp.name, splits[i])
			}
			problems = append(problems, p)
		})
	}
	return problems, nil
}
