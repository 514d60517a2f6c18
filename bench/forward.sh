#!/usr/bin/env bash
# Forward-pass benchmark on a tinyllama-1.1b-shaped model (4 layers, random bf16 weights):
# tokens/s of `quench ppl` with 1 thread and all threads, and the forward's matrix-product rate
# against OpenBLAS sgemm of the same shapes. Prints figures; never fails on time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh build >/dev/null
M=bench/out/tinyllama-1.1b-4l
mkdir -p bench/out
[ -f "$M/config.json" ] || build/bench/make_model --preset tinyllama-1.1b --layers 4 --out "$M"
N=$(nproc)
for t in 1 "$N"; do
  echo "== $t thread(s)"
  OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t build/bench/forward "$M" --tokens 512 --windows 2
  OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t build/quench ppl "$M" --text data/wikitext-2-raw/wiki.test.raw \
    --max-tokens 1022 --json --quiet | grep -E '"(tokens_scored|tokens_per_second)"'
done
