#!/usr/bin/env bash
# Every recipe of recipes/ (AWQ ones skipped) on the tinyllama-1.1b-shaped 2-layer model (random
# bf16 weights, as bench/gptq.sh; same cached files under bench/out/): wall time and peak RSS of
# `quench compress`, and where the time went, from what quench prints:
#   forward  the calibration pipeline's forward passes (embedding, SmoothQuant's smoothing and its
#            statistics pass, Hessian statistics, propagation of the quantized layer) — quench's
#            "forward" seconds
#   gptq     GPTQ / SparseGPT / the round-to-nearest fake quantization of the propagation — its
#            "GPTQ" seconds (SparseGPT runs inside this phase)
#   write    the rest of the exporter's time: reading, quantizing / packing, writing the shards
#   other    outside the exporter: start-up, loading and tokenizing the calibration text
# quench times phases, not modifiers; SmoothQuant and SparseGPT are derived by difference with an
# ablation run (GPTQ W8A8 without SmoothQuant): SmoothQuant = forward(smoothquant_gptq_w8a8) -
# forward(ablation); SparseGPT = gptq(w8a8_24_serving) - gptq(smoothquant_gptq_w8a8).
# SAMPLES x 512 calibration tokens (default 16). Prints figures; never fails on time.
# Logs and /usr/bin/time output stay in bench/out/recipes/; the checkpoints are removed unless KEEP=1.
# usage: [SAMPLES=16] [BUILD=build] [RECIPES="w4a16 fp8_dynamic ..."] [KEEP=1] bash bench/recipes.sh
set -uo pipefail
cd "$(dirname "$0")/.."
SAMPLES=${SAMPLES:-16}
BUILD=${BUILD:-build}
bash scripts/build.sh "$BUILD" >/dev/null || { echo "build failed"; exit 1; }
M=bench/out/tinyllama-1.1b-2l
mkdir -p bench/out/recipes
[ -f "$M/config.json" ] || "$BUILD"/bench/make_model --preset tinyllama-1.1b --layers 2 --out "$M" 2>/dev/null
CAL=bench/out/calib.txt
[ -f "$CAL" ] || cat data/wikitext-2-raw/wiki.test.raw data/wikitext-2/valid.txt > "$CAL"
OUTD=bench/out/recipes
cat > "$OUTD/ablation_gptq_w8a8.yaml" <<'EOF'
# ablation: smoothquant_gptq_w8a8.yaml without its SmoothQuantModifier
quant_stage:
  quant_modifiers:
    GPTQModifier:
      targets: [Linear]
      scheme: W8A8
      ignore: [lm_head, "re:.*mlp.gate$", "re:.*mlp.shared_expert_gate$"]
EOF
list=()
if [ -n "${RECIPES:-}" ]; then for r in $RECIPES; do list+=("recipes/$r.yaml"); done
else for r in recipes/*.yaml; do list+=("$r"); done; fi
list+=("$OUTD/ablation_gptq_w8a8.yaml")
echo "model $M ($(du -m "$M/model.safetensors" | cut -f1) MB bf16), calibration $SAMPLES x 512 tokens of $CAL, OMP_NUM_THREADS=${OMP_NUM_THREADS:-all}"
printf '%-26s %8s %9s %17s %17s %17s %15s %9s\n' recipe "wall s" "RSS MB" "forward s (%)" "gptq s (%)" "write s (%)" "other s (%)" "out MB"
declare -A F G
for R in "${list[@]}"; do
  name=$(basename "$R" .yaml)
  if grep -q AWQModifier "$R"; then echo "$name: skipped (AWQModifier)"; continue; fi
  O="$OUTD/$name"; log="$OUTD/$name.log"; tm="$OUTD/$name.time"
  args=()
  grep -qE 'GPTQModifier|SparseGPTModifier|SmoothQuantModifier|kv_cache_scheme' "$R" && \
    args=(--dataset "$CAL" --num-calibration-samples "$SAMPLES" --max-seq-length 512 --holdout 0)
  if ! /usr/bin/time -v "$BUILD"/quench compress "$M" -o "$O" --recipe "$R" "${args[@]}" --overwrite --no-sample --quiet \
       > "$log" 2> "$tm"; then
    echo "$name: compress failed:"; grep -v '^\s' "$tm" | head -5; continue
  fi
  wall=$(awk -F': ' '/Elapsed \(wall/ { n = split($2, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]; print s }' "$tm")
  rss=$(awk '/Maximum resident/ { printf "%.0f", $NF / 1000 }' "$tm")
  ex=$(awk '/^time / { print $2 }' "$log")
  fw=$(sed -n 's/.*(forward \([0-9.]*\) s, GPTQ \([0-9.]*\) s).*/\1/p' "$log"); fw=${fw:-0}
  gq=$(sed -n 's/.*(forward \([0-9.]*\) s, GPTQ \([0-9.]*\) s).*/\2/p' "$log"); gq=${gq:-0}
  F[$name]=$fw; G[$name]=$gq
  out=$(du -m --apparent-size "$O" | cut -f1)
  awk -v n="$name" -v w="$wall" -v r="$rss" -v e="$ex" -v f="$fw" -v g="$gq" -v o="$out" 'BEGIN {
    wr = e - f - g; ot = w - e; if (ot < 0) ot = 0
    printf "%-26s %8.2f %9s %9.2f (%4.1f%%) %9.2f (%4.1f%%) %9.2f (%4.1f%%) %7.2f (%4.1f%%) %9s\n", n, w, r,
      f, 100 * f / w, g, 100 * g / w, wr, 100 * wr / w, ot, 100 * ot / w, o }'
  [ "${KEEP:-0}" = 1 ] || rm -rf "$O"   # ~300 MB each; KEEP=1 keeps the checkpoints
  grep -h "warning: .*vLLM" "$tm" | sed 's/^quench compress: warning: [^:]*: /  vLLM warning: /' | cut -c1-160
done
echo "derived per-modifier time (differences of the runs above; noise of a shared machine included):"
if [ -n "${F[smoothquant_gptq_w8a8]:-}" ] && [ -n "${F[ablation_gptq_w8a8]:-}" ]; then
  awk -v a="${F[smoothquant_gptq_w8a8]}" -v b="${F[ablation_gptq_w8a8]}" 'BEGIN {
    printf "  SmoothQuantModifier  %.2f s (forward of smoothquant_gptq_w8a8 %.2f s - forward without it %.2f s)\n", a - b, a, b }'
fi
if [ -n "${G[w8a8_24_serving]:-}" ] && [ -n "${G[smoothquant_gptq_w8a8]:-}" ]; then
  awk -v a="${G[w8a8_24_serving]}" -v b="${G[smoothquant_gptq_w8a8]}" 'BEGIN {
    printf "  SparseGPTModifier    %.2f s (gptq phase of w8a8_24_serving %.2f s - smoothquant_gptq_w8a8 %.2f s)\n", a - b, a, b }'
fi
if [ -n "${G[sparsegpt_24_fp8_dynamic]:-}" ]; then
  echo "  sparsegpt_24_fp8_dynamic: its gptq phase (${G[sparsegpt_24_fp8_dynamic]} s) is SparseGPT plus the fp8 fake quantization of the propagation"
fi
echo "not measured by quench: per-modifier seconds (SmoothQuant is inside 'forward', SparseGPT inside 'gptq');"
echo "the dataset load/tokenization is inside 'other'; quantize/pack vs safetensors write are not separated in 'write'"
