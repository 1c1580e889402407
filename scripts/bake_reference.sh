#!/usr/bin/env bash
# Writes the expected `bake --print` output of a fixture folder by running the
# real buildx (v0.38.2) on it: scripts/bake_reference.sh tests/bake/functions
# writes tests/bake/functions/expected.json. Extra arguments go to `bake`.
#
# buildx wants a builder even for --print, so a throwaway remote-driver builder
# pointing at the test daemon ($BUILDKIT_HOST, from the test environment) is
# made in a temporary DOCKER_CONFIG, which keeps the user's config untouched.
# Environment variables that the fixture reads are cleared, so the file's
# defaults are what both tools see.
set -euo pipefail
fixture=${1:?usage: $0 FIXTURE_DIR [bake args...]}
shift
buildx=${BUILDX:-/root/.cache/fbuild/buildx}
testenv=${FBUILD_TESTENV_DIR:-$(cd "$(dirname "$0")/.." && pwd)/.testenv}
if [ -z "${BUILDKIT_HOST:-}" ] && [ -f "$testenv/env" ]; then
  # shellcheck disable=SC1091
  source "$testenv/env"
fi
: "${BUILDKIT_HOST:?set BUILDKIT_HOST or FBUILD_TESTENV_DIR}"
config=$(mktemp -d)
trap 'rm -rf "$config"' EXIT
export DOCKER_CONFIG=$config
"$buildx" create --name fbuild-ref --driver remote "$BUILDKIT_HOST" >/dev/null
cd "$fixture"
# `homedir()` reads HOME: the test gives fbuild the same one.
env HOME=/fbuild-home "$buildx" bake --builder fbuild-ref --print "$@" >expected.json
echo "wrote $fixture/expected.json" >&2
