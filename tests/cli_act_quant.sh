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
# weight-only schemes: nothing to emulate, both views agree
"$Q" compress "$M" -o "$W/w8" --scheme W8A16 --no-sample --quiet > /dev/null 2>&1 || bad "W8A16 compress"
a=$("$Q" ppl "$W/w8" --text "$T" --mode stories --json --quiet | jq .ppl)
b=$("$Q" ppl "$W/w8" --text "$T" --mode stories --json --quiet --no-act-quant | jq .ppl)
[ "$a" = "$b" ] && ok || bad "W8A16: $a != $b"
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
