#!/usr/bin/env bash
# quench compress / compare end to end: output folder, config.json bytes, reading back, refusals,
# folder safety (existing OUT, kill -9 mid-run, input untouched).
# usage: cli_compress.sh QUENCH SHARED_DIR SOURCE_DIR
set -u
Q=$1; SHARED=$2; SRC=$3
M="$SHARED/models/stories260K-hd64"; M2="$SHARED/models/stories260K"
T="$SHARED/data/tinystories/tinystories_sample.txt"
W=$(mktemp -d "${TMPDIR:-/tmp}/quench-cli-compress-XXXXXX")
trap 'rm -rf "$W"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL $1"; fails=$((fails+1)); }
check() { if [ "$2" = "$3" ]; then ok; else bad "$1: expected [$2] got [$3]"; fi; }
contains() { if printf '%s' "$3" | grep -q -- "$2"; then ok; else bad "$1: [$2] not in [$3]"; fi; }

sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }
before=$(sums "$M"); before2=$(sums "$M2")

# --- W4A16 on the kernel-shaped model ---------------------------------------------------
out=$("$Q" compress "$M" -o "$W/w4" --scheme W4A16 2>&1); rc=$?
check "compress W4A16 exit" 0 $rc
contains "summary layers" "35 quantized, 1 ignored (of 36)" "$out"
contains "summary size" "MB -> " "$out"
contains "sample" "sample          Once upon a time" "$out"
check "format" "pack-quantized" "$(jq -r .quantization_config.format "$W/w4/config.json")"
check "ignore" '["lm_head"]' "$(jq -c .quantization_config.ignore "$W/w4/config.json")"
check "config.json no trailing newline" "7d" "$(tail -c1 "$W/w4/config.json" | od -An -tx1 | tr -d ' \n')"
if command -v python3 >/dev/null 2>&1; then
  py=$(python3 -c 'import json,sys; raw=open(sys.argv[1]).read(); print("same" if json.dumps(json.loads(raw), indent=2, sort_keys=True) == raw else "differs")' "$W/w4/config.json")
  check "config.json bytes = python json.dump(indent=2, sort_keys=True)" same "$py"
else
  echo "note: python3 not found, config.json byte check against Python skipped"
fi
for f in tokenizer.json tokenizer_config.json special_tokens_map.json tokenizer.model generation_config.json; do
  cmp -s "$M/$f" "$W/w4/$f" && ok || bad "copied $f"
done
[ -f "$W/w4/recipe.yaml" ] && ok || bad "recipe.yaml written"
[ -z "$(ls -d "$W"/w4.tmp-* 2>/dev/null)" ] && ok || bad "no temporary folder left"
p0=$("$Q" ppl "$M" --text "$T" --mode stories --json | jq .ppl)
p4=$("$Q" ppl "$W/w4" --text "$T" --mode stories --json | jq .ppl)
check "ppl W4A16 above original" 1 "$(jq -n "$p4 > $p0 and $p4 < $p0 * 1.2 | if . then 1 else 0 end")"
g=$("$Q" generate "$W/w4" --max-new-tokens 20); rc=$?
check "generate on compressed exit" 0 $rc
contains "generate on compressed" "Once upon a time" "$g"
info=$("$Q" info "$W/w4"); rc=$?
check "info on compressed exit" 0 $rc

# --- existing OUT ---------------------------------------------------------------------------
err=$("$Q" compress "$M" -o "$W/w4" --scheme W8A16 --no-sample 2>&1); rc=$?
check "existing OUT refused" 1 $rc
contains "existing OUT message" "already exists" "$err"
check "existing OUT kept" "pack-quantized" "$(jq -r .quantization_config.config_groups.group_0.format "$W/w4/config.json")"
check "existing OUT kept (bits)" 4 "$(jq -r .quantization_config.config_groups.group_0.weights.num_bits "$W/w4/config.json")"
"$Q" compress "$M" -o "$W/w4" --scheme W8A16 --no-sample --overwrite >/dev/null 2>&1; rc=$?
check "--overwrite exit" 0 $rc
check "--overwrite replaced" 8 "$(jq -r .quantization_config.config_groups.group_0.weights.num_bits "$W/w4/config.json")"

# --- refusals -------------------------------------------------------------------------------
err=$("$Q" compress "$M" -o "$W/fp8" --scheme FP8 2>&1); rc=$?
check "FP8 (static activations) refused" 1 $rc
contains "FP8 refusal names calibration" "needs calibration" "$err"
contains "FP8 refusal names what" "static input activations" "$err"
[ ! -e "$W/fp8" ] && ok || bad "refused run left an OUT"
printf 'quant_stage:\n  quant_modifiers:\n    GPTQModifier:\n      targets: ["Linear"]\n      ignore: ["lm_head"]\n      scheme: W4A16\n' > "$W/gptq.yaml"
err=$("$Q" compress "$M" -o "$W/gptq" --recipe "$W/gptq.yaml" 2>&1); rc=$?
check "GPTQ recipe refused" 1 $rc
contains "GPTQ refusal names it" "GPTQ" "$err"
[ ! -e "$W/gptq" ] && ok || bad "GPTQ refusal left an OUT"
err=$("$Q" compress "$M2" -o "$W/g128" --scheme W4A16 --no-sample 2>&1); rc=$?
check "group 128 on 64-wide inputs refused" 1 $rc
contains "group refusal names a layer" "model.layers.0." "$err"
contains "group refusal names group_size" "group_size" "$err"
err=$("$Q" compress "$M" -o "$W/x" 2>&1); rc=$?
check "no scheme: usage error" 2 $rc
err=$("$Q" compress "$M" --scheme W4A16 2>&1); rc=$?
check "no -o: usage error" 2 $rc

