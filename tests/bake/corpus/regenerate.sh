#!/bin/sh
# Writes each case's expected.json from buildx v0.38.2's own `bake --print`
# (run from the case's folder with the arguments in its `args` file, one per
# line), and its `--list` outputs (list-*.txt, list-*.json), which
# tests/bake_compat.rs compares fbuild's output against.
# Needs buildx (BUILDX, default: the one scripts/buildx.sh builds); --print
# talks to no builder. The test never runs buildx.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
BUILDX=${BUILDX:-$(bash "$here/../../../scripts/buildx.sh" path)}
export DOCKER_CONFIG=$(mktemp -d)
trap 'rm -rf "$DOCKER_CONFIG"' EXIT
for case in "$here"/*/; do
    (
        cd "$case"
        set --
        while IFS= read -r arg; do set -- "$@" "$arg"; done < args
        env -u BUILDX_NO_DEFAULT_ATTESTATIONS "$BUILDX" bake --print "$@" > expected.json
        # The files only: the first `-f FILE` pair of args, if any.
        files=""
        if [ "${1:-}" = "-f" ]; then files="-f $2"; fi
        for kind in targets variables; do
            "$BUILDX" bake $files --list "$kind" > "list-$kind.txt"
            "$BUILDX" bake $files --list "type=$kind,format=json" > "list-$kind.json"
        done
    )
    echo "wrote ${case}expected.json"
done
