# Shared by tests/cli_*.sh: sourced after Q, SHARED, SRC are set. A scratch folder $W removed on
# exit, pass/fail counters (ok, bad NAME), lt A B (exit status of A < B) and finish NAME.
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL $1"; fails=$((fails+1)); }
lt() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }
finish() { echo "$1: $passes passed, $fails failed"; [ $fails -eq 0 ]; }
