#!/usr/bin/env bash
# Evaluation emulates activation quantization as vLLM runs the checkpoint; --no-act-quant is the
# weights-only view. usage: cli_act_quant.sh QUENCH SHARED_DIR SOURCE_DIR
set -u
Q=$1; SHARED=$2; SRC=$3
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL $1"; fails=$((fails+1)); }
T="$SRC/data/tinystories/tinystories_sample.txt"
M="$SHARED/models/stories260K"
for s in W8A8 FP8_DYNAMIC; do
  "$Q" compress "$M" -o "$W/$s" --scheme $s --no-sample --quiet > /dev/null 2>&1 || bad "$s compress"
  a=$("$Q" ppl "$W/$s" --text "$T" --mode stories --json --quiet | jq .ppl)
  b=$("$Q" ppl "$W/$s" --text "$T" --mode stories --json --quiet --no-act-quant | jq .ppl)
  echo "$s: ppl emulated $a, weights only $b"
  awk -v a="$a" -v b="$b" 'BEGIN { exit !(a > b) }' && ok || bad "$s: emulated ppl $a not above weights-only $b"
  c=$("$Q" compare "$M" "$W/$s" --text "$T" --mode stories --json --quiet)
  [ "$(echo "$c" | jq .activation_quantization_emulated)" = true ] && ok || bad "$s: compare does not report emulation"
  [ "$(echo "$c" | jq .compressed_weights_only_ppl)" = "$b" ] && ok || bad "$s: compare weights-only ppl differs from ppl --no-act-quant"
done
# fp8 KV cache: calibrated k_scale/v_scale per attention block, emulated on evaluation
"$Q" compress "$M" -o "$W/kv" --recipe "$SRC/tests/data/recipes/fp8_dynamic_kv_fp8.yaml" \
  --dataset "$SRC/data/tinystories/tinystories_valid_subset.txt" --max-seq-length 512 --no-sample --quiet > /dev/null 2>&1 || bad "kv compress"
[ "$(jq -c '.quantization_config.kv_cache_scheme | [.type, .num_bits, .strategy]' "$W/kv/config.json")" = '["float",8,"tensor"]' ] && ok || bad "kv_cache_scheme in config.json"
"$Q" inspect "$W/kv" > "$W/kv.txt" 2>&1 && grep -q "k_scale/v_scale in 5 of 5 attention blocks" "$W/kv.txt" && ok || bad "inspect: kv scales"
a=$("$Q" ppl "$W/kv" --text "$T" --mode stories --json --quiet | jq .ppl)
d=$("$Q" ppl "$W/FP8_DYNAMIC" --text "$T" --mode stories --json --quiet | jq .ppl)
echo "FP8_DYNAMIC + fp8 KV cache: ppl $a (without the KV cache scheme $d)"
awk -v a="$a" -v b="$d" 'BEGIN { exit !(a > b) }' && ok || bad "fp8 KV emulation: $a not above $d"
err=$("$Q" compress "$M" -o "$W/kv2" --recipe "$SRC/tests/data/recipes/fp8_dynamic_kv_fp8.yaml" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$err" | grep -q -- "--dataset" && ok || bad "kv without --dataset: rc=$rc $err"
# weight-only schemes: nothing to emulate, both views agree
"$Q" compress "$M" -o "$W/w8" --scheme W8A16 --no-sample --quiet > /dev/null 2>&1 || bad "W8A16 compress"
a=$("$Q" ppl "$W/w8" --text "$T" --mode stories --json --quiet | jq .ppl)
b=$("$Q" ppl "$W/w8" --text "$T" --mode stories --json --quiet --no-act-quant | jq .ppl)
[ "$a" = "$b" ] && ok || bad "W8A16: $a != $b"
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
