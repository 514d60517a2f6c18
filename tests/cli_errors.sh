#!/usr/bin/env bash
# CLI on bad input: one clear error line naming the file/field, exit code 1 or 2, no crash.
# usage: cli_errors.sh QUENCH SHARED_DIR SOURCE_DIR
set -u
Q=$1; SHARED=$2; SRC=$3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0
# expect_error NAME PATTERN CMD...: exit status 1 or 2, exactly one stderr line, matching PATTERN
expect_error() {
  local name=$1 pat=$2; shift 2
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  local lines; lines=$(wc -l <"$tmp/err")
  if { [ $rc -eq 1 ] || [ $rc -eq 2 ]; } && [ "$lines" -eq 1 ] && grep -qE -- "$pat" "$tmp/err"; then
    passes=$((passes+1))
  else
    echo "FAIL $name: rc=$rc, stderr lines=$lines:"; cat "$tmp/err"; fails=$((fails+1))
  fi
}
for cmd in info generate; do
  expect_error "$cmd missing folder" "$tmp/nope" "$Q" $cmd "$tmp/nope"
done
expect_error "ppl missing folder" "$tmp/nope" "$Q" ppl "$tmp/nope" --text "$SRC/data/tinystories/tinystories_sample.txt"
expect_error "tokenize missing folder" "$tmp/nope" "$Q" tokenize "$tmp/nope" --text hello
mkdir -p "$tmp/empty"
expect_error "no config.json" "empty/config.json" "$Q" info "$tmp/empty"
expect_error "ppl no config.json" "empty/config.json" "$Q" ppl "$tmp/empty" --text "$SRC/data/tinystories/tinystories_sample.txt"
mkdir -p "$tmp/foo"; cp "$SRC/models/stories260K/"* "$tmp/foo/"
sed -i 's/LlamaForCausalLM/FooForCausalLM/' "$tmp/foo/config.json"
expect_error "unknown architecture" "FooForCausalLM.*LlamaForCausalLM" "$Q" info "$tmp/foo"
expect_error "unknown architecture (generate)" "FooForCausalLM" "$Q" generate "$tmp/foo"
mkdir -p "$tmp/trunc"; cp "$SRC/models/stories260K/"* "$tmp/trunc/"
head -c 500000 "$SRC/models/stories260K/model.safetensors" > "$tmp/trunc/model.safetensors"
expect_error "truncated safetensors" "trunc/model.safetensors" "$Q" info "$tmp/trunc"
expect_error "truncated safetensors (ppl)" "trunc/model.safetensors" "$Q" ppl "$tmp/trunc" --text "$SRC/data/tinystories/tinystories_sample.txt"
head -c 5 "$SRC/models/stories260K/model.safetensors" > "$tmp/trunc/model.safetensors"
expect_error "5-byte safetensors" "trunc/model.safetensors" "$Q" generate "$tmp/trunc"
mkdir -p "$tmp/badjson"; cp "$SRC/models/stories260K/"* "$tmp/badjson/"; head -c 100 "$SRC/models/stories260K/config.json" > "$tmp/badjson/config.json"
expect_error "truncated config.json" "badjson/config.json" "$Q" info "$tmp/badjson"
mkdir -p "$tmp/shape"; cp "$SRC/models/stories260K/"* "$tmp/shape/"; sed -i 's/"intermediate_size": 172/"intermediate_size": 170/' "$tmp/shape/config.json"
expect_error "shape mismatch" "mlp.gate_proj.weight.*shape" "$Q" ppl "$tmp/shape" --text "$SRC/data/tinystories/tinystories_sample.txt"
mkdir -p "$tmp/ds"; cp "$SRC/models/stories260K/"* "$tmp/ds/"; printf '{"architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32, "num_hidden_layers": 4, "first_k_dense_replace": 1, "num_attention_heads": 4, "num_key_value_heads": 4, "n_routed_experts": 8, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1, "vocab_size": 512}' > "$tmp/ds/config.json"
expect_error "unsupported forward" "DeepseekV3ForCausalLM" "$Q" generate "$tmp/ds"
expect_error "unknown option" "unknown option '--bogus'" "$Q" ppl "$SRC/models/stories260K" --bogus
expect_error "bad ppl mode" "--mode 'x'" "$Q" ppl "$SRC/models/stories260K" --text "$SRC/data/tinystories/tinystories_sample.txt" --mode x
expect_error "missing text file" "missing.txt" "$Q" ppl "$SRC/models/stories260K" --text "$tmp/missing.txt"
expect_error "bad decode ids" "--decode" "$Q" tokenize "$SRC/models/stories260K" --decode "1 x 2"
expect_error "unknown command" "unknown command" "$Q" frobnicate
# input folders are never modified
before=$(cd "$SRC/models/stories260K" && sha256sum * | sha256sum)
"$Q" ppl "$SRC/models/stories260K" --text "$SRC/data/tinystories/tinystories_sample.txt" --mode stories >/dev/null 2>&1
after=$(cd "$SRC/models/stories260K" && sha256sum * | sha256sum)
if [ "$before" = "$after" ]; then passes=$((passes+1)); else echo "FAIL: input folder changed"; fails=$((fails+1)); fi
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
