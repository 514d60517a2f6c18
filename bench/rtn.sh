#!/usr/bin/env bash
# RTN throughput: `quench compress` of a generated tinyllama-1.1b-shaped model (all 22 layers,
# random bf16 weights) with W4A16, W8A8 and FP8_BLOCK, in MB of input weights per second, next to
# the time of reading the same files (cat to /dev/null) in the same run. Prints figures and the
# ratio compress-time / read-time (target <= 1.5); never fails on time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh build >/dev/null
M=bench/out/tinyllama-1.1b
mkdir -p bench/out
[ -f "$M/config.json" ] || build/bench/make_model --preset tinyllama-1.1b --out "$M"
bytes=$(cat "$M"/*.safetensors | wc -c)
now() { date +%s.%N; }
t0=$(now); cat "$M"/*.safetensors > /dev/null; t1=$(now)
read_s=$(echo "$t1 - $t0" | bc -l)
printf "model        %s, %.1f MB of safetensors\n" "$M" "$(echo "$bytes/1000000" | bc -l)"
printf "read (cat)   %.2f s = %.0f MB/s\n" "$read_s" "$(echo "$bytes/1000000/$read_s" | bc -l)"
for s in W4A16 W8A8 FP8_BLOCK; do
  out=bench/out/rtn-$s
  t0=$(now)
  build/quench compress "$M" -o "$out" --scheme "$s" --overwrite --no-sample --quiet > /dev/null
  t1=$(now)
  c=$(echo "$t1 - $t0" | bc -l)
  osz=$(du -sb "$out" | cut -f1)
  printf "%-10s   %.2f s = %.0f MB/s, output %.1f MB, %.2fx the read time\n" "$s" "$c" \
    "$(echo "$bytes/1000000/$c" | bc -l)" "$(echo "$osz/1000000" | bc -l)" "$(echo "$c/$read_s" | bc -l)"
  rm -rf "$out"
done
