#!/usr/bin/env bash
# A rootless buildkitd for fbuild's tests, run as the unprivileged user
# fbuild-rootless inside rootlesskit (Debian's rootlesskit + uidmap).
#
#   scripts/rootless.sh up      create the user if needed, start the daemon, write STATE/rootless.env
#   scripts/rootless.sh down    stop the daemon this script started (by pid)
#
# The daemon listens on the user's default rootless socket,
# $XDG_RUNTIME_DIR/buildkit/buildkitd.sock, so a client run as that user with that
# XDG_RUNTIME_DIR and no --addr finds it. Each state folder (work tree, CI clone)
# gets its own XDG_RUNTIME_DIR and daemon root, so two checkouts don't collide.
# Run as root, after `scripts/testenv.sh up` (it needs .tools/bin and the registry port).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STATE=$FBUILD_STATE
VERSION=$FBUILD_BUILDKIT_VERSION
USER_NAME=fbuild-rootless
TAG=$(fbuild_state_tag)
XDG="/tmp/fbuild-rootless-$TAG"
SOCK="$XDG/buildkit/buildkitd.sock"
# The user cannot reach into /root or a 0700 checkout, so its binaries live in a
# world-readable folder of their own.
BIN_DIR="/usr/local/lib/fbuild-test/$VERSION"
PID_FILE="$STATE/rootless.pid"
ENV_FILE="$STATE/rootless.env"
LOG="$STATE/rootless-buildkitd.log"

[[ $(id -u) == 0 ]] || die "scripts/rootless.sh must run as root (it creates a user and switches to it)"

user_home() { getent passwd "$USER_NAME" | cut -d: -f6; }

# The daemon's root folder; it also marks the process as ours (it is on the
# rootlesskit command line).
daemon_root() { echo "$(user_home)/.local/share/fbuild-buildkit-$TAG"; }

# as_user CMD...: run CMD as the rootless user with a minimal, explicit
# environment. setpriv execs (no fork), so `$!` after `as_user ... &` is CMD's pid.
as_user() {
    setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups \
        env -i HOME="$(user_home)" USER="$USER_NAME" LOGNAME="$USER_NAME" \
        PATH="$BIN_DIR:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" \
        XDG_RUNTIME_DIR="$XDG" "$@"
}

answers() {
    as_user "$BIN_DIR/buildctl" --addr "unix://$SOCK" debug workers
}

ensure_user() {
    apt_install rootlesskit uidmap runc
    if ! getent passwd "$USER_NAME" >/dev/null; then
        log "creating user $USER_NAME"
        # useradd -m also gives the user /etc/subuid and /etc/subgid ranges.
        useradd -m -s /bin/bash "$USER_NAME"
    fi
    grep -q "^$USER_NAME:" /etc/subuid && grep -q "^$USER_NAME:" /etc/subgid ||
        die "$USER_NAME has no range in /etc/subuid or /etc/subgid (rootlesskit needs both)"
}

ensure_binaries() {
    local name
    [[ -x $FBUILD_TOOLS/buildkitd ]] || die "no $FBUILD_TOOLS/buildkitd: run scripts/testenv.sh up first"
    mkdir -p "$BIN_DIR"
    chmod 755 /usr/local/lib/fbuild-test "$BIN_DIR"
    for name in buildkitd buildctl; do
        if ! cmp -s "$FBUILD_TOOLS/$name" "$BIN_DIR/$name"; then
            install -m 755 "$FBUILD_TOOLS/$name" "$BIN_DIR/$name.new"
            mv -f "$BIN_DIR/$name.new" "$BIN_DIR/$name"
        fi
    done
}

cmd_up() {
    local root reg_port= changed=0
    mkdir -p "$STATE"
    exec 9>"$STATE/.rootless.lock"
    flock 9
    ensure_user
    ensure_binaries
    root=$(daemon_root)
    install -d -m 700 -o "$USER_NAME" -g "$USER_NAME" "$XDG"
    as_user mkdir -p "$root" "$XDG/buildkit"

    # The loopback registry speaks plain HTTP; tell this daemon too.
    if [[ -s $STATE/ports ]]; then
        reg_port=$(sed -n 's/^REGISTRY_PORT=//p' "$STATE/ports")
    fi
    {
        echo "# Written by scripts/rootless.sh; rewritten on every \`up\`."
        if [[ -n $reg_port ]]; then
            printf '[registry."127.0.0.1:%s"]\n  http = true\n  insecure = true\n' "$reg_port"
        fi
    } >"$STATE/rootless-buildkitd.toml.new"
    cmp -s "$STATE/rootless-buildkitd.toml.new" "$XDG/buildkitd.toml" || changed=1
    install -m 644 -o "$USER_NAME" -g "$USER_NAME" "$STATE/rootless-buildkitd.toml.new" "$XDG/buildkitd.toml"
    rm -f "$STATE/rootless-buildkitd.toml.new"

    if pid_of "$PID_FILE" "$root" >/dev/null; then
        if [[ $changed == 0 ]] && answers >/dev/null 2>&1; then
            write_env
            return 0
        fi
        stop_pid "$PID_FILE" "rootless buildkitd" "$root"
    fi
    rm -f "$SOCK"
    log "starting rootless buildkitd as $USER_NAME (unix://$SOCK)"
    # --net=host: builds share the host's network (so they reach the loopback
    # registry and package mirrors); --oci-worker-no-process-sandbox: an
    # unprivileged user cannot mount a fresh procfs for each RUN step here.
    setsid setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups \
        env -i HOME="$(user_home)" USER="$USER_NAME" LOGNAME="$USER_NAME" \
        PATH="$BIN_DIR:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" XDG_RUNTIME_DIR="$XDG" \
        rootlesskit --net=host --copy-up=/etc --disable-host-loopback \
        "$BIN_DIR/buildkitd" --oci-worker-no-process-sandbox \
        --config "$XDG/buildkitd.toml" --root "$root" --addr "unix://$SOCK" \
        >>"$LOG" 2>&1 </dev/null 9>&- &
    echo $! >"$PID_FILE"
    if ! wait_for 30 "rootless buildkitd" answers; then
        tail -n 40 "$LOG" >&2 || true
        die "rootless buildkitd did not answer on unix://$SOCK within 30 s (log: $LOG)"
    fi
    write_env
    log "rootless buildkitd ready: source $ENV_FILE"
}

write_env() {
    cat >"$ENV_FILE.new" <<EOF
# fbuild rootless test daemon, written by scripts/rootless.sh up. Source it.
export FBUILD_TEST_ROOTLESS_USER='$USER_NAME'
export FBUILD_TEST_ROOTLESS_UID='$(id -u "$USER_NAME")'
export FBUILD_TEST_ROOTLESS_HOME='$(user_home)'
export FBUILD_TEST_ROOTLESS_XDG='$XDG'
export FBUILD_TEST_ROOTLESS_ADDR='unix://$SOCK'
export FBUILD_TEST_ROOTLESS_BUILDCTL='$BIN_DIR/buildctl'
EOF
    mv -f "$ENV_FILE.new" "$ENV_FILE"
}

cmd_down() {
    local root=
    getent passwd "$USER_NAME" >/dev/null && root=$(daemon_root)
    if [[ -n $root ]]; then
        stop_pid "$PID_FILE" "rootless buildkitd" "$root"
    else
        rm -f "$PID_FILE"
    fi
    rm -f "$ENV_FILE"
}

case ${1:-} in
up) cmd_up ;;
down) cmd_down ;;
*)
    echo "usage: $0 up | down" >&2
    exit 2
    ;;
esac
