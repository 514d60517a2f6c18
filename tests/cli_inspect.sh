#!/usr/bin/env bash
# quench inspect / quench diff end to end: checkpoints made by `quench compress` (W4A16, FP8_DYNAMIC,
# W8A8) inspect clean with the right presets and vLLM compute capabilities (spec §6.2); hand-broken
# copies (a tensor deleted, a config that no longer matches the tensors, q_proj ignored alone, an
# ignore entry matching nothing) report each problem; config-only and plain folders work; malformed
# configs are refused naming the file and the field; diff of GLM-4.5 vs GLM-4.5-Air lists exactly the
# keys that differ.
# usage: cli_inspect.sh QUENCH SHARED_DIR SOURCE_DIR
set -u
Q=$1; SHARED=$2; SRC=$3
M="$SHARED/models/stories260K-hd64"
D="$SRC/tests/data/diff"
W=$(mktemp -d "${TMPDIR:-/tmp}/quench-cli-inspect-XXXXXX")
trap 'rm -rf "$W"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL $1"; fails=$((fails+1)); }
check() { if [ "$2" = "$3" ]; then ok; else bad "$1: expected [$2] got [$3]"; fi; }
contains() { if printf '%s' "$3" | grep -qF -- "$2"; then ok; else bad "$1: [$2] not in [$3]"; fi; }
# jq on the last JSON output ($J)
jqr() { printf '%s' "$J" | jq -r "$1" 2>/dev/null; }
# a copy of checkpoint $1 in $2 with config.json edited by jq filter $3
edit_copy() { cp -r "$1" "$2" && jq "$3" "$1/config.json" > "$2/config.json"; }

# --- checkpoints from the real tool ------------------------------------------------------------
for s in W4A16 FP8_DYNAMIC W8A8; do
  "$Q" compress "$M" -o "$W/$s" --scheme "$s" --no-sample --quiet >/dev/null 2>&1
  check "compress $s" 0 $?
done

# --- clean: zero mismatches, preset, vLLM scheme and capability ---------------------------------
while read -r s preset scheme cc fallback; do
  J=$("$Q" inspect "$W/$s" --json); rc=$?
  check "inspect $s exit" 0 $rc
  check "inspect $s mismatches" 0 "$(jqr .tensors.mismatches)"
  check "inspect $s modules checked" 36 "$(jqr .tensors.modules_checked)"
  check "inspect $s errors" 0 "$(jqr .finding_counts.error)"
  check "inspect $s warnings" 0 "$(jqr .finding_counts.warning)"
  check "inspect $s linear" "36 35 1 0" "$(jqr '.linear | "\(.total) \(.quantized) \(.ignored) \(.unmatched)"')"
  check "inspect $s preset" "$preset" "$(jqr '.quantization.groups[0].preset')"
  check "inspect $s vllm scheme" "$scheme" "$(jqr '.quantization.groups[0].vllm.scheme')"
  check "inspect $s min capability" "$cc" "$(jqr '.quantization.groups[0].vllm.min_capability')"
  check "inspect $s fallback" "$fallback" "$(jqr '.quantization.groups[0].vllm.fallback // "-"')"
  check "inspect $s ignore" "lm_head:1" "$(jqr '.quantization.ignore | map("\(.entry):\(.linear)") | join(",")')"
