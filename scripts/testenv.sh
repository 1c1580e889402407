#!/usr/bin/env bash
# fbuild's test environment: a root buildkitd (OCI worker) on a unix socket and
# a loopback TCP port, a loopback registry, and a busybox base image in it; a
# `git daemon` on loopback serving the repositories tests put in STATE/git/;
# a local S3 server (moto's, from PyPI, in .tools/moto/) for `--cache-to
# type=s3`; actionlint (built from Go's module cache) for examples/ci/; buildx
# (scripts/buildx.sh), which the tests comparing pushed digests run beside fbuild.
#
#   scripts/testenv.sh up [--with-debian]   install what is missing, start, write the env file
#   scripts/testenv.sh down                 stop the processes this script started (by pid)
#   scripts/testenv.sh env                  print the env file (`source <(scripts/testenv.sh env)`)
#   scripts/testenv.sh status               say what is running
#
# State lives in $FBUILD_TESTENV_DIR (default: .testenv/ in the repo, git-ignored);
# binaries in .tools/bin/ (git-ignored). `up` is idempotent: when our daemons are
# alive and answering it only rewrites the env file, which takes well under a second.
#
# Ports: the registry prefers 127.0.0.1:5555 and buildkitd's TCP listener
# 127.0.0.1:1234, so the usual environment (and CI's, which runs when nothing
# else does) has the same addresses every time. When a preferred port is taken
# by another process (say the work tree's environment while a second clone comes
# up) the next free one (+4, +8, ...) is used. The choice is recorded in
# STATE/ports and the env file and kept while our process runs; tests read the addresses
# from the env file, never assume them. FBUILD_TESTENV_REGISTRY_PORT and
# FBUILD_TESTENV_BUILDKITD_PORT pin them (then a busy port is an error).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$FBUILD_STATE
TOOLS=$FBUILD_TOOLS
VERSION=$FBUILD_BUILDKIT_VERSION
ACTIONLINT_VERSION=v1.7.12
MOTO_VERSION=5.2.6
ACTIONLINT="$TOOLS/actionlint"
MOTO_VENV="$TOOLS/../moto"
MOTO_SERVER="$MOTO_VENV/bin/moto_server"
BUILDKITD="$TOOLS/buildkitd"
BUILDCTL="$TOOLS/buildctl"
ENV_FILE="$STATE/env"

SOCK=$(fbuild_sock)

# --- installing ---------------------------------------------------------------

ensure_debian_packages() {
    # git: the loopback git daemon; openssh-client: --ssh key tests; podman: --load.
    apt_install runc docker-registry busybox-static rootlesskit uidmap debootstrap curl ca-certificates git \
        openssh-client podman
}

has_buildkit() {
    [[ -x $BUILDKITD && -x $BUILDCTL ]] &&
        "$BUILDKITD" --version 2>/dev/null | grep -qw -- "$VERSION" &&
        "$BUILDCTL" --version 2>/dev/null | grep -qw -- "$VERSION"
}

