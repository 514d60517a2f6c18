#!/usr/bin/env bash
# MoE experts are streamed: GPTQ of a GLM-4.5-shaped MoE model keeps one expert resident at a time.
# Two generated models differ only in the number of routed experts (4 vs 64, same widths). Peak RSS
# of compressing the 64-expert one must stay within a few experts (fp32 weights + down_proj Hessian)
# of the 4-expert one, whose peak holds the process, the attention/dense weights and the
# activations; a whole MoE layer in fp32 would add 60 experts. Every expert Linear gets GPTQ from
# calibration statistics (calibrate-all-experts: error below round-to-nearest on each).
# usage: cli_moe_stream.sh QUENCH SHARED_DIR SOURCE_DIR
set -u
Q=$1; SHARED=$2; SRC=$3
MM="$(dirname "$Q")/bench/make_model"
. "$SRC/tests/lib.sh"
CAL="$SRC/data/tinystories/tinystories_valid_subset.txt"
H=256; I=512
gen() { "$MM" --preset glm-4.5-air --hidden $H --moe-inter $I --inter $I --experts "$1" --top-k 2 --layers 2 --first-dense 1 \
          --heads 4 --kv-heads 2 --head-dim 64 --vocab 256 --tokenizer bytelevel --out "$2" 2>/dev/null; }
gen 4 "$W/e4" && gen 64 "$W/e64" && ok || bad "make_model"
rss() { sed -n 's/^peak memory *\([0-9.]*\) MB resident.*/\1/p' "$1"; }
for E in 4 64; do
  "$Q" compress "$W/e$E" -o "$W/out$E" --recipe "$SRC/recipes/gptq_w4a16.yaml" --dataset "$CAL" --num-calibration-samples 16 \
    --max-seq-length 128 --holdout 0 --no-sample --quiet > "$W/log$E" 2>&1 && ok || { bad "compress $E experts"; cat "$W/log$E"; }
  R=$W/out$E/quench_report.json
  # attention 4 + dense MLP 3 + shared expert 3 + 3 per routed expert, all GPTQ, each below RTN
  want=$((4 + 3 + 4 + 3 + 3 * E))
  n=$(jq '[.linears[] | select(.algorithm == "gptq" and .output_rel_error < .rtn_output_rel_error)] | length' "$R")
  [ "$n" = "$want" ] && ok || bad "$E experts: $n of $want Linears got GPTQ below round-to-nearest"
  [ "$(jq .calibration.experts_streamed "$R")" = "$E" ] && ok || bad "$E experts: experts_streamed $(jq .calibration.experts_streamed "$R")"
  [ "$(jq .calibration.rtn_fallback_linears "$R")" = 0 ] && ok || bad "$E experts: RTN fallbacks"
done
# the MoE inputs on disk too (--offload-activations): the same checkpoint byte for byte, nothing left
# behind; the same with bf16 activations
mkdir -p "$W/offload"
for a in fp32 bf16; do
  "$Q" compress "$W/e4" -o "$W/ram-$a" --recipe "$SRC/recipes/gptq_w4a16.yaml" --dataset "$CAL" --num-calibration-samples 16 \
    --max-seq-length 128 --holdout 0 --activations $a --no-sample --quiet > /dev/null 2>&1 && ok || bad "in-RAM $a run"
  "$Q" compress "$W/e4" -o "$W/off-$a" --recipe "$SRC/recipes/gptq_w4a16.yaml" --dataset "$CAL" --num-calibration-samples 16 \
    --max-seq-length 128 --holdout 0 --activations $a --offload-activations "$W/offload" --no-sample --quiet > "$W/olog" 2>&1 \
    && ok || { bad "--offload-activations $a run"; cat "$W/olog"; }
  cmp -s "$W/ram-$a/model.safetensors" "$W/off-$a/model.safetensors" && ok || bad "--offload-activations changed the $a output"
done
[ -z "$(ls -A "$W/offload")" ] && ok || bad "--offload-activations left files behind"
# expert names, shapes and the router carried byte-identical
"$Q" inspect "$W/out64" > "$W/insp" 2>&1 && ok || { bad "inspect"; cat "$W/insp"; }
r4=$(rss "$W/log4"); r64=$(rss "$W/log64")
expert=$(( 3 * H * I * 4 )); hess=$(( I * I * 4 )); layer=$(( 64 * expert ))
budget=$(awk -v a="$r4" -v e=$expert -v h=$hess 'BEGIN { printf "%.1f", a + 4 * (e + h) / 1e6 }')
printf "peak RSS: 4 experts %s MB, 64 experts %s MB (budget %s MB = 4-expert run + 4 x (expert fp32 %.1f MB + Hessian %.1f MB); the 64-expert MoE layer in fp32 is %.0f MB)\n" \
  "$r4" "$r64" "$budget" "$(echo "$expert/1000000" | bc -l)" "$(echo "$hess/1000000" | bc -l)" "$(echo "$layer/1000000" | bc -l)"
if ldd "$Q" 2>/dev/null | grep -q libasan; then
  echo "(AddressSanitizer build: its quarantine keeps freed memory resident, so the RSS bound is not checked)"
else
  [ -n "$r4" ] && [ -n "$r64" ] && awk -v a="$r64" -v b="$budget" 'BEGIN { exit !(a <= b) }' && ok || bad "peak RSS $r64 MB over $budget MB"
fi
finish cli_moe_stream