done <<'EOF'
W4A16 W4A16 CompressedTensorsWNA16 8 -
FP8_DYNAMIC FP8_DYNAMIC CompressedTensorsW8A8Fp8 8.9 CompressedTensorsW8A16Fp8
W8A8 W8A8 CompressedTensorsW8A8Int8 7.5 -
EOF
J=$("$Q" inspect "$W/FP8_DYNAMIC" --json)
check "FP8_DYNAMIC native on H100 (9.0)" true "$(jqr '.quantization.groups[0].vllm.gpus_native | index("H100-80G") != null')"
check "FP8_DYNAMIC native on RTX 4090 (8.9)" true "$(jqr '.quantization.groups[0].vllm.gpus_native | index("RTX 4090") != null')"
check "FP8_DYNAMIC fallback on A100 (8.0)" true "$(jqr '.quantization.groups[0].vllm.gpus_fallback | index("A100-80G") != null')"
check "FP8_DYNAMIC fallback on RTX 3090 (8.6)" true "$(jqr '.quantization.groups[0].vllm.gpus_fallback | index("RTX 3090") != null')"
check "FP8_DYNAMIC fallback capability" 8 "$(jqr '.quantization.groups[0].vllm.fallback_capability')"
J=$("$Q" inspect "$W/W8A8" --json)
check "W8A8 runs on every GPU of the table" 0 "$(jqr '.quantization.groups[0].vllm.gpus_cannot | length')"
out=$("$Q" inspect "$W/W4A16"); rc=$?
check "inspect text exit" 0 $rc
contains "text: group row" "group_0  Linear   int4 group 128 sym" "$out"
contains "text: kernel" "group_0 (W4A16): CompressedTensorsWNA16, compute capability >= 8.0" "$out"
contains "text: counts" "36 (from the tensors): 35 quantized, 1 ignored, 0 matched by nothing" "$out"
contains "text: tensors" "36 Linear modules checked against their decisions: 0 mismatches" "$out"
contains "text: findings" "0 errors, 0 warnings" "$out"

# --- a tensor deleted: one tensor per shard, drop q_proj's weight_scale shard and index entry ----
"$Q" compress "$M" -o "$W/shards" --scheme W4A16 --no-sample --quiet --max-shard-size 1 >/dev/null 2>&1
check "compress sharded" 0 $?
victim=model.layers.0.self_attn.q_proj.weight_scale
f=$(jq -r --arg t "$victim" '.weight_map[$t]' "$W/shards/model.safetensors.index.json")
rm -f "$W/shards/$f"
jq --arg t "$victim" 'del(.weight_map[$t])' "$W/shards/model.safetensors.index.json" > "$W/index.json" &&
  mv "$W/index.json" "$W/shards/model.safetensors.index.json"
J=$("$Q" inspect "$W/shards" --json); rc=$?
check "deleted scale: exit 3" 3 $rc
check "deleted scale: one mismatch" 1 "$(jqr .tensors.mismatches)"
check "deleted scale: named" "tensor_missing $victim" "$(jqr '.findings[] | select(.level=="error") | "\(.kind) \(.subject)"')"
check "deleted scale: group counts it" 1 "$(jqr '.quantization.groups[0].mismatched')"
out=$("$Q" inspect "$W/shards"); rc=$?
contains "deleted scale text" "error   tensor_missing    $victim: missing: expected F32 [512, 1]" "$out"

# --- the config no longer matches the tensors -------------------------------------------------
edit_copy "$W/W4A16" "$W/bits8" '.quantization_config.config_groups.group_0.weights.num_bits = 8'
J=$("$Q" inspect "$W/bits8" --json); rc=$?
check "8-bit config on 4-bit tensors: exit 3" 3 $rc
check "8-bit config: every weight_packed has the wrong width" 35 \
  "$(jqr '[.findings[] | select(.kind=="tensor_shape" and (.subject|endswith(".weight_packed")))] | length')"
check "8-bit config: no preset W4A16" W8A16 "$(jqr '.quantization.groups[0].preset // "-"' | sed 's/-/none/')"
edit_copy "$W/W4A16" "$W/noignore" '.quantization_config.ignore = []'
J=$("$Q" inspect "$W/noignore" --json); rc=$?
check "lm_head targeted but stored plain: exit 3" 3 $rc
check "lm_head: missing compressed tensors" "lm_head.weight_packed,lm_head.weight_scale,lm_head.weight_shape" \
  "$(jqr '[.findings[] | select(.kind=="tensor_missing") | .subject] | sort | join(",")')"
check "lm_head: plain weight unexpected" "lm_head.weight" "$(jqr '[.findings[] | select(.kind=="tensor_unexpected") | .subject] | join(",")')"

# --- fused shards split, ignore entries that do nothing ---------------------------------------
edit_copy "$W/W4A16" "$W/split" \
  '.quantization_config.ignore = ["lm_head", "model.layers.1.self_attn.k_proj", "model.layers.7.mlp.up_proj", "model.norm"]'
J=$("$Q" inspect "$W/split" --json); rc=$?
check "q/k/v split: exit 3" 3 $rc
check "q/k/v split: finding" "model.layers.1.self_attn (q_proj, k_proj, v_proj)" \
  "$(jqr '.findings[] | select(.kind=="fused_split") | .subject')"
