#!/usr/bin/env bash
# GPTQ end to end on a tinyllama-1.1b-shaped model (2 layers, random bf16 weights) with
# SAMPLES x 512 calibration tokens (default 128 x 512): seconds of the calibration forward passes
# (statistics + propagation) and of GPTQ, peak RSS, next to the size of the largest layer in fp32
# + its Hessians + the activations. Then the numerical cores against sgemm (build/bench/gptq_core).
# Prints figures; never fails on time.
set -euo pipefail
cd "$(dirname "$0")/.."
SAMPLES=${SAMPLES:-128}
bash scripts/build.sh build >/dev/null
M=bench/out/tinyllama-1.1b-2l
mkdir -p bench/out
[ -f "$M/config.json" ] || build/bench/make_model --preset tinyllama-1.1b --layers 2 --out "$M" 2>/dev/null
# calibration text: enough TinyStories/WikiText windows for SAMPLES x 512 tokens
CAL=bench/out/calib.txt
[ -f "$CAL" ] || cat data/wikitext-2-raw/wiki.test.raw data/wikitext-2/valid.txt > "$CAL"
OUT=bench/out/gptq-w4a16
/usr/bin/time -v build/quench compress "$M" -o "$OUT" --recipe recipes/gptq_w4a16.yaml --dataset "$CAL" \
  --num-calibration-samples "$SAMPLES" --max-seq-length 512 --holdout 0 --overwrite --no-sample --quiet \
  > bench/out/gptq.log 2> bench/out/gptq.time
grep -E "calibration|GPTQ|time " bench/out/gptq.log
rss_kb=$(grep "Maximum resident" bench/out/gptq.time | awk '{print $NF}')
wall=$(grep "Elapsed (wall" bench/out/gptq.time | awk '{print $NF}')
# the model's own sizes: one layer fp32 + its Hessians (q/k/v, o, gate/up: 2048^2; down: 5632^2) + activations
H=2048; I=5632; KV=256
layer=$(( (H*H*2 + H*KV*2 + 3*H*I) * 4 ))
hess=$(( (3*H*H + I*I) * 4 ))
acts=$(( SAMPLES * 512 * H * 4 ))
embed=$(( 32000 * H * 2 ))
need=$(( layer + hess + acts ))
printf "peak RSS       %.0f MB (wall %s)\n" "$(echo "$rss_kb/1000" | bc -l)" "$wall"
printf "budget         layer fp32 %.0f MB + Hessians %.0f MB + activations %.0f MB = %.0f MB (ratio %.2f; the mmapped bf16 embedding %.0f MB is counted in RSS when touched)\n" \
  "$(echo "$layer/1000000" | bc -l)" "$(echo "$hess/1000000" | bc -l)" "$(echo "$acts/1000000" | bc -l)" \
  "$(echo "$need/1000000" | bc -l)" "$(echo "$rss_kb*1000/$need" | bc -l)" "$(echo "$embed/1000000" | bc -l)"
echo "== numerical cores (build/bench/gptq_core)"
build/bench/gptq_core || true
