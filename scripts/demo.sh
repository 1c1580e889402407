#!/usr/bin/env bash
# The README's "main job": on a fresh machine, set up a local buildkitd and
# registry, build fbuild, and build the example project with it.
#
#   scripts/demo.sh [--debian]
#
# The result (the runner stage's files) lands in .testenv/demo-out/ (or under
# $FBUILD_TESTENV_DIR). --debian builds on a Debian bookworm + python3 base
# (made once with debootstrap, about a minute) instead of busybox, so the deps
# stage really runs pip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/lib.sh
source scripts/lib.sh
fbuild_add_tool_paths

debian=0
for arg in "$@"; do
    case $arg in
    --debian) debian=1 ;;
    *)
        echo "usage: $0 [--debian]" >&2
        exit 2
        ;;
    esac
done

state=${FBUILD_TESTENV_DIR:-$PWD/.testenv}
if [[ $debian == 1 ]]; then
    bash scripts/testenv.sh up --with-debian
else
    bash scripts/testenv.sh up
fi
# shellcheck source=/dev/null
source "$state/env"
base=$FBUILD_TEST_BUSYBOX
if [[ $debian == 1 ]]; then
    base=$FBUILD_TEST_DEBIAN
fi

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-${HOME:-/root}/.cache/fbuild/target}
echo "[demo] cargo build --release" >&2
cargo build --release
fbuild="$CARGO_TARGET_DIR/release/fbuild"

out="$state/demo-out"
rm -rf "$out"
secret=()
# Lets pip in the deps stage trust a TLS-intercepting proxy; never in the image.
if [[ -s /etc/ssl/certs/ca-certificates.crt ]]; then
    secret=(--secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt)
fi
echo "[demo] fbuild solve examples/python-service (BASE=$base)" >&2
(
    set -x
    "$fbuild" --addr "$FBUILD_TEST_ADDR" solve examples/python-service \
        --build-arg "BASE=$base" "${secret[@]}" \
        -o "type=local,dest=$out"
)
echo "[demo] built into $out:" >&2
ls -l "$out/app" "$out/app/deps" >&2
cat "$out/app/BUILD-INFO"