# buildkitd and buildctl, pinned, built from source through the Go module proxy.
#
# `go install github.com/moby/buildkit/cmd/...@v0.32.2` does not work: go install
# refuses a module whose go.mod has `exclude` (or `replace`) directives, and
# buildkit's has. So we fetch the module into Go's module cache and build inside
# it with -mod=mod, stamping the version the way buildkit's own build does.
# GOCACHE and GOMODCACHE stay at Go's defaults (outside the repo), so a fresh
# clone on a warm machine only relinks (10-20 s here) instead of compiling
# (about 100 s on these 2 cores with an empty cache).
ensure_buildkit() {
    if has_buildkit; then
        return 0
    fi
    local go dir tmp
    go=$(command -v go || true)
    [[ -n $go ]] || { [[ -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go; }
    [[ -n $go ]] || die "Go is needed to build buildkitd $VERSION and is not on PATH"
    log "building buildkitd and buildctl $VERSION into $TOOLS (first time on this checkout)"
    mkdir -p "$TOOLS"
    # Outside any module, so no go.mod of ours (now or later) gets involved.
    dir=$(cd / && GOFLAGS= "$go" mod download -json "github.com/moby/buildkit@$VERSION" |
        grep -o '"Dir": *"[^"]*"' | sed 's/^"Dir": *"//; s/"$//')
    [[ -n $dir && -d $dir ]] || die "go mod download github.com/moby/buildkit@$VERSION gave no module folder"
    tmp=$(mktemp -d "$TOOLS/.build.XXXXXX")
    if ! (cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false" "$go" build -trimpath \
        -ldflags "-X github.com/moby/buildkit/version.Version=$VERSION" \
        -o "$tmp/" ./cmd/buildkitd ./cmd/buildctl); then
        rm -rf "$tmp"
        die "building buildkit $VERSION failed (see the Go output above)"
    fi
    mv -f "$tmp/buildkitd" "$BUILDKITD"
    mv -f "$tmp/buildctl" "$BUILDCTL"
    rmdir "$tmp"
    has_buildkit || die "the freshly built $BUILDKITD does not report version $VERSION"
}

# go_module_dir MODULE@VERSION: the module's folder in Go's module cache,
# downloaded through the module proxy when missing.
go_module_dir() {
    local go dir
    go=$(command -v go || true)
    [[ -n $go ]] || { [[ -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go; }
    [[ -n $go ]] || die "Go is needed to build $1 and is not on PATH"
    # Outside any module, so no go.mod of ours (now or later) gets involved.
    dir=$(cd / && GOFLAGS= "$go" mod download -json "$1" |
        grep -o '"Dir": *"[^"]*"' | sed 's/^"Dir": *"//; s/"$//')
    [[ -n $dir && -d $dir ]] || die "go mod download $1 gave no module folder"
    printf '%s\n' "$dir"
}

# actionlint, pinned, checks examples/ci/github-actions.yml (tests/ci_recipes.rs).
# Built like buildkitd: from its folder in Go's module cache, version stamped.
has_actionlint() {
    [[ -x $ACTIONLINT ]] && "$ACTIONLINT" -version 2>/dev/null | head -n 1 | grep -qxF -- "$ACTIONLINT_VERSION"
}

ensure_actionlint() {
    has_actionlint && return 0
    local go dir tmp
    go=$(command -v go || echo /usr/local/go/bin/go)
    log "building actionlint $ACTIONLINT_VERSION into $TOOLS"
    mkdir -p "$TOOLS"
    dir=$(go_module_dir "github.com/rhysd/actionlint@$ACTIONLINT_VERSION")
    tmp=$(mktemp -d "$TOOLS/.build.XXXXXX")
    if ! (cd "$dir" && GOFLAGS="-mod=mod -buildvcs=false" "$go" build -trimpath \
        -ldflags "-X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION" -o "$tmp/" ./cmd/actionlint); then
        rm -rf "$tmp"
        die "building actionlint $ACTIONLINT_VERSION failed (see the Go output above)"
    fi
    mv -f "$tmp/actionlint" "$ACTIONLINT"
    rmdir "$tmp"
    has_actionlint || die "the freshly built $ACTIONLINT does not report version $ACTIONLINT_VERSION"
}

# moto's S3 server, pinned, in a virtual environment of its own (PyPI through pip).
has_moto() {
    [[ -x $MOTO_SERVER ]] && "$MOTO_VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("moto"))' 2>/dev/null |
        grep -qxF -- "$MOTO_VERSION"
}

ensure_moto() {
    has_moto && return 0
    command -v python3 >/dev/null || die "python3 is needed for moto's S3 server and is not on PATH"
    log "installing moto[server] $MOTO_VERSION into $MOTO_VENV"
    rm -rf "$MOTO_VENV"
    python3 -m venv "$MOTO_VENV" || die "python3 -m venv $MOTO_VENV failed (Debian: apt-get install python3-venv)"
    "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" ||
        die "pip install moto[server]==$MOTO_VERSION failed"
    has_moto || die "moto $MOTO_VERSION is not in $MOTO_VENV after pip install"
}

# --- ports --------------------------------------------------------------------

REGISTRY_PORT=
BUILDKITD_PORT=
GIT_PORT=
S3_PORT=

# pick_port PINNED RECORDED PREFERRED OURS NAME: the port to use for NAME.
# OURS=1 means our own process already listens on RECORDED.
pick_port() {
    local pinned=$1 recorded=$2 preferred=$3 ours=$4 name=$5 p i
    if [[ -n $pinned ]]; then
        if [[ $ours == 1 && $pinned == "$recorded" ]] || ! port_listening "$pinned"; then
            echo "$pinned"
            return
        fi
        die "port $pinned (pinned for the $name) is in use by another process; free it or choose another"
    fi
    if [[ $ours == 1 && -n $recorded ]]; then
        echo "$recorded"
        return
    fi
    # Not running: start from the preferred port again, so a port taken once
    # does not stick to this checkout forever.
    p=$preferred
    for ((i = 0; i < 64; i++)); do
        if ! port_listening "$p"; then
            echo "$p"
            return
        fi
        log "port $p for the $name is taken by another process; trying the next one"
        p=$((p + 4))
        ((p < 65000)) || p=20000
    done
    die "found no free loopback port for the $name"
}

choose_ports() {
    local rec_reg= rec_bk= rec_git= rec_s3= reg_ours=0 bk_ours=0 git_ours=0 s3_ours=0
    if [[ -s $STATE/ports ]]; then
        rec_reg=$(sed -n 's/^REGISTRY_PORT=//p' "$STATE/ports")
        rec_bk=$(sed -n 's/^BUILDKITD_PORT=//p' "$STATE/ports")
        rec_git=$(sed -n 's/^GIT_PORT=//p' "$STATE/ports")
        rec_s3=$(sed -n 's/^S3_PORT=//p' "$STATE/ports")
    fi
    pid_of "$STATE/registry.pid" >/dev/null && reg_ours=1
    pid_of "$STATE/buildkitd.pid" >/dev/null && bk_ours=1
    pid_of "$STATE/git-daemon.pid" >/dev/null && git_ours=1
    [[ -n $rec_s3 ]] && pid_of "$STATE/s3.pid" "$(s3_mark "$rec_s3")" >/dev/null && s3_ours=1
    REGISTRY_PORT=$(pick_port "${FBUILD_TESTENV_REGISTRY_PORT:-}" "$rec_reg" 5555 "$reg_ours" registry)
    BUILDKITD_PORT=$(pick_port "${FBUILD_TESTENV_BUILDKITD_PORT:-}" "$rec_bk" 1234 "$bk_ours" "buildkitd TCP listener")
    GIT_PORT=$(pick_port "${FBUILD_TESTENV_GIT_PORT:-}" "$rec_git" 9419 "$git_ours" "git daemon")
    S3_PORT=$(pick_port "${FBUILD_TESTENV_S3_PORT:-}" "$rec_s3" 9555 "$s3_ours" "S3 server")
    printf 'REGISTRY_PORT=%s\nBUILDKITD_PORT=%s\nGIT_PORT=%s\nS3_PORT=%s\n' \
        "$REGISTRY_PORT" "$BUILDKITD_PORT" "$GIT_PORT" "$S3_PORT" >"$STATE/ports"
}

# --- registry -----------------------------------------------------------------

registry_answers() {
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$REGISTRY_PORT/v2/"
}

ensure_registry() {
    mkdir -p "$STATE/registry"
    cat >"$STATE/registry.yml.new" <<EOF
# Written by scripts/testenv.sh; rewritten on every \`up\`.
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $STATE/registry
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REGISTRY_PORT
EOF
    local changed=0
    cmp -s "$STATE/registry.yml.new" "$STATE/registry.yml" || changed=1
    mv -f "$STATE/registry.yml.new" "$STATE/registry.yml"
    if pid_of "$STATE/registry.pid" >/dev/null; then
        if [[ $changed == 0 ]] && registry_answers; then
            return 0
        fi
        stop_pid "$STATE/registry.pid" registry
    fi
    log "starting the registry on 127.0.0.1:$REGISTRY_PORT"
    # setsid: the daemon outlives this script and the terminal's signals.
    setsid docker-registry serve "$STATE/registry.yml" >>"$STATE/registry.log" 2>&1 </dev/null 9>&- &
    echo $! >"$STATE/registry.pid"
    if ! wait_for 20 registry registry_answers; then
        tail -n 30 "$STATE/registry.log" >&2 || true
        die "the registry did not answer on 127.0.0.1:$REGISTRY_PORT within 20 s (log: $STATE/registry.log)"
    fi
}

# --- git daemon ---------------------------------------------------------------

# Git build contexts (`fbuild solve git://...`) are fetched by buildkitd
# itself; tests create bare repositories under STATE/git and build them from
# git://127.0.0.1:GIT_PORT/NAME.git.
git_daemon_answers() {
    # An empty base path has no repositories; a refused connection is not up.
    (exec 3<>"/dev/tcp/127.0.0.1/$GIT_PORT") 2>/dev/null
}

ensure_git_daemon() {
    mkdir -p "$STATE/git"
    if pid_of "$STATE/git-daemon.pid" "$STATE/git" >/dev/null; then
        git_daemon_answers && return 0
        stop_pid "$STATE/git-daemon.pid" "git daemon" "$STATE/git"
    fi
    log "starting git daemon on 127.0.0.1:$GIT_PORT (repositories in $STATE/git)"
    # --pid-file: the listening process's own pid (`git` runs it as a child).
    rm -f "$STATE/git-daemon.pid"
    setsid git daemon --reuseaddr --listen=127.0.0.1 --port="$GIT_PORT" --export-all \
        --pid-file="$STATE/git-daemon.pid" --base-path="$STATE/git" "$STATE/git" \
        >>"$STATE/git-daemon.log" 2>&1 </dev/null 9>&- &
    if ! wait_for 20 "git daemon" git_daemon_answers; then
        tail -n 30 "$STATE/git-daemon.log" >&2 || true
        die "git daemon did not answer on 127.0.0.1:$GIT_PORT within 20 s (log: $STATE/git-daemon.log)"
    fi
}

# --- S3 server ----------------------------------------------------------------

# moto's command line names nothing of ours but its port, so "ours" is this
# exact server on this port (ports are per state folder, see choose_ports).
s3_mark() {
    printf 'moto_server -H 127.0.0.1 -p %s' "$1"
}

s3_answers() {
    curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$S3_PORT/"
}

ensure_s3() {
    local mark
    mark=$(s3_mark "$S3_PORT")
    if pid_of "$STATE/s3.pid" "$mark" >/dev/null; then
        s3_answers && return 0
        stop_pid "$STATE/s3.pid" "S3 server" "$mark"
    fi
    log "starting moto's S3 server on 127.0.0.1:$S3_PORT"
    setsid "$MOTO_SERVER" -H 127.0.0.1 -p "$S3_PORT" >>"$STATE/s3.log" 2>&1 </dev/null 9>&- &
    echo $! >"$STATE/s3.pid"
    if ! wait_for 30 "S3 server" s3_answers; then
        tail -n 30 "$STATE/s3.log" >&2 || true
        die "moto's S3 server did not answer on 127.0.0.1:$S3_PORT within 30 s (log: $STATE/s3.log)"
    fi
}

# --- buildkitd ----------------------------------------------------------------

buildkitd_answers() {
    "$BUILDCTL" --addr "unix://$SOCK" debug workers
}

ensure_buildkitd() {
    mkdir -p "$STATE/buildkitd-root" "$(dirname "$SOCK")"
    cat >"$STATE/buildkitd.toml.new" <<EOF
# Written by scripts/testenv.sh; rewritten on every \`up\`.
# The loopback test registry speaks plain HTTP.
[registry."127.0.0.1:$REGISTRY_PORT"]
  http = true
  insecure = true
EOF
    local changed=0 pid args
    cmp -s "$STATE/buildkitd.toml.new" "$STATE/buildkitd.toml" || changed=1
    mv -f "$STATE/buildkitd.toml.new" "$STATE/buildkitd.toml"
    # --oci-worker-net=host: RUN steps share the host's network, so apt and pip
    # reach the package registries; the default (auto) would pick CNI whenever
    # /etc/buildkit/cni.json happens to exist. --otel-socket-path: the default,
    # /run/buildkit/otel-grpc.sock, is machine-wide, and a second checkout's
    # daemon would take it over.
    args=(
        "$BUILDKITD"
        --config "$STATE/buildkitd.toml"
        --root "$STATE/buildkitd-root"
        --addr "unix://$SOCK"
        --addr "tcp://127.0.0.1:$BUILDKITD_PORT"
        --oci-worker=true --containerd-worker=false
        --oci-worker-snapshotter=overlayfs
        --oci-worker-net=host
        --allow-insecure-entitlement network.host
        --otel-socket-path "$(dirname "$SOCK")/otel-grpc.sock"
    )
    if pid=$(pid_of "$STATE/buildkitd.pid"); then
        # Keep a running daemon only when it runs the same binary (byte for
        # byte: another checkout's build of this version counts, a rebuild
        # since does not), with these flags and this config.
        if [[ $changed == 0 ]] &&
            cmp -s "/proc/$pid/exe" "$BUILDKITD" &&
            [[ $(tr '\0' '\n' <"/proc/$pid/cmdline" | tail -n +2) == "$(printf '%s\n' "${args[@]:1}")" ]] &&
            buildkitd_answers >/dev/null 2>&1; then
            return 0
        fi
        stop_pid "$STATE/buildkitd.pid" buildkitd
    fi
    [[ $(id -u) == 0 ]] || die "the test buildkitd runs as root (OCI worker, overlayfs); run this as root"
    rm -f "$SOCK"
    log "starting buildkitd $VERSION (unix://$SOCK, tcp://127.0.0.1:$BUILDKITD_PORT)"
    setsid "${args[@]}" >>"$STATE/buildkitd.log" 2>&1 </dev/null 9>&- &
    echo $! >"$STATE/buildkitd.pid"
    if ! wait_for 30 buildkitd buildkitd_answers; then
        tail -n 40 "$STATE/buildkitd.log" >&2 || true
        die "buildkitd did not answer on unix://$SOCK within 30 s (log: $STATE/buildkitd.log)"
    fi
}

# --- base images --------------------------------------------------------------

MANIFEST_ACCEPT="application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"

# registry_has REPO TAG
registry_has() {
    curl -fs -o /dev/null --max-time 5 -H "Accept: $MANIFEST_ACCEPT" \
        "http://127.0.0.1:$REGISTRY_PORT/v2/$1/manifests/$2"
}

# The busybox base: Debian's static busybox and one symlink per applet. The
# binary itself is not in the list, or its symlink would replace the binary.
ensure_busybox() {
    if registry_has busybox latest; then
        return 0
    fi
    local dir="$STATE/images/busybox" bb applet
    bb=$(dpkg -L busybox-static | grep -E '/s?bin/busybox$' | head -n 1)
    [[ -x $bb ]] || die "busybox-static's binary was not found"
    log "building and pushing 127.0.0.1:$REGISTRY_PORT/busybox:latest"
    rm -rf "$dir"
    mkdir -p "$dir/rootfs/bin" "$dir/rootfs/tmp" "$dir/rootfs/etc"
    chmod 1777 "$dir/rootfs/tmp"
    cp "$bb" "$dir/rootfs/bin/busybox"
    for applet in $("$bb" --list); do
        [[ $applet == busybox ]] && continue
        ln -s busybox "$dir/rootfs/bin/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$dir/rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$dir/rootfs/etc/group"
    printf 'FROM scratch\nCOPY rootfs/ /\nENV PATH=/bin\n' >"$dir/Dockerfile"
    # Reproducible (see push_image): the same busybox gives the same digest.
    push_image "$dir" "127.0.0.1:$REGISTRY_PORT/busybox:latest" "$STATE/images/busybox.log" "the busybox image"
    registry_has busybox latest || die "the registry does not list busybox:latest after the push"
}

# --- env file -----------------------------------------------------------------

write_env() {
    local reg="127.0.0.1:$REGISTRY_PORT" debian=
    if registry_has debian-python bookworm; then
        debian="$reg/debian-python:bookworm"
    fi
    cat >"$ENV_FILE.new" <<EOF
# fbuild test environment, written by scripts/testenv.sh up. Source it.
export FBUILD_TEST_ROOT='$STATE'
export FBUILD_TEST_ADDR='unix://$SOCK'
export FBUILD_TEST_TCP_ADDR='tcp://127.0.0.1:$BUILDKITD_PORT'
export FBUILD_TEST_REGISTRY='$reg'
export FBUILD_TEST_BUSYBOX='$reg/busybox:latest'
export FBUILD_TEST_DEBIAN='$debian'
export FBUILD_TEST_GIT='git://127.0.0.1:$GIT_PORT'
export FBUILD_TEST_GIT_ROOT='$STATE/git'
export FBUILD_TEST_S3='http://127.0.0.1:$S3_PORT'
export FBUILD_ACTIONLINT='$ACTIONLINT'
export FBUILD_BUILDX='$BUILDX'
export FBUILD_BUILDCTL='$BUILDCTL'
export FBUILD_BUILDKITD='$BUILDKITD'
export BUILDKIT_HOST='unix://$SOCK'
export PATH="$TOOLS:\$PATH"
EOF
    mv -f "$ENV_FILE.new" "$ENV_FILE"
}

# --- commands -----------------------------------------------------------------

cmd_up() {
    local with_debian=0 arg start=$SECONDS
    for arg in "$@"; do
        case $arg in
        --with-debian) with_debian=1 ;;
        *) die "unknown option for up: $arg" ;;
        esac
    done
    mkdir -p "$STATE"
    # One `up` at a time per state folder (tests run in parallel may call it).
    exec 9>"$STATE/.lock"
    flock 9
    ensure_debian_packages
    ensure_buildkit
    ensure_actionlint
    BUILDX=$(bash "$FBUILD_REPO/scripts/buildx.sh" path) || die "building buildx failed"
    ensure_moto
    choose_ports
    ensure_registry
    ensure_git_daemon
    ensure_s3
    ensure_buildkitd
    ensure_busybox
    if [[ $with_debian == 1 ]]; then
        bash "$FBUILD_REPO/scripts/debian-base.sh"
    fi
    write_env
    log "ready in $((SECONDS - start)) s: source $ENV_FILE (or: source <(scripts/testenv.sh env))"
}

cmd_down() {
    [[ -d $STATE ]] || return 0
    if [[ -s $STATE/rootless.pid ]]; then
        bash "$FBUILD_REPO/scripts/rootless.sh" down
    fi
    stop_pid "$STATE/buildkitd.pid" buildkitd
    stop_pid "$STATE/registry.pid" registry
    stop_pid "$STATE/git-daemon.pid" "git daemon" "$STATE/git"
    local s3_port
    s3_port=$(sed -n 's/^S3_PORT=//p' "$STATE/ports" 2>/dev/null || true)
    [[ -z $s3_port ]] || stop_pid "$STATE/s3.pid" "S3 server" "$(s3_mark "$s3_port")"
    rm -f "$SOCK" "$ENV_FILE"
}

cmd_env() {
    [[ -s $ENV_FILE ]] || die "no environment yet: run scripts/testenv.sh up"
    cat "$ENV_FILE"
}

cmd_status() {
    local name pid mark
    for name in registry git-daemon s3 buildkitd rootless; do
        mark="$STATE/"
        [[ $name == s3 ]] && mark=$(s3_mark "$(sed -n 's/^S3_PORT=//p' "$STATE/ports" 2>/dev/null)")
        # The rootless daemon's command line names its root, not our state folder.
        [[ $name == rootless ]] && mark="fbuild-buildkit-$(fbuild_state_tag)"
        if pid=$(pid_of "$STATE/$name.pid" "$mark"); then
            echo "$name: running (pid $pid)"
        else
            echo "$name: stopped"
        fi
    done
}

# Sourced (to reuse a function): define, do nothing.
[[ ${BASH_SOURCE[0]} == "$0" ]] || return 0

case ${1:-} in
up) shift && cmd_up "$@" ;;
down) cmd_down ;;
env) cmd_env ;;
status) cmd_status ;;
*)
    echo "usage: $0 up [--with-debian] | down | env | status" >&2
    exit 2
    ;;
esac