# --- recipe file, lists, sharding -----------------------------------------------------------
printf 'quant_stage:\n  quant_modifiers:\n    QuantizationModifier:\n      targets: ["Linear"]\n      ignore: ["lm_head", "re:.*down_proj$"]\n      scheme: FP8_DYNAMIC\n' > "$W/r.yaml"
"$Q" compress "$M" -o "$W/rec" --recipe "$W/r.yaml" --no-sample >/dev/null 2>&1; rc=$?
check "recipe compress exit" 0 $rc
check "recipe format" "float-quantized" "$(jq -r .quantization_config.format "$W/rec/config.json")"
check "ignore lists every ignored Linear by name" 6 "$(jq '.quantization_config.ignore | length' "$W/rec/config.json")"
check "ignore names in module order" "model.layers.0.mlp.down_proj model.layers.4.mlp.down_proj lm_head" \
  "$(jq -r '.quantization_config.ignore | [.[0], .[4], .[5]] | join(" ")' "$W/rec/config.json")"
grep -q "FP8_DYNAMIC" "$W/rec/recipe.yaml" && ok || bad "recipe.yaml holds the recipe"
out=$("$Q" compress "$M" -o "$W/lists" --scheme W8A8 --ignore lm_head --ignore 're:.*q_proj$,re:.*k_proj$,re:.*v_proj$' --no-sample 2>&1); rc=$?
check "repeated --ignore exit" 0 $rc
contains "repeated --ignore counted" "20 quantized, 16 ignored" "$out"
"$Q" compress "$M" -o "$W/sh" --scheme W8A16 --max-shard-size 1MB --no-sample >/dev/null 2>&1; rc=$?
check "sharded exit" 0 $rc
[ -f "$W/sh/model.safetensors.index.json" ] && ok || bad "index written"
check "shards" 1 "$(ls "$W"/sh/model-0000*-of-0000*.safetensors | wc -l | awk '{print ($1 >= 2)}')"
ps=$("$Q" ppl "$W/sh" --text "$T" --mode stories --json | jq .ppl)
pu=$("$Q" ppl "$W/w4" --text "$T" --mode stories --json | jq .ppl)
check "sharded ppl = single-file ppl" "$pu" "$ps"
out=$("$Q" compress "$M2" -o "$W/s8" --scheme W8A16 --no-sample 2>&1); rc=$?
check "stories260K (tied) W8A16 exit" 0 $rc
check "tied lm_head listed in ignore" '["lm_head"]' "$(jq -c .quantization_config.ignore "$W/s8/config.json")"

# --- compare --------------------------------------------------------------------------------
cj=$("$Q" compare "$M" "$W/w4" --text "$T" --mode stories --json); rc=$?
check "compare exit" 0 $rc
check "compare ppl original" "$p0" "$(echo "$cj" | jq .original.ppl)"
check "compare ppl compressed" "$pu" "$(echo "$cj" | jq .compressed.ppl)"
check "compare kl positive" 1 "$(echo "$cj" | jq '.kl_mean > 0 and .kl_max >= .kl_mean and .top1_agreement > 0.9 and .top1_agreement <= 1 | if . then 1 else 0 end')"
check "compare layers" 35 "$(echo "$cj" | jq '.layers | length')"
check "compare worst 10" 10 "$(echo "$cj" | jq '.worst | length')"
check "compare ratio" 1 "$(echo "$cj" | jq '.size_ratio > 2.5 | if . then 1 else 0 end')"
cs=$("$Q" compare "$M" "$M" --text "$T" --mode stories --max-tokens 200 --json)
check "compare self: kl 0" 0 "$(echo "$cs" | jq .kl_max)"
check "compare self: agreement 1" 1 "$(echo "$cs" | jq .top1_agreement)"
ct=$("$Q" compare "$M" "$W/w4" --text "$T" --mode stories --max-tokens 200 --prompt "Once upon a time"); rc=$?
check "compare text exit" 0 $rc
contains "compare text: worst layers" "worst layers" "$ct"
contains "compare text: continuation" "compressed:" "$ct"

# --- kill -9 mid-run leaves no OUT ----------------------------------------------------------
MK="$(dirname "$Q")/bench/make_model"
if [ -x "$MK" ]; then
  "$MK" --preset tinyllama-1.1b --layers 1 --source-dir "$SRC" --out "$W/big" >/dev/null 2>&1 || bad "make_model"
  "$Q" compress "$W/big" -o "$W/bigout" --scheme W4A16 --no-sample --quiet >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 2000); do [ -d "$W/bigout.tmp-$pid" ] && break; sleep 0.005; done
  kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  [ ! -e "$W/bigout" ] && ok || bad "kill -9 mid-run left $W/bigout"
  [ -d "$W/bigout.tmp-$pid" ] && ok || bad "the run was not killed mid-run (no temporary folder seen)"
  "$Q" compress "$W/big" -o "$W/bigout" --scheme W4A16 --no-sample --quiet >/dev/null 2>&1; rc=$?
  check "rerun after kill" 0 $rc
  [ ! -e "$W/bigout.tmp-$pid" ] && ok || bad "stale temporary folder of the killed run removed"
  check "rerun output" "pack-quantized" "$(jq -r .quantization_config.format "$W/bigout/config.json")"
else
  bad "bench/make_model not built next to $Q"
fi

# --- the inputs are unchanged ---------------------------------------------------------------
check "input hd64 unchanged (sha256)" "$before" "$(sums "$M")"
check "input stories260K unchanged (sha256)" "$before2" "$(sums "$M2")"

echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
