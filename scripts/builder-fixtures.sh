#!/usr/bin/env bash
# Writes tests/fixtures/buildx-store/: buildx's builder store (instances/ and
# `current`) as the real buildx v0.38.2 writes it for `buildx create --driver
# remote`, so tests/builders.rs reads what buildx writes without needing buildx.
#
#   scripts/builder-fixtures.sh [BUILDX]   (default: ~/.cache/fbuild/buildx)
#
# The endpoints are placeholders; the test points `fixture-remote` at the test
# daemon. The docker-container builder cannot be created without a Docker
# daemon, so when there is none its file is written in the same shape by hand
# (the fields buildx's store.NodeGroup marshals).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
buildx=${1:-$HOME/.cache/fbuild/buildx}
out="$repo/tests/fixtures/buildx-store"
DOCKER_CONFIG=$(mktemp -d)
export DOCKER_CONFIG
trap 'rm -rf "$DOCKER_CONFIG"' EXIT

"$buildx" create --name fixture-remote --driver remote tcp://127.0.0.1:1234 >/dev/null
"$buildx" create --name Fixture-TLS --driver remote \
    --driver-opt cacert=/certs/ca.pem,cert=/certs/cert.pem,key=/certs/key.pem,servername=buildkitd.example \
    tcp://buildkitd.example:1234 >/dev/null
if ! "$buildx" create --name fixture-container --driver docker-container >/dev/null 2>&1; then
    printf '%s' '{"Name":"fixture-container","Driver":"docker-container","Nodes":[{"Name":"fixture-container0","Endpoint":"unix:///var/run/docker.sock","Platforms":null,"DriverOpts":null,"Flags":null,"Files":null}],"Dynamic":false}' \
        >"$DOCKER_CONFIG/buildx/instances/fixture-container"
fi
"$buildx" use fixture-remote

rm -rf "$out"
mkdir -p "$out/instances"
cp "$DOCKER_CONFIG"/buildx/instances/* "$out/instances/"
cp "$DOCKER_CONFIG/buildx/current" "$out/current"
echo "wrote $out"
