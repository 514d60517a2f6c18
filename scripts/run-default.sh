#!/usr/bin/env bash
# The main job on the bundled default: install dependencies, build, compress the bundled model
# (models/stories260K) with the default recipe (recipes/w4a16_channel.yaml: int4 weights, one scale
# per channel, round-to-nearest), then compare the compressed checkpoint with the original on the
# bundled TinyStories text and print the table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh build
Q=build/quench
M=models/stories260K
OUT=out/stories260K-w4a16
mkdir -p out
echo "== quench info $M"; $Q info $M
echo; echo "== quench compress $M -o $OUT --recipe recipes/w4a16_channel.yaml"
$Q compress $M -o $OUT --recipe recipes/w4a16_channel.yaml --overwrite
echo; echo "== quench compare $M $OUT --text data/tinystories/tinystories_sample.txt --mode stories"
$Q compare $M $OUT --text data/tinystories/tinystories_sample.txt --mode stories --prompt "Once upon a time" --max-new-tokens 48
