#!/usr/bin/env bash
# `quench plan` predicts the bytes `quench compress` writes: the tensor bytes are equal, the whole
# folder (safetensors headers, config, tokenizer) within a few KB. usage: cli_plan_size.sh QUENCH SHARED_DIR SOURCE_DIR
set -u
Q=$1; SHARED=$2; SRC=$3
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fails=0; passes=0
M="$SHARED/models/stories260K-hd64"
for s in W4A16 W4A16_ASYM W8A16 W8A8 FP8_DYNAMIC FP8_BLOCK; do
  "$Q" compress "$M" -o "$W/$s" --scheme $s --no-sample --quiet > /dev/null 2>&1 || { echo "FAIL $s compress"; fails=$((fails+1)); continue; }
  p=$("$Q" plan "$M" --scheme $s --json | jq '.size.total.total')
  t=$("$Q" info "$W/$s" --json | jq .tensor_bytes)
  if [ "$p" = "$t" ]; then passes=$((passes+1)); else echo "FAIL $s: plan predicts $p tensor bytes, compress wrote $t"; fails=$((fails+1)); fi
done
# 2:4 (SparseGPT + GPTQ W8A8, sparsity_config format "dense": zeros stored densely)
printf 'sparsity_stage:\n  sparsity_modifiers:\n    SparseGPTModifier:\n      sparsity: 0.5\n      mask_structure: "2:4"\n      ignore: [lm_head]\nquant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      targets: [Linear]\n      scheme: W8A8\n      ignore: [lm_head]\n' > "$W/s24.yaml"
if "$Q" compress "$M" -o "$W/s24" --recipe "$W/s24.yaml" --dataset "$SRC/data/tinystories/tinystories_valid_subset.txt" \
     --max-seq-length 256 --num-calibration-samples 8 --holdout 0 --no-sample --quiet > /dev/null 2>&1; then
  p=$("$Q" plan "$M" --scheme W8A8 --sparsity 2:4 --json | jq '.size.total.total')
  t=$("$Q" info "$W/s24" --json | jq .tensor_bytes)
  if [ "$p" = "$t" ]; then passes=$((passes+1)); else echo "FAIL 2:4: plan predicts $p tensor bytes, compress wrote $t"; fails=$((fails+1)); fi
else
  echo "FAIL 2:4 compress"; fails=$((fails+1))
fi
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
