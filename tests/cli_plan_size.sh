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
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
