#!/usr/bin/env bash
# The main job on the bundled default: install dependencies, build, then describe, sample and
# evaluate the bundled model (models/stories260K) on the bundled TinyStories / WikiText-2 text.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh build
Q=build/quench
M=models/stories260K
echo "== quench info $M"; $Q info $M
echo; echo "== quench generate $M --max-new-tokens 128"; $Q generate $M --max-new-tokens 128
echo; echo "== quench ppl $M --text data/tinystories/tinystories_sample.txt --mode stories"
$Q ppl $M --text data/tinystories/tinystories_sample.txt --mode stories
echo; echo "== quench ppl $M --text data/wikitext-2-raw/wiki.test.raw --max-tokens 65536"
$Q ppl $M --text data/wikitext-2-raw/wiki.test.raw --max-tokens 65536
