#!/usr/bin/env bash
# Optional, for realistic builds: a Debian bookworm base with python3 and pip,
# pushed to the test registry as REGISTRY/debian-python:bookworm.
#
#   scripts/debian-base.sh          (or: scripts/testenv.sh up --with-debian)
#
# The root filesystem comes from debootstrap (minbase variant, about 30-60 s the
# first time) and is kept in STATE/images/debian-python/ so later runs only
# rebuild the image. A plain `testenv.sh up` does not run this; tests that need
# the image read FBUILD_TEST_DEBIAN from the env file (empty until this has run).
#
# Set FBUILD_DEBIAN_MIRROR to use another mirror (default: deb.debian.org over http).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$FBUILD_STATE
ENV_FILE="$STATE/env"
MIRROR=${FBUILD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
DIR="$STATE/images/debian-python"

[[ $(id -u) == 0 ]] || die "debootstrap needs root"
[[ -s $STATE/ports ]] || die "no test environment: run scripts/testenv.sh up first"
REGISTRY="127.0.0.1:$(sed -n 's/^REGISTRY_PORT=//p' "$STATE/ports")"
REF="$REGISTRY/debian-python:bookworm"

apt_install debootstrap

if [[ ! -e $DIR/.complete ]]; then
    log "debootstrap bookworm (minbase + python3, pip) into $DIR"
    rm -rf "$DIR"
    mkdir -p "$DIR"
    debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates \
        bookworm "$DIR/rootfs" "$MIRROR" >"$STATE/images/debian-python.log" 2>&1 || {
        tail -n 30 "$STATE/images/debian-python.log" >&2
        die "debootstrap failed (log: $STATE/images/debian-python.log)"
    }
    # Caches and logs make the image bigger and the context slower to send.
    rm -rf "$DIR/rootfs/var/cache/apt/archives/"*.deb "$DIR/rootfs/var/lib/apt/lists/"* \
        "$DIR/rootfs/var/log/"*.log
    # Debian's pip refuses system-wide installs (PEP 668); builds in tests use
    # venvs or --target, but a base image should not fight its users.
    rm -f "$DIR/rootfs/usr/lib/python3."*/EXTERNALLY-MANAGED
    printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8\nCMD ["/bin/bash"]\n' \
        >"$DIR/Dockerfile"
    # Keep the mount points, not debootstrap's device nodes.
    printf 'rootfs/proc/*\nrootfs/sys/*\nrootfs/dev/*\n' >"$DIR/.dockerignore"
    touch "$DIR/.complete"
fi

log "building and pushing $REF"
push_image "$DIR" "$REF" "$STATE/images/debian-python-build.log" "$REF"
# Make the new image visible to whoever sources the env file now.
if [[ -s $ENV_FILE ]]; then
    sed -i "s|^export FBUILD_TEST_DEBIAN=.*|export FBUILD_TEST_DEBIAN='$REF'|" "$ENV_FILE"
fi
log "pushed $REF"
