#!/usr/bin/env bash
# Long property-test ("fuzzing") runs of the parsers in src/fuzz.rs.
# CI runs them with 64 cases each as part of `cargo test --lib`; this runs
# many more. Failures are saved to proptest-regressions/fuzz.txt (commit it:
# every later run replays it first).
#
#   scripts/fuzz.sh            # 20,000 cases per property
#   scripts/fuzz.sh 200000     # more
set -euo pipefail
cd "$(dirname "$0")/.."
cases="${1:-20000}"
start=$(date +%s)
PROPTEST_CASES="$cases" cargo test --lib -- fuzz:: --test-threads 2
echo "fuzz: $cases cases per property in $(( $(date +%s) - start )) s"