contains "q/k/v split: message names the shards" "k_proj: ignored" "$(jqr '.findings[] | select(.kind=="fused_split") | .message')"
check "ignore entry matching nothing" "model.layers.7.mlp.up_proj" "$(jqr '.findings[] | select(.kind=="ignore_unused") | .subject')"
check "ignore entry naming a norm" "model.norm" "$(jqr '.findings[] | select(.kind=="ignore_non_linear") | .subject')"
check "k_proj stored compressed though ignored" true \
  "$(jqr '[.findings[] | select(.kind=="vllm" and .subject=="model.layers.1.self_attn.k_proj")] | length == 1')"
edit_copy "$W/W4A16" "$W/unused" '.quantization_config.ignore = ["lm_head", "re:.*mlp\\.gate$"]'
J=$("$Q" inspect "$W/unused" --json); rc=$?
check "unused regex: exit 0 (a warning)" 0 $rc
check "unused regex: warning" "ignore_unused re:.*mlp\\.gate$" \
  "$(jqr '.findings[] | select(.level=="warning") | "\(.kind) \(.subject)"')"

# --- config only, plain folder, config.json path ------------------------------------------------
mkdir -p "$W/cfgonly" && cp "$W/W4A16/config.json" "$W/cfgonly/"
J=$("$Q" inspect "$W/cfgonly" --json); rc=$?
check "config only: exit" 0 $rc
check "config only: no tensors" "false config 36 35" "$(jqr '"\(.tensors.present) \(.modules_from) \(.linear.total) \(.linear.quantized)"')"
out=$("$Q" inspect "$W/cfgonly")
contains "config only: says so" "config analysis only" "$out"
J=$("$Q" inspect "$W/W4A16/config.json" --json)
check "config.json path: config only" "false W4A16" "$(jqr '"\(.tensors.present) \(.quantization.groups[0].preset)"')"
J=$("$Q" inspect "$M" --json); rc=$?
check "plain: exit" 0 $rc
check "plain: not quantized, 36 Linears, no mismatch" "false 36 0" "$(jqr '"\(.quantization.present) \(.linear.total) \(.tensors.mismatches)"')"
out=$("$Q" inspect "$M")
contains "plain: says so" "a plain (unquantized) checkpoint" "$out"
J=$("$Q" inspect "$D/GLM-4.5" --json); rc=$?
check "GLM-4.5 config only: exit" 0 $rc
check "GLM-4.5: Linears from config.json" "43454 42720 734" "$(jqr '"\(.linear.total) \(.linear.quantized) \(.linear.ignored)"')"

# --- malformed configs ------------------------------------------------------------------------
mal() { # name jq-filter expected-substring
  mkdir -p "$W/$1" && jq "$2" "$W/W4A16/config.json" > "$W/$1/config.json"
  err=$("$Q" inspect "$W/$1" 2>&1 >/dev/null); rc=$?
  check "malformed $1: exit" 1 $rc
  contains "malformed $1: file" "$W/$1/config.json" "$err"
  contains "malformed $1: field" "$3" "$err"
  err=$("$Q" diff "$W/$1" "$W/W4A16" 2>&1 >/dev/null); rc=$?
  check "malformed $1: diff exit" 1 $rc
  contains "malformed $1: diff field" "$3" "$err"
}
mal targets '.quantization_config.config_groups.group_0.targets = "Linear"' "quantization_config.config_groups.group_0"
mal bits '.quantization_config.config_groups.group_0.weights.num_bits = "four"' "config_groups.group_0.weights"
mal regex '.quantization_config.ignore = ["re:(lm_head"]' "quantization_config.ignore[0]"
mal ignore '.quantization_config.ignore = "lm_head"' "quantization_config.ignore"
mal hidden '.hidden_size = "big"' "hidden_size"
mkdir -p "$W/badjson" && printf '{"architectures": ["LlamaForCausalLM"],\n "hidden_size": 128,,\n}' > "$W/badjson/config.json"
err=$("$Q" inspect "$W/badjson" 2>&1 >/dev/null); rc=$?
check "bad JSON: exit" 1 $rc
contains "bad JSON: message" "$W/badjson/config.json: invalid JSON near byte" "$err"
err=$("$Q" inspect "$W/nonexistent" 2>&1 >/dev/null); rc=$?
check "missing folder: exit" 1 $rc
"$Q" inspect >/dev/null 2>&1; check "inspect without argument: usage" 2 $?
"$Q" diff "$W/W4A16" >/dev/null 2>&1; check "diff with one argument: usage" 2 $?
"$Q" inspect --help >/dev/null 2>&1; check "inspect --help" 0 $?
"$Q" diff --help >/dev/null 2>&1; check "diff --help" 0 $?

