#!/usr/bin/env bash
# Installs dependencies, builds quench warning-free (-Werror) and runs the test suite; then builds
# and runs it again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
echo "== build (Release, -Wall -Wextra -Werror) =="
bash scripts/build.sh build -DQN_WERROR=ON
echo "== tests =="
(cd build && ctest --output-on-failure -j2)
if [ "${QN_SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== build (AddressSanitizer + UBSan, -Werror) =="
  bash scripts/build.sh build-asan -DQN_WERROR=ON -DQN_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
  echo "== tests under ASan + UBSan =="
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j2)
fi
