package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestInspect(t *testing.T) {
	tests := []struct {
		name   string
		opts   LoadOptions
		want   Counts
		splits map[string]Counts
		probs  map[Reason]int
	}{
		{
			name: "flickr8k token + split lists",
			opts: LoadOptions{Annotations: []string{td("Flickr8k.token.first200images.txt")}, SkipBad: true,
				SplitFiles: []string{td("Flickr_8k.trainImages.txt"), td("Flickr_8k.devImages.txt"), td("Flickr_8k.testImages.txt")}},
			// 200 images x 5 captions; split counts from the lists (see TestSplitFilesFlickr8k).
			want: Counts{Images: 200, Captions: 1000, MinCaptions: 5, MeanCaptions: 5, MaxCaptions: 5},
			splits: map[string]Counts{
				"train": {Images: 157, Captions: 785, MinCaptions: 5, MeanCaptions: 5, MaxCaptions: 5},
				"val":   {Images: 23, Captions: 115, MinCaptions: 5, MeanCaptions: 5, MaxCaptions: 5},
				"test":  {Images: 19, Captions: 95, MinCaptions: 5, MeanCaptions: 5, MaxCaptions: 5},
				"":      {Images: 1, Captions: 5, MinCaptions: 5, MeanCaptions: 5, MaxCaptions: 5},
			},
			probs: map[Reason]int{ReasonUnknownImage: 8000 - 199},
		},
		{
			name: "karpathy flickr8k with blanked test captions",
			opts: LoadOptions{Annotations: []string{td("dataset_flickr8k.excerpt.json")}},
			// Fixture README: first 6 records (train, 5 captions) and last 7 (test, sentences []).
			want: Counts{Images: 13, Captions: 30, ImagesWithoutCaptions: 7, MinCaptions: 0, MeanCaptions: 30.0 / 13, MaxCaptions: 5},
			splits: map[string]Counts{
				"train": {Images: 6, Captions: 30, MinCaptions: 5, MeanCaptions: 5, MaxCaptions: 5},
				"test":  {Images: 7, ImagesWithoutCaptions: 7},
			},
		},
		{
			name: "coco with 6-caption images",
			opts: LoadOptions{Annotations: []string{td("captions_val2014.subset47.json")}},
			// Fixture README: 47 images, 238 captions, 44 with 5 and 3 with 6.
			want:   Counts{Images: 47, Captions: 238, MinCaptions: 5, MeanCaptions: 238.0 / 47, MaxCaptions: 6},
			splits: map[string]Counts{"val": {Images: 47, Captions: 238, MinCaptions: 5, MeanCaptions: 238.0 / 47, MaxCaptions: 6}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds, err := Load(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			s := Inspect(ds)
			if s.Counts != tc.want {
				t.Errorf("counts %+v, want %+v", s.Counts, tc.want)
			}
			got := map[string]Counts{}
			for _, sp := range s.Splits {
				got[sp.Name] = sp.Counts
			}
			if !reflect.DeepEqual(got, tc.splits) {
				t.Errorf("splits %+v, want %+v", got, tc.splits)
			}
			probs := map[Reason]int{}
			for _, p := range s.Problems {
				probs[p.Reason] += p.Count
			}
			if len(tc.probs) == 0 {
				tc.probs = map[Reason]int{}
			}
			if !reflect.DeepEqual(probs, tc.probs) {
				t.Errorf("problems %v, want %v", probs, tc.probs)
			}

			// JSON round trip.
			var buf bytes.Buffer
			if err := WriteSummary(&buf, s, true); err != nil {
				t.Fatal(err)
			}
			var back Summary
			if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, s) {
				t.Errorf("JSON round trip:\n%+v\n%+v", back, s)
			}

			// Table: one row per split plus total, numbers as computed.
			buf.Reset()
			if err := WriteSummary(&buf, s, false); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			for _, sp := range s.Splits {
				name := sp.Name
				if name == "" {
					name = `\(unassigned\)`
				}
				re := regexp.MustCompile(`(?m)^\s*` + name + `\s+` + strconv.Itoa(sp.Images) + `\s+` + strconv.Itoa(sp.Captions) + `\s`)
				if !re.MatchString(out) {
					t.Errorf("no row %q in\n%s", re, out)
				}
			}
			if !regexp.MustCompile(`(?m)^\s*total\s+` + strconv.Itoa(s.Images) + `\s+` + strconv.Itoa(s.Captions) + `\s`).MatchString(out) {
				t.Errorf("no total row in\n%s", out)
			}
			if len(s.Problems) > 0 && !strings.Contains(out, s.Problems[0].Example) {
				t.Errorf("problem example missing in\n%s", out)
			}
		})
	}
}

func TestRunInspect(t *testing.T) {
	var buf bytes.Buffer
	err := RunInspect(&buf, InspectOptions{LoadOptions: LoadOptions{Annotations: []string{td("Flickr8k.token.lines6726-6740_anomaly.txt")}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"images              3", "captions            15", "anomalous image key  merged  1"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, buf.String())
		}
	}
	// Bad input without SkipBad: the error lists the problems with file and line.
	err = RunInspect(&buf, InspectOptions{LoadOptions: LoadOptions{Annotations: []string{td("Flickr8k.token.first200images.txt")}, SplitFiles: []string{td("Flickr_8k.testImages.txt")}}})
	var le *LoadError
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "Flickr_8k.testImages.txt:1: unknown image") || !strings.Contains(err.Error(), "... and ") {
		t.Errorf("err %v", err)
	}
}
