#!/usr/bin/env bash
# A private Docker daemon and the pinned image registry on this machine, for image builds without a
# system Docker: the engine tests and `make up` of a stack that builds.
#
#   eval "$(scripts/images/local-registry.sh start)"   # prints DOCKER_HOST and LOCAL_REGISTRY exports
#   scripts/images/local-registry.sh env               # the same exports for a running pair
#   scripts/images/local-registry.sh status            # exit 0 when both answer
#   scripts/images/local-registry.sh stop              # stops both; no process is left behind
#   scripts/images/local-registry.sh binary            # builds the registry if needed; prints its path
#
# dockerd comes from Debian's docker.io (scripts/system-deps.sh installs it when missing; root). It runs
# on a private socket with its own data root, without bridge or iptables (builds need no network),
# on the vfs storage driver (works on any filesystem, also inside containers). The registry is
# distribution v3.1.2, built once with `go install` into the cache, listening on 127.0.0.1 only:
# dockerd treats 127.0.0.0/8 registries as insecure, so no TLS is needed.
#
# Everything lives outside the repository:
#   LOCAL_REGISTRY_CACHE  built registry binary     default ${XDG_CACHE_HOME:-~/.cache}/support-platform/images
#   LOCAL_REGISTRY_DIR    sockets, pids, logs, data default $LOCAL_REGISTRY_CACHE/run
#   LOCAL_REGISTRY_PORT   registry port             default: a free port chosen at start
set -euo pipefail

REGISTRY_MODULE=github.com/distribution/distribution/v3/cmd/registry
REGISTRY_VERSION=v3.1.2

CACHE=${LOCAL_REGISTRY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/support-platform/images}
RUN_DIR=${LOCAL_REGISTRY_DIR:-$CACHE/run}
REGISTRY_BIN=$CACHE/registry-$REGISTRY_VERSION/registry
ENV_FILE=$RUN_DIR/env
SOCKET=$RUN_DIR/docker.sock

log() { printf 'local-registry: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
    log "$what answers"
}

daemon_answers() { curl -fsS --max-time 2 --unix-socket "$SOCKET" http://docker/_ping; }
registry_answers() { curl -fsS --max-time 2 "http://127.0.0.1:$1/v2/"; }

ensure_dockerd() {
    command -v dockerd >/dev/null 2>&1 && return
    log "dockerd missing: installing Debian's docker.io"
    "$(dirname "$0")/../system-deps.sh" dockerd=docker.io
    command -v dockerd >/dev/null 2>&1 || die "docker.io installed but dockerd is not on PATH"
}

ensure_registry() {
    [ -x "$REGISTRY_BIN" ] && return
    command -v go >/dev/null 2>&1 || die "go is needed to build the registry ($REGISTRY_MODULE@$REGISTRY_VERSION)"
    mkdir -p "$(dirname "$REGISTRY_BIN")"
    exec 9>"$CACHE/registry.lock"
    flock 9
    if [ ! -x "$REGISTRY_BIN" ]; then
        log "building $REGISTRY_MODULE@$REGISTRY_VERSION (once)"
        local tmp
        tmp=$(mktemp -d "$CACHE/build.XXXXXX")
        GOBIN=$tmp CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-modcacherw \
            go install -trimpath "$REGISTRY_MODULE@$REGISTRY_VERSION" >&2
        mv "$tmp/registry" "$REGISTRY_BIN"
        rmdir "$tmp"
    fi
    exec 9>&-
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

print_env() {
    [ -f "$ENV_FILE" ] || die "not running (no $ENV_FILE): run '$0 start'"
    sed 's/^/export /' "$ENV_FILE"
}

start() {
    ensure_dockerd
    ensure_registry
    mkdir -p "$RUN_DIR"
    chmod 700 "$RUN_DIR"
    if alive "$RUN_DIR/docker.pid" && alive "$RUN_DIR/registry.pid"; then
        log "already running"
        print_env
        return
    fi
    stop_all quiet

    # setsid: own session, so the caller's Ctrl-C or exit does not take them down half-way.
    setsid dockerd \
        --host "unix://$SOCKET" \
        --data-root "$RUN_DIR/docker-root" \
        --exec-root "$RUN_DIR/exec" \
        --pidfile "$RUN_DIR/docker.pid" \
        --bridge=none --iptables=false --ip6tables=false \
        --storage-driver=vfs \
        >"$RUN_DIR/dockerd.log" 2>&1 </dev/null &
    wait_for 60 "dockerd on $SOCKET" daemon_answers || {
        tail -n 20 "$RUN_DIR/dockerd.log" >&2
        stop_all quiet
        die "dockerd did not answer within 60 s (log: $RUN_DIR/dockerd.log)"
    }

    local port=${LOCAL_REGISTRY_PORT:-$(free_port)}
    cat >"$RUN_DIR/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $RUN_DIR/registry-data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
    setsid "$REGISTRY_BIN" serve "$RUN_DIR/registry.yml" >"$RUN_DIR/registry.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/registry.pid"
    wait_for 30 "registry on 127.0.0.1:$port" registry_answers "$port" || {
        tail -n 20 "$RUN_DIR/registry.log" >&2
        stop_all quiet
        die "registry did not answer on 127.0.0.1:$port within 30 s (log: $RUN_DIR/registry.log)"
    }
    printf 'DOCKER_HOST=unix://%s\nLOCAL_REGISTRY=127.0.0.1:%s\n' "$SOCKET" "$port" >"$ENV_FILE"
    print_env
}

stop_pid() {  # stop_pid PIDFILE NAME: TERM, wait, then KILL
    local pidfile=$1 name=$2 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + 30))
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            log "$name ($pid) ignored TERM: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "$name stopped"
    fi
    rm -f "$pidfile"
}

stop_all() {
    stop_pid "$RUN_DIR/registry.pid" registry
    # dockerd stops the containerd it started; a containerd left by a killed dockerd is ours too.
    local containerd_pid=$RUN_DIR/exec/containerd/containerd.pid
    stop_pid "$RUN_DIR/docker.pid" dockerd
    stop_pid "$containerd_pid" containerd
    rm -f "$ENV_FILE" "$SOCKET"
    [ "${1:-}" = quiet ] || log "stopped (data kept in $RUN_DIR)"
}

status() {
    [ -f "$ENV_FILE" ] || { log "not running"; return 1; }
    local port
    port=$(sed -n 's/^LOCAL_REGISTRY=127.0.0.1://p' "$ENV_FILE")
    daemon_answers >/dev/null && registry_answers "$port" >/dev/null && log "dockerd and registry answer"
}

case "${1:-}" in
    start) start ;;
    stop) stop_all ;;
    env) print_env ;;
    status) status ;;
    binary) ensure_registry && echo "$REGISTRY_BIN" ;;
    *) die "usage: $0 start|stop|env|status|binary" ;;
esac
