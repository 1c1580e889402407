# Shared helpers for fbuild's test-environment scripts. Sourced, never run.
#
# Everything here is about *our* processes: a pid counts as ours only when the
# process is alive AND its command line mentions our state folder, so a stale
# pid file whose number was reused by an unrelated process is never touched.

# shellcheck shell=bash

FBUILD_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FBUILD_BUILDKIT_VERSION=v0.32.2
FBUILD_TOOLS="$FBUILD_REPO/.tools/bin"
FBUILD_STATE=${FBUILD_TESTENV_DIR:-$FBUILD_REPO/.testenv}

# A short, stable tag for this state folder: it keeps ports, sockets and the
# rootless daemon of two checkouts (say the work tree and a CI clone) apart.
fbuild_state_tag() {
    printf '%s' "$FBUILD_STATE" | cksum | cut -d' ' -f1
}

# The root daemon's socket. A unix socket path must fit in sun_path (108 bytes);
# deep checkouts get a socket under /run instead of the state folder.
fbuild_sock() {
    local sock="$FBUILD_STATE/buildkitd.sock"
    if ((${#sock} > 100)); then
        sock="/run/fbuild-test-$(fbuild_state_tag)/buildkitd.sock"
    fi
    printf '%s\n' "$sock"
}

# fbuild_add_tool_paths: put cargo's and Go's bin folders on PATH when they
# exist and are missing (CI runs with the machine's environment, which may lack
# the login PATH).
fbuild_add_tool_paths() {
    local dir
    for dir in "${HOME:-/root}/.cargo/bin" /usr/local/go/bin; do
        if [[ -d $dir && :$PATH: != *:$dir:* ]]; then
            PATH="$dir:$PATH"
        fi
    done
    export PATH
}

log() { printf '[testenv] %s\n' "$*" >&2; }
die() {
    printf '[testenv] error: %s\n' "$*" >&2
    exit 1
}

# pid_of FILE [MARK]: print the pid recorded in FILE when that process is
# alive and is one of ours (its command line contains MARK, by default our
# state folder followed by a slash, so /x/.testenv never matches /x/.testenv2).
pid_of() {
    local file=$1 mark=${2:-$FBUILD_STATE/} pid
    [[ -s $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/cmdline ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$mark" || return 1
    printf '%s\n' "$pid"
}

# stop_pid FILE NAME [MARK]: SIGTERM our recorded process, wait up to 15 s,
# then SIGKILL it. Only ever signals that one pid.
stop_pid() {
    local file=$1 name=$2 mark=${3:-$FBUILD_STATE/} pid i
    if pid=$(pid_of "$file" "$mark"); then
        log "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$file"
}

# port_listening PORT: true when something accepts TCP connections on it.
port_listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_for SECONDS DESCRIPTION COMMAND...: retry COMMAND every 0.2 s.
wait_for() {
    local secs=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

# apt packages, installed only when missing. `apt-get update` runs at most once.
FBUILD_APT_UPDATED=
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    [[ $(id -u) == 0 ]] || die "missing Debian packages: ${missing[*]} (run as root, or apt-get install them)"
    log "installing Debian packages: ${missing[*]}"
    if [[ -z $FBUILD_APT_UPDATED ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        FBUILD_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
}

# push_image DIR REF LOGFILE WHAT: build the Dockerfile in DIR with the root
# test daemon and push it to REF in the loopback registry. SOURCE_DATE_EPOCH=0
# and rewrite-timestamp: the same files give the same digest. On failure, the
# log's tail and `building WHAT failed`.
push_image() {
    local dir=$1 ref=$2 logfile=$3 what=$4
    "$FBUILD_TOOLS/buildctl" --addr "unix://$(fbuild_sock)" build --progress=plain \
        --frontend dockerfile.v0 --local "context=$dir" --local "dockerfile=$dir" \
        --opt build-arg:SOURCE_DATE_EPOCH=0 \
        --output "type=image,name=$ref,push=true,registry.insecure=true,rewrite-timestamp=true" \
        >"$logfile" 2>&1 || {
        tail -n 30 "$logfile" >&2
        die "building $what failed (log: $logfile)"
    }
}
