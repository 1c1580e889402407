#!/usr/bin/env bash
# THE test command (README "Tests", and what CI runs through .ci/run):
# sets up the test environment, then runs every test target of the crate.
#
#   scripts/test.sh [cargo test args...]     e.g. scripts/test.sh -- --test-threads=1
#
# Integration tests need the root and rootless test daemons and the loopback
# registry; scripts/testenv.sh and scripts/rootless.sh install and start them
# (quickly, when they already run). --no-fail-fast: one failing test binary does
# not hide the results of the others. Under CI=true the daemons started for this
# run are stopped again at the end, since CI's clone is thrown away.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/lib.sh
source scripts/lib.sh
fbuild_add_tool_paths

state=${FBUILD_TESTENV_DIR:-$PWD/.testenv}
if [[ ${CI:-} == true ]]; then
    trap 'bash scripts/testenv.sh down || true' EXIT
fi

bash scripts/testenv.sh up
bash scripts/rootless.sh up
# shellcheck source=/dev/null
source "$state/env"
# shellcheck source=/dev/null
source "$state/rootless.env"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/fbuild/target}
# The library's first client after the CLI: an example program builds the
# example project into an OCI tarball on the test daemon.
echo "[test] cargo run --example build_oci_tarball (the library against the test daemon)" >&2
example_out=$(mktemp -d)
digest=$(BUILDKIT_HOST=$FBUILD_TEST_ADDR cargo run --quiet --example build_oci_tarball -- \
    examples/python-service "$example_out/app.tar" "BASE=$FBUILD_TEST_BUSYBOX" </dev/null)
if [[ $digest != sha256:* || ! -s $example_out/app.tar ]]; then
    echo "[test] the example did not build an image (digest: '$digest')" >&2
    exit 1
fi
rm -rf "$example_out"

echo "[test] cargo doc --no-deps (no warnings)" >&2
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

echo "[test] cargo test --all-targets --no-fail-fast $* (target dir: $CARGO_TARGET_DIR)" >&2
status=0
results=$(mktemp)
cargo test --all-targets --no-fail-fast "$@" </dev/null 2>&1 | tee "$results" || status=$?
# One closing line for all test binaries (cargo ends with the examples' and
# the binary's empty runs).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$results"
rm -f "$results"
exit "$status"
