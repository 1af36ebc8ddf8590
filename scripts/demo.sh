#!/usr/bin/env bash
# The main job, run by `make demo`: the torch runtime, then VGG16+LSTM trained from YAML on a
# synthetic shapes dataset, evaluated on held-out images with the COCO caption metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin/imgcap}

echo "== imgcap env: the torch runtime on this machine"
"$BIN" env
echo
echo "== imgcap synth: 1,200 synthetic scenes with 5 true captions each, in Flickr8k's layout"
if [ ! -f runs/demo-data/Flickr8k.token.txt ]; then
  "$BIN" synth --format flickr8k --n 1200 --out runs/demo-data
fi
"$BIN" data inspect --format flickr-token --annotations runs/demo-data/Flickr8k.token.txt \
  --images runs/demo-data/Images \
  --splits runs/demo-data/Flickr_8k.trainImages.txt,runs/demo-data/Flickr_8k.devImages.txt,runs/demo-data/Flickr_8k.testImages.txt
echo
echo "== imgcap train --config configs/demo.yaml (VGG16+LSTM, trained end to end)"
rm -rf runs/demo
"$BIN" train --config configs/demo.yaml
echo
echo "== imgcap eval: held-out test images, beam search 3"
"$BIN" eval --run runs/demo --split test --show 12