# --- diff: GLM-4.5 vs GLM-4.5-Air -----------------------------------------------------------------
J=$("$Q" diff "$D/GLM-4.5" "$D/GLM-4.5-Air/config.json" --json); rc=$?
check "diff GLM exit" 0 $rc
check "diff GLM: exactly these keys differ" \
  "first_k_dense_replace,hidden_size,intermediate_size,moe_intermediate_size,n_routed_experts,num_hidden_layers,routed_scaling_factor,use_qk_norm" \
  "$(jqr '[.config[].key] | sort | join(",")')"
check "diff GLM: values side by side" \
  "first_k_dense_replace=3/1 hidden_size=5120/4096 intermediate_size=12288/10944 moe_intermediate_size=1536/1408 n_routed_experts=160/128 num_hidden_layers=92/46 routed_scaling_factor=2.5/1.0 use_qk_norm=true/false" \
  "$(jqr '[.config[] | "\(.key)=\(.a_text)/\(.b_text)"] | join(" ")')"
check "diff GLM: no other quantization_config key" 0 "$(jqr '.quantization_config.keys | length')"
check "diff GLM: groups identical" "1 0" "$(jqr '"\(.quantization_config.groups_same) \(.quantization_config.groups | length)"')"
check "diff GLM: ignore as sets" "743 1 742 0" \
  "$(jqr '.quantization_config.ignore | "\(.count_a) \(.count_b) \(.only_a | length) \(.only_b | length)"')"
check "diff GLM: not identical" false "$(jqr .identical)"
check "diff GLM: tensors not compared" false "$(jqr .tensors.compared)"
out=$("$Q" diff "$D/GLM-4.5" "$D/GLM-4.5-Air")
contains "diff GLM text: count" "config.json: 8 keys differ" "$out"
contains "diff GLM text: row" "routed_scaling_factor  2.5    1.0" "$out"
contains "diff GLM text: ignore" "ignore: 743 entries in A, 1 in B; 742 only in A, 0 only in B" "$out"

# --- diff: real checkpoints -----------------------------------------------------------------------
J=$("$Q" diff "$W/W4A16" "$W/FP8_DYNAMIC" --json); rc=$?
check "diff W4A16/FP8_DYNAMIC exit" 0 $rc
check "diff checkpoints: config.json same" 0 "$(jqr '.config | length')"
check "diff checkpoints: format" "quantization_config.format=\"pack-quantized\"/\"float-quantized\"" \
  "$(jqr '.quantization_config.keys[] | "\(.key)=\(.a_text)/\(.b_text)"')"
check "diff checkpoints: group_0 changed" changed "$(jqr '.quantization_config.groups[0].status')"
contains "diff checkpoints: weights.type" "weights.type" "$(jqr '[.quantization_config.groups[0].fields[].key] | join(",")')"
check "diff checkpoints: tensors" "true 70 35 10" \
  "$(jqr '.tensors | "\(.compared) \(.only_a | length) \(.only_b | length) \(.changed | length)"')"
check "diff checkpoints: ignore expanded, same modules" "true 0 0" \
  "$(jqr '.quantization_config.ignore | "\(.expanded) \(.modules_only_a | length) \(.modules_only_b | length)"')"
J=$("$Q" diff "$W/W4A16" "$W/W4A16" --json)
check "diff with itself: identical" true "$(jqr .identical)"
out=$("$Q" diff "$W/W4A16" "$W/cfgonly")
contains "diff dir vs config only: tensors not compared" "tensors not compared" "$out"
J=$("$Q" diff "$W/W4A16" "$M" --json)
check "diff compressed vs plain: only A quantized" "true false" "$(jqr '"\(.quantization_config.in_a) \(.quantization_config.in_b)"')"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
