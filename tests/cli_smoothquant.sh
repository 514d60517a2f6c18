#!/usr/bin/env bash
# SmoothQuant (issue #6):
#  - stories260K, WikiText-2 calibration, TinyStories perplexity: W8A8 (SmoothQuant 0.5 + GPTQ)
#    within 2% of the original and below GPTQ W8A8 without SmoothQuant.
#  - MoE blocks (tiny-random-qwen3-moe, tiny-random-glm4-moe): post_attention_layernorm is smoothed
#    against the router, the shared expert and every routed expert's gate/up (streamed one at a
#    time), so the model's function is kept: the W8A8 output stays within a tiny KL of the
#    original; the router weight carries the scales (it changed) while GLM's
#    e_score_correction_bias is byte-identical.
# usage: cli_smoothquant.sh QUENCH SHARED_DIR SOURCE_DIR
set -u
Q=$1; SHARED=$2; SRC=$3
. "$SRC/tests/lib.sh"
WIKI="$SHARED/data/wikitext-2-raw/wiki.test.raw"
STORIES="$SRC/data/tinystories/tinystories_sample.txt"
CAL="$SRC/data/tinystories/tinystories_valid_subset.txt"
ppl() { "$Q" ppl "$1" --text "$STORIES" --mode stories --json --quiet | jq .ppl; }
sq_recipe() { printf 'quant_stage:\n  quant_modifiers:\n    SmoothQuantModifier:\n      smoothing_strength: 0.5\n    GPTQModifier:\n      targets: [Linear]\n      scheme: W8A8\n      ignore: [lm_head, "re:.*mlp.gate$"]\n' > "$1"; }
sq_recipe "$W/sq.yaml"
printf 'GPTQModifier:\n  targets: [Linear]\n  scheme: W8A8\n  ignore: [lm_head, "re:.*mlp.gate$"]\n' > "$W/g8.yaml"
D="$SHARED/models/stories260K"
for r in sq g8; do
  "$Q" compress "$D" -o "$W/$r" --recipe "$W/$r.yaml" --dataset "$WIKI" --num-calibration-samples 32 --max-seq-length 256 \
    --holdout 0 --no-sample --quiet > "$W/log" 2>&1 && ok || { bad "compress $r"; cat "$W/log"; }
done
o=$(ppl "$D"); s=$(ppl "$W/sq"); g=$(ppl "$W/g8")
echo "stories260K W8A8 TinyStories ppl: original $o, SmoothQuant 0.5 + GPTQ $s, GPTQ alone $g"
awk -v a="$s" -v b="$o" 'BEGIN { exit !(a < 1.02 * b) }' && ok || bad "SmoothQuant W8A8 ppl $s not within 2% of $o"
lt "$s" "$g" && ok || bad "SmoothQuant W8A8 ppl $s not below GPTQ W8A8 $g"
# bytes of one tensor of a single-file checkpoint
tbytes() { local f="$1/model.safetensors" n off len
  [ -f "$f" ] || f="$1/$(jq -r --arg k "$2" '.weight_map[$k]' "$1/model.safetensors.index.json")"
  n=$(od -An -t u8 -N 8 "$f" | tr -d ' ')
  read -r off len < <(head -c $((8 + n)) "$f" | tail -c "$n" | jq -r --arg k "$2" '.[$k].data_offsets | "\(.[0]) \(.[1] - .[0])"')
  tail -c +$((8 + n + off + 1)) "$f" | head -c "$len" | md5sum | cut -d' ' -f1; }
for M in tiny-random-qwen3-moe tiny-random-glm4-moe; do
  D="$SHARED/models/$M"
  "$Q" compress "$D" -o "$W/$M" --recipe "$W/sq.yaml" --dataset "$CAL" --num-calibration-samples 8 --max-seq-length 128 \
    --holdout 0 --no-sample --quiet > "$W/log" 2>&1 && ok || { bad "$M compress"; cat "$W/log"; }
  kl=$("$Q" compare "$D" "$W/$M" --text "$STORIES" --max-tokens 1024 --json --quiet | jq .kl_mean)
  echo "$M SmoothQuant + GPTQ W8A8: mean KL $kl"
  lt "$kl" 1e-4 && ok || bad "$M: KL $kl"
  L=1   # the first MoE layer of both (qwen3-moe: mlp_only_layers [0]; glm: first_k_dense_replace 1)
  [ "$(tbytes "$D" model.layers.$L.mlp.gate.weight)" != "$(tbytes "$W/$M" model.layers.$L.mlp.gate.weight)" ] && ok \
    || bad "$M: the router was not rescaled"
  [ "$(tbytes "$D" model.layers.$L.post_attention_layernorm.weight)" != "$(tbytes "$W/$M" model.layers.$L.post_attention_layernorm.weight)" ] \
    && ok || bad "$M: post_attention_layernorm unchanged"
  if [ $M = tiny-random-glm4-moe ]; then
    [ "$(tbytes "$D" model.layers.1.mlp.gate.e_score_correction_bias)" = "$(tbytes "$W/$M" model.layers.1.mlp.gate.e_score_correction_bias)" ] \
      && ok || bad "$M: e_score_correction_bias changed"
  fi
done
# the user recipe "W8A8 + 2:4 for serving" as shipped, on stories260K-hd64: config.json field by field
"$Q" compress "$SHARED/models/stories260K-hd64" -o "$W/serving" --recipe "$SRC/recipes/w8a8_24_serving.yaml" --dataset "$CAL" \
  --num-calibration-samples 8 --max-seq-length 128 --holdout 0 --no-sample --quiet > "$W/log" 2> "$W/err" && ok || { bad "serving recipe"; cat "$W/err"; }
grep -q "warning: .*2:4" "$W/err" && ok || bad "no 2:4 vLLM warning"
C="$W/serving/config.json"
q() { jq -c "$1" "$C"; }
[ "$(q '.quantization_config | [.format, .quant_method, .quantization_status, .ignore, .kv_cache_scheme, (.config_groups | keys)]')" \
  = '["int-quantized","compressed-tensors","compressed",["lm_head"],null,["group_0"]]' ] && ok || bad "top level $(q .quantization_config)"
[ "$(q '.quantization_config.config_groups.group_0 | [.targets, .format, .weights.num_bits, .weights.type, .weights.strategy, .weights.symmetric, .weights.dynamic, .input_activations.num_bits, .input_activations.type, .input_activations.strategy, .input_activations.symmetric, .input_activations.dynamic, .output_activations]')" \
  = '[["Linear"],"int-quantized",8,"int","channel",true,false,8,"int","token",true,true,null]' ] && ok || bad "group_0 $(q .quantization_config.config_groups.group_0)"
[ "$(q '.quantization_config.sparsity_config | [.format, .sparsity_structure, .targets, .ignore, .registry_requires_subclass]')" \
  = '["dense","2:4",["Linear"],["lm_head"],false]' ] && ok || bad "sparsity_config $(q .quantization_config.sparsity_config)"
# global_sparsity: half of the 35 pruned Linears' weights over all parameters
awk -v g="$(q .quantization_config.sparsity_config.global_sparsity)" 'BEGIN { exit !(g > 0.3 && g < 0.5) }' && ok || bad "global_sparsity"
finish cli_smoothquant
