#!/usr/bin/env bash
# GPTQ end to end: the calibrated pipeline beats round-to-nearest on every Linear and in perplexity.
# usage: cli_gptq.sh QUENCH SHARED_DIR SOURCE_DIR
set -u
Q=$1; SHARED=$2; SRC=$3
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL $1"; fails=$((fails+1)); }
CAL="$SRC/data/tinystories/tinystories_valid_subset.txt"
STORIES="$SRC/data/tinystories/tinystories_sample.txt"
WIKI="$SHARED/data/wikitext-2-raw/wiki.test.raw"
ppl() { "$Q" ppl "$1" --text "$2" ${3:+--mode $3} ${4:+--max-tokens $4} --json --quiet | jq .ppl; }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
recipe() { # recipe FILE MODIFIER STRATEGY_FIELDS
  printf 'quant_stage:\n  quant_modifiers:\n    %s:\n      ignore: [lm_head]\n      config_groups:\n        group_0:\n          targets: [Linear]\n          weights: {num_bits: %s, type: int, symmetric: true, %s}\n' "$2" "$3" "$4" > "$1"
}
for M in stories260K stories260K-hd64; do
  D="$SHARED/models/$M"
  if [ $M = stories260K ]; then strat="strategy: channel"; else strat="strategy: group, group_size: 64"; fi
  recipe "$W/gptq4.yaml" GPTQModifier 4 "$strat"
  recipe "$W/rtn4.yaml" QuantizationModifier 4 "$strat"
  "$Q" compress "$D" -o "$W/$M-gptq4" --recipe "$W/gptq4.yaml" --dataset "$CAL" --max-seq-length 512 --holdout 0 --no-sample --quiet > "$W/out" 2>&1 \
    && ok || { bad "$M GPTQ W4 compress"; cat "$W/out"; }
  "$Q" compress "$D" -o "$W/$M-rtn4" --recipe "$W/rtn4.yaml" --no-sample --quiet > /dev/null 2>&1 && ok || bad "$M RTN W4 compress"
  # every Linear: GPTQ's output error on the calibration data below round-to-nearest's
  n=$(jq '[.linears[] | select(.output_rel_error < .rtn_output_rel_error)] | length' "$W/$M-gptq4/quench_report.json")
  t=$(jq '.linears | length' "$W/$M-gptq4/quench_report.json")
  [ "$t" -ge 35 ] && [ "$n" = "$t" ] && ok || bad "$M: GPTQ beats RTN on $n of $t Linears"
  orig_s=$(ppl "$D" "$STORIES" stories); g_s=$(ppl "$W/$M-gptq4" "$STORIES" stories); r_s=$(ppl "$W/$M-rtn4" "$STORIES" stories)
  orig_w=$(ppl "$D" "$WIKI" "" 16384); g_w=$(ppl "$W/$M-gptq4" "$WIKI" "" 16384); r_w=$(ppl "$W/$M-rtn4" "$WIKI" "" 16384)
  echo "$M W4: tinystories ppl orig $orig_s GPTQ $g_s RTN $r_s; wikitext ppl orig $orig_w GPTQ $g_w RTN $r_w"
  lt "$g_s" "$r_s" && ok || bad "$M tinystories: GPTQ $g_s not below RTN $r_s"
  lt "$g_w" "$r_w" && ok || bad "$M wikitext: GPTQ $g_w not below RTN $r_w"
  # W8A16 GPTQ within 1% of the original
  recipe "$W/gptq8.yaml" GPTQModifier 8 "strategy: channel"
  "$Q" compress "$D" -o "$W/$M-gptq8" --recipe "$W/gptq8.yaml" --dataset "$CAL" --max-seq-length 512 --holdout 0 --no-sample --quiet > /dev/null 2>&1 \
    && ok || bad "$M GPTQ W8 compress"
  g8=$(ppl "$W/$M-gptq8" "$STORIES" stories)
  echo "$M W8: tinystories ppl orig $orig_s GPTQ $g8"
  awk -v a="$g8" -v b="$orig_s" 'BEGIN { exit !(a < b * 1.01 && a > b * 0.99) }' && ok || bad "$M W8 GPTQ $g8 not within 1% of $orig_s"
done
# group sizes 32 and 128 on stories260K-hd64 (widths divide): GPTQ below RTN on every Linear
for g in 32 128; do
  recipe "$W/g$g.yaml" GPTQModifier 4 "strategy: group, group_size: $g"
  "$Q" compress "$SHARED/models/stories260K-hd64" -o "$W/g$g" --recipe "$W/g$g.yaml" --dataset "$CAL" --max-seq-length 512 \
    --holdout 0 --no-sample --quiet > /dev/null 2>&1 && ok || bad "hd64 group $g compress"
  n=$(jq '[.linears[] | select(.output_rel_error < .rtn_output_rel_error)] | length' "$W/g$g/quench_report.json")
  t=$(jq '.linears | length' "$W/g$g/quench_report.json")
  [ "$t" -ge 35 ] && [ "$n" = "$t" ] && ok || bad "hd64 group $g: GPTQ beats RTN on $n of $t Linears"
