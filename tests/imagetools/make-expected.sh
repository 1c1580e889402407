#!/usr/bin/env bash
# Makes tests/imagetools/expected/* by running the reference, buildx v0.38.2
# (scripts/buildx.sh), against the test daemon and registry:
#
#   source .testenv/env && bash tests/imagetools/make-expected.sh
#
# The images are reproducible (SOURCE_DATE_EPOCH=0, no attestations), so the
# indexes buildx makes of them have fixed digests, which tests/imagetools.rs
# checks fbuild's against. Registry addresses in text outputs are written as
# REGISTRY.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
[[ -n ${FBUILD_TEST_REGISTRY:-} ]] || { echo "source .testenv/env first" >&2; exit 1; }
eval "$(bash scripts/buildx.sh env)"
out=tests/imagetools/expected
mkdir -p "$out"
R=$FBUILD_TEST_REGISTRY
repo=$R/fbuild-imagetools-ref
export SOURCE_DATE_EPOCH=0 BUILDX_NO_DEFAULT_ATTESTATIONS=1
for arch in amd64 arm64; do
    buildx build --quiet --platform "linux/$arch" -t "$repo:$arch" \
        -o type=image,push=true,rewrite-timestamp=true tests/imagetools/context >/dev/null
done
# 1. Two single-platform images joined.
buildx imagetools create --dry-run "$repo:amd64" "$repo:arm64" >"$out/two.json"
# 2. With index and per-platform descriptor annotations.
buildx imagetools create --dry-run \
    --annotation 'index:org.opencontainers.image.title=app <&>' \
    --annotation 'manifest-descriptor[linux/arm64]:com.example.note=arm' \
    "$repo:amd64" "$repo:arm64" >"$out/annotated.json"
# 3. One source, made an index (buildx's default) and copied as it is.
buildx imagetools create --dry-run "$repo:amd64" >"$out/one.json"
buildx imagetools create --dry-run --prefer-index=false "$repo:amd64" >"$out/one-as-is.json"
# 4. Pushed, then appended to, then filtered by platform.
buildx imagetools create --progress none -t "$repo:joined" "$repo:amd64"
buildx imagetools create --progress none --append -t "$repo:joined" "$repo:arm64"
buildx imagetools inspect --raw "$repo:joined" >"$out/appended.json"
buildx imagetools create --dry-run --platform linux/arm64 "$repo:joined" >"$out/filtered.json"
# 5. What inspect prints for the index.
buildx imagetools inspect "$repo:joined" | sed "s|$R|REGISTRY|g" >"$out/inspect.txt"
buildx imagetools inspect --format '{{json .Manifest}}' "$repo:joined" >"$out/inspect-manifest.json"
# The image manifests themselves, so the test can tell a build difference
# from an imagetools one.
for arch in amd64 arm64; do
    buildx imagetools inspect --raw "$repo:$arch" | sha256sum | cut -d' ' -f1 >"$out/$arch.digest"
done
echo "wrote $out" >&2
