#!/usr/bin/env bash
# End-to-end CLI checks on the bundled model against its reference outputs.
# usage: cli_commands.sh QUENCH SHARED_DIR SOURCE_DIR
set -u
Q=$1; SHARED=$2; SRC=$3; M="$SRC/models/stories260K"
fails=0; passes=0
check() { # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then passes=$((passes+1)); else echo "FAIL $1: expected [$2] got [$3]"; fails=$((fails+1)); fi
}
ref="$SHARED/models/stories260K/reference_outputs.json"
check "generate --json ids" "$(jq -c .greedy_from_bos_ids "$ref")" "$("$Q" generate "$M" --max-new-tokens 256 --json | jq -c .ids)"
check "generate text" "$(jq -r .greedy_from_bos_text "$ref")" "$("$Q" generate "$M" --max-new-tokens 256)"
out=$("$Q" ppl "$M" --text "$SRC/data/tinystories/tinystories_sample.txt" --mode stories)
check "ppl stories tokens" "tokens scored  1804" "$(echo "$out" | grep 'tokens scored')"
check "ppl stories value" "PPL            3.548" "$(echo "$out" | grep '^PPL' | cut -c1-20)"
out=$("$Q" ppl "$M" --text "$SRC/data/wikitext-2-raw/wiki.test.raw" --max-tokens 65536 --json)
check "ppl wikitext tokens" "65919" "$(echo "$out" | jq .tokens_scored)"
check "ppl wikitext value" "151.54" "$(echo "$out" | jq '.ppl*100|round/100')"
check "tokenize" "1 403 407 261 378" "$("$Q" tokenize "$M" --text "Once upon a time")"
check "tokenize --no-special" "403 407 261 378" "$("$Q" tokenize "$M" --text "Once upon a time" --no-special)"
check "decode" "Once upon a time" "$("$Q" tokenize "$M" --decode "1 403 407 261 378")"
info=$("$Q" info "$M" --json)
check "info params" "$((512*64+64+5*(64*64*2+32*64*2+172*64*3+64*2)))" "$(echo "$info" | jq .parameters)"
check "info arch" "LlamaForCausalLM" "$(echo "$info" | jq -r .architecture)"
check "info tensors" "47" "$(echo "$info" | jq -r .tensors)"
check "info tokenizer" "sentencepiece-bpe" "$(echo "$info" | jq -r .tokenizer)"
# seeded sampling is reproducible and differs from greedy
s1=$("$Q" generate "$M" --temperature 1.0 --top-p 0.9 --seed 133742 --max-new-tokens 40)
s2=$("$Q" generate "$M" --temperature 1.0 --top-p 0.9 --seed 133742 --max-new-tokens 40)
check "seeded sampling reproducible" "$s1" "$s2"
g=$("$Q" generate "$M" --max-new-tokens 40)
if [ "$s1" != "$g" ]; then passes=$((passes+1)); else echo "FAIL sampling equals greedy"; fails=$((fails+1)); fi
for c in info generate ppl tokenize plan; do
  "$Q" $c --help >/dev/null 2>&1 && passes=$((passes+1)) || { echo "FAIL $c --help"; fails=$((fails+1)); }
done
echo "$passes passed, $fails failed"
[ $fails -eq 0 ]
