#!/bin/sh
# Prints what Go's client/llb (BuildKit v0.32.2) marshals for the graphs in
# main.go; src/llb/tests.rs pins these values. Needs Go and BuildKit v0.32.2
# with its dependencies in the module cache (scripts/testenv.sh puts them
# there when it builds buildkitd), and no network.
#
# main.go is built inside a scratch copy of BuildKit's own module, so its
# go.mod/go.sum select exactly the versions the cache holds; a module of our
# own would make `go` look up the whole dependency graph again.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src="$(go env GOMODCACHE)/github.com/moby/buildkit@v0.32.2"
work=$(mktemp -d)
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
cp -r "$src/." "$work/"
chmod -R u+w "$work"
mkdir -p "$work/cmd/fbuild-golden-llb"
cp "$here/main.go" "$work/cmd/fbuild-golden-llb/main.go"
cd "$work"
GOFLAGS="-mod=mod -buildvcs=false" GOPROXY=off GOTOOLCHAIN=local go run ./cmd/fbuild-golden-llb "$@"
