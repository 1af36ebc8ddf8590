package data_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"

	"github.com/imgcap/imgcap/data"
)

func ExampleLoad() {
	ds, err := data.Load(data.LoadOptions{
		Annotations: []string{"testdata/Flickr8k.token.first200images.txt"},
		SplitFiles:  []string{"testdata/Flickr_8k.trainImages.txt", "testdata/Flickr_8k.devImages.txt", "testdata/Flickr_8k.testImages.txt"},
		SkipBad:     true, // the split lists name 8000 images, this sample has 200
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	r := ds.Records[0]
	fmt.Println(ds.Format, len(ds.Records), len(ds.Split("train")), len(ds.Split("val")), len(ds.Split("test")))
	fmt.Println(r.ID, r.Name, r.Split, r.Captions[0])
	// Output:
	// flickr-token 200 157 23 19
	// 1000268201 1000268201_693b08cb0e.jpg train A child in a pink dress is climbing up a set of stairs in an entry way .
}

func ExampleLoader() {
	ds, err := data.Load(data.LoadOptions{Annotations: []string{"testdata/captions_val2017.coco-mini.json"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	// A transform decodes the image and tokenizes the caption; this one only picks the caption.
	caption := func(ctx context.Context, rec *data.Record, s data.Sample, rng *rand.Rand) (string, error) {
		return rec.Captions[s.Caption], nil
	}
	loader, err := data.NewLoader(ds.Records, data.LoaderOptions[string]{
		Transform: caption, BatchSize: 64, Workers: 4, Seed: 1, Shuffle: true, Unit: data.PerCaption, Epochs: 2,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	n := 0
	var resume data.Position
	for b, err := range loader.All(context.Background(), data.Position{}) {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return
		}
		n += len(b.Items)
		resume = b.Next // save this in checkpoints; Iter/All(ctx, resume) continues exactly here
	}
	fmt.Println(loader.Len(), loader.BatchesPerEpoch(), n, resume)
	// Output:
	// 395 7 790 {2 0}
}