done
# the written checkpoint holds what GPTQ computed: quench reads it back (ppl above) and the report exists
[ -f "$W/stories260K-gptq4/quench_report.json" ] && ok || bad "report missing"
# built-in held-out check (default): samples not used for calibration, KL and top-1 in the report
recipe "$W/gptq4c.yaml" GPTQModifier 4 "strategy: channel"
"$Q" compress "$SHARED/models/stories260K" -o "$W/hold" --recipe "$W/gptq4c.yaml" --dataset "$CAL" --max-seq-length 512 \
  --no-sample --quiet > /dev/null 2>&1 && ok || bad "compress with held-out check"
h=$(jq -c '.heldout_check | [.positions > 0, .kl_mean > 0, .top1_agreement > 0.5, .max_kl_exceeded]' "$W/hold/quench_report.json")
[ "$h" = '[true,true,true,false]' ] && ok || bad "held-out check in the report: $h"
[ "$(jq .calibration.samples "$W/hold/quench_report.json")" = 24 ] && ok || bad "31 windows should leave 24 for calibration"
[ "$(jq .calibration.samples "$W/stories260K-gptq4/quench_report.json")" = 31 ] && ok || bad "--holdout 0 should keep all 31"
# --max-kl: exit 3, output kept and marked
"$Q" compress "$SHARED/models/stories260K" -o "$W/maxkl" --recipe "$W/gptq4c.yaml" --dataset "$CAL" --max-seq-length 512 \
  --no-sample --quiet --max-kl 0.000001 > /dev/null 2>&1; rc=$?
[ $rc -eq 3 ] && ok || bad "--max-kl exceeded: rc=$rc"
[ "$(jq .heldout_check.max_kl_exceeded "$W/maxkl/quench_report.json")" = true ] && ok || bad "--max-kl not marked in the report"
# MoE: every expert (and the shared expert) calibrated, all tokens through all experts
printf 'quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      ignore: [lm_head, "re:.*mlp.gate$"]\n      config_groups:\n        group_0:\n          targets: [Linear]\n          weights: {num_bits: 4, type: int, symmetric: true, strategy: channel}\n' > "$W/moe.yaml"
for m in tiny-random-qwen3-moe:48 tiny-random-glm4-moe:54; do
  name=${m%%:*}; want=${m##*:}
  "$Q" compress "$SHARED/models/$name" -o "$W/$name" --recipe "$W/moe.yaml" --dataset "$CAL" --max-seq-length 256 --no-sample --quiet > /dev/null 2>&1 \
    && ok || bad "$name GPTQ compress"
  r="$W/$name/quench_report.json"
  n=$(jq '[.linears[] | select(.name | test("experts")) | select(.output_rel_error < .rtn_output_rel_error)] | length' "$r")
  [ "$n" = "$want" ] && ok || bad "$name: GPTQ beats RTN on $n expert Linears, expected all $want"
  [ "$(jq .calibration.rtn_fallback_linears "$r")" = 0 ] && ok || bad "$name: experts fell back to RTN"
  jq -e '.quantization_config.ignore | index("model.layers.1.mlp.gate")' "$W/$name/config.json" > /dev/null && ok || bad "$name: router not in ignore"
done
# activations on disk (--offload-activations) give the same checkpoint byte for byte; bf16
# activations still beat round-to-nearest
mkdir -p "$W/offload"
"$Q" compress "$SHARED/models/stories260K" -o "$W/off" --recipe "$W/gptq4c.yaml" --dataset "$CAL" --max-seq-length 512 \
  --offload-activations "$W/offload" --no-sample --quiet > /dev/null 2>&1 && ok || bad "--offload-activations run"
cmp -s "$W/off/model.safetensors" "$W/hold/model.safetensors" && ok || bad "--offload-activations changed the output"
[ -z "$(ls -A "$W/offload")" ] && ok || bad "--offload-activations left files behind"
"$Q" compress "$SHARED/models/stories260K" -o "$W/b16" --recipe "$W/gptq4c.yaml" --dataset "$CAL" --max-seq-length 512 \
  --activations bf16 --no-sample --quiet > /dev/null 2>&1 && ok || bad "--activations bf16 run"
n=$(jq '[.linears[] | select(.output_rel_error < .rtn_output_rel_error)] | length' "$W/b16/quench_report.json")
[ "$n" = 35 ] && ok || bad "bf16 activations: GPTQ beats RTN on $n of 35"
# calibration recipes without --dataset: one clear error, no OUT
recipe "$W/gptq4.yaml" GPTQModifier 4 "strategy: channel"
err=$("$Q" compress "$SHARED/models/stories260K" -o "$W/nodata" --recipe "$W/gptq4.yaml" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$err" | grep -q -- "--dataset" && ok || bad "missing --dataset: rc=$rc $err"
[ ! -e "$W/nodata" ] && ok || bad "missing --dataset left an OUT"
err=$("$Q" compress "$SHARED/models/stories260K" -o "$W/missing" --recipe "$W/gptq4.yaml" --dataset "$W/no-such-file.txt" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$err" | grep -q "no-such-file.txt" && ok || bad "missing dataset file: rc=$rc $err"
printf '{"text": "Once upon a time"}\n{"oops": 1}\n' > "$W/bad.jsonl"
err=$("$Q" compress "$SHARED/models/stories260K" -o "$W/bj" --recipe "$W/gptq4.yaml" --dataset "$W/bad.jsonl" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$err" | grep -q "bad.jsonl: line 2" && ok || bad "bad JSONL record: rc=$rc $err"
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
