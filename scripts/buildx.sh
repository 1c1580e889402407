#!/usr/bin/env bash
# The reference client: buildx v0.38.2, built from Go's module cache the way
# scripts/testenv.sh builds buildkitd, and a remote-driver builder named `ref`
# on the test daemon in a private DOCKER_CONFIG (no Docker needed).
#
#   scripts/buildx.sh path      print the buildx binary's path (building it once)
#   scripts/buildx.sh env       print `export DOCKER_CONFIG=... BUILDX_BUILDER=ref`
#                               for the running test daemon (source .testenv/env first)
#
# The scripts that make the expected outputs of the parity tests (tests/bake/*,
# tests/builders, ...) call this; scripts/testenv.sh does too, for the tests
# that compare what buildx and fbuild push (digests depend on the day's files).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
fbuild_add_tool_paths

BUILDX_VERSION=v0.38.2
BUILDX="$FBUILD_TOOLS/buildx"

ensure_buildx() {
    if [[ -x $BUILDX ]] && "$BUILDX" version 2>/dev/null | grep -qF " $BUILDX_VERSION "; then
        return 0
    fi
    local dir tmp
    log "building buildx $BUILDX_VERSION into $FBUILD_TOOLS (first time on this checkout)"
    mkdir -p "$FBUILD_TOOLS"
    dir=$(cd / && GOFLAGS= go mod download -json "github.com/docker/buildx@$BUILDX_VERSION" |
        grep -o '"Dir": *"[^"]*"' | sed 's/^"Dir": *"//; s/"$//')
    [[ -n $dir && -d $dir ]] || die "go mod download github.com/docker/buildx@$BUILDX_VERSION gave no module folder"
    tmp=$(mktemp -d "$FBUILD_TOOLS/.buildx.XXXXXX")
    if ! (cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false" go build -trimpath \
        -ldflags "-X github.com/docker/buildx/version.Version=$BUILDX_VERSION" \
        -o "$tmp/buildx" ./cmd/buildx); then
        rm -rf "$tmp"
        die "building buildx $BUILDX_VERSION failed (see the Go output above)"
    fi
    mv -f "$tmp/buildx" "$BUILDX"
    rmdir "$tmp"
}

# A private DOCKER_CONFIG with one remote builder on the test daemon.
ensure_builder() {
    [[ -n ${FBUILD_TEST_ADDR:-} ]] || die "source .testenv/env first (FBUILD_TEST_ADDR is not set)"
    local config="$FBUILD_STATE/buildx-config"
    mkdir -p "$config"
    if ! DOCKER_CONFIG=$config "$BUILDX" inspect ref >/dev/null 2>&1; then
        DOCKER_CONFIG=$config "$BUILDX" create --name ref --driver remote "$FBUILD_TEST_ADDR" >/dev/null
    fi
    printf 'export DOCKER_CONFIG=%q BUILDX_BUILDER=ref PATH=%q:"$PATH"\n' "$config" "$FBUILD_TOOLS"
}

case ${1:-} in
path) ensure_buildx && printf '%s\n' "$BUILDX" ;;
env) ensure_buildx && ensure_builder ;;
*) die "usage: scripts/buildx.sh path|env" ;;
esac
