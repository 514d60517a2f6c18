#!/usr/bin/env bash
# The main job on the bundled default: install dependencies, build, compress the bundled model
# (models/stories260K) with the default recipe (recipes/gptq_w4a16_channel.yaml: GPTQ int4 weights,
# one scale per channel, calibrated layer by layer on the bundled TinyStories validation text),
# then compare the compressed checkpoint with the original on the bundled TinyStories sample
# (different stories) and print the table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh build
Q=build/quench
M=models/stories260K
OUT=out/stories260K-w4a16
mkdir -p out
echo "== quench info $M"; $Q info $M
CAL=data/tinystories/tinystories_valid_subset.txt
echo; echo "== quench compress $M -o $OUT --recipe recipes/gptq_w4a16_channel.yaml --dataset $CAL --max-seq-length 512"
$Q compress $M -o $OUT --recipe recipes/gptq_w4a16_channel.yaml --dataset $CAL --max-seq-length 512 --overwrite
echo; echo "== quench compare $M $OUT --text data/tinystories/tinystories_sample.txt --mode stories"
$Q compare $M $OUT --text data/tinystories/tinystories_sample.txt --mode stories --prompt "Once upon a time" --max-new-tokens 48
