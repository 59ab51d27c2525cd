#!/usr/bin/env bash
# Build the pinned binaries of the throwaway control plane from Go modules into a versioned cache
# outside the repository: kube-apiserver, kube-controller-manager and kube-scheduler (Kubernetes
# v1.37.2), etcd, kwok and kwokctl, and kubectl only when none is on PATH. No container runtime is
# needed: kwokctl runs them as processes (`runtime: binary`), see scripts/cluster.sh.
# Idempotent; a warm run only compares stamp files keyed on the pins below.
#
#   bin_dir="$(scripts/cluster/ensure-cluster.sh)"
#
# stdout: the last line is the absolute bin directory. Logs go to files in the cache (their tail is
# shown on failure) and progress to stderr. The cache root is
#   ${SUPPORT_PLATFORM_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/support-platform/cluster}
set -euo pipefail

# ---- pins: the cache stamps hash these lines, so editing one rebuilds what it feeds ----
KUBE_VERSION=v1.37.2
KUBE_MODULE=k8s.io/kubernetes
# The staging modules (k8s.io/api, k8s.io/client-go, ...) are published as v0.<minor>.<patch>.
KUBE_STAGING_VERSION=v0.37.2
KUBE_TAGS=selinux,notest,grpcnotrace
ETCD_VERSION=v3.7.3
ETCD_MODULE=go.etcd.io/etcd/server/v3
KWOK_VERSION=v0.8.0
KWOK_MODULE=sigs.k8s.io/kwok
# ---- end pins ----
# Bump when the build steps below change in a way that must invalidate built binaries.
RECIPE_REVISION=1

SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/$(basename "${BASH_SOURCE[0]}")"
CACHE_ROOT="${SUPPORT_PLATFORM_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/support-platform/cluster}"
VERSION_DIR="$CACHE_ROOT/kube-$KUBE_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION"
BIN_DIR="$VERSION_DIR/bin"
STAMP_DIR="$VERSION_DIR/stamps"
WORK_DIR="$VERSION_DIR/work"
LOG_DIR="$VERSION_DIR/logs"

KUBE_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler)

LOG_PREFIX=ensure-cluster
COMMON_PIN_PREFIXES=
# shellcheck source=scripts/lib/pinned-build.sh
source "$(dirname "$SCRIPT_PATH")/../lib/pinned-build.sh"

# kubectl: kwokctl drives the cluster with it. Built only when the machine has none.
need_kubectl() { ! command -v kubectl >/dev/null 2>&1; }

go_env_setup() {
    command -v go >/dev/null 2>&1 || die "go is not on PATH; it is needed to build the control plane"
    export CGO_ENABLED=0
    export GOTOOLCHAIN=local
    export GOFLAGS=-modcacherw
    # GOSUMDB stays on: every module here is a tagged release the checksum database knows. Set
    # GOSUMDB=off in the environment only where a proxy serves modules but not the checksum database.
    mkdir -p "$BIN_DIR" "$STAMP_DIR" "$WORK_DIR" "$LOG_DIR"
}

# k8s.io/kubernetes points every staging module at ./staging/src/...; replaces apply only in the
# main module, so the wrapper replaces each of them with its published v0.x release.
kube_staging_replaces() { # go.mod of k8s.io/kubernetes -> "k8s.io/x=k8s.io/x@v0.x.y" lines
    go mod edit -json "$1" | python3 -c '
import json, sys
version = sys.argv[1]
for r in json.load(sys.stdin).get("Replace") or []:
    if r["New"]["Path"].startswith("./staging/"):
        old = r["Old"]["Path"]
        print(old + "=" + old + "@" + version)
' "$KUBE_STAGING_VERSION"
}

build_kube() {
    local bins=("${KUBE_BINARIES[@]}") key w logf="$LOG_DIR/kubernetes.log"
    need_kubectl && bins+=(kubectl)
    key="$(component_key KUBE)"
    is_fresh kubernetes "$key" "${bins[@]}" && return 0
    log "building ${bins[*]} $KUBE_VERSION (log: $logf)"
    : >"$logf"
    w="$(new_wrapper kubernetes)"
    (
        cd "$w" || exit 1
        local gomod replaces line pkgs=() b
        gomod="$(go mod download -json "$KUBE_MODULE@$KUBE_VERSION" 2>>"$logf" |
            python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')" || exit 1
        replaces="$(kube_staging_replaces "$gomod")" || exit 1
        [[ -n "$replaces" ]] || { log "no staging replaces found in $gomod"; exit 1; }
        while IFS= read -r line; do
            run_logged "$logf" go mod edit -replace "$line" || exit 1
        done <<<"$replaces"
        for b in "${bins[@]}"; do pkgs+=("$KUBE_MODULE/cmd/$b"); done
        run_logged "$logf" go get "${pkgs[@]/%/@$KUBE_VERSION}" || exit 1
        local minor="${KUBE_VERSION#v1.}"
        minor="${minor%%.*}"
        local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
        ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
        ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
        # kubectl reads its version from client-go's copy of the version package.
        ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION"
        ldflags+=" -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
        mkdir -p out
        for b in "${bins[@]}"; do
            run_logged "$logf" go build -trimpath -tags "$KUBE_TAGS" -ldflags "$ldflags" \
                -o "out/$b" "$KUBE_MODULE/cmd/$b" || exit 1
        done
    ) || return 1
    finish kubernetes "$key" "${bins[@]}"
}

build_etcd() {
    local key w logf="$LOG_DIR/etcd.log"
    key="$(component_key ETCD)"
    is_fresh etcd "$key" etcd && return 0
    log "building etcd $ETCD_VERSION (log: $logf)"
    : >"$logf"
    w="$(new_wrapper etcd)"
    (
        cd "$w" || exit 1
        run_logged "$logf" go get "$ETCD_MODULE@$ETCD_VERSION" || exit 1
        run_logged "$logf" go build -trimpath -ldflags "-s -w" -o out/etcd "$ETCD_MODULE" || exit 1
    ) || return 1
    finish etcd "$key" etcd
}

build_kwok() {
    local key w logf="$LOG_DIR/kwok.log"
    key="$(component_key KWOK)"
    is_fresh kwok "$key" kwok kwokctl && return 0
    log "building kwok and kwokctl $KWOK_VERSION (log: $logf)"
    : >"$logf"
    w="$(new_wrapper kwok)"
    (
        cd "$w" || exit 1
        mkdir -p out
        GOBIN="$w/out" run_logged "$logf" go install -trimpath \
            -ldflags "-s -w -X $KWOK_MODULE/pkg/consts.Version=$KWOK_VERSION" \
            "$KWOK_MODULE/cmd/kwok@$KWOK_VERSION" "$KWOK_MODULE/cmd/kwokctl@$KWOK_VERSION" || exit 1
    ) || return 1
    finish kwok "$key" kwok kwokctl
}

all_fresh() {
    local kube=("${KUBE_BINARIES[@]}")
    need_kubectl && kube+=(kubectl)
    is_fresh kubernetes "$(component_key KUBE)" "${kube[@]}" &&
        is_fresh etcd "$(component_key ETCD)" etcd &&
        is_fresh kwok "$(component_key KWOK)" kwok kwokctl
}

main() {
    if ! all_fresh; then
        go_env_setup
        # One builder at a time per cache; the steps recheck their stamps after the wait.
        if command -v flock >/dev/null 2>&1; then
            exec 9>"$VERSION_DIR/.lock"
            flock 9
        fi
        local failed=() t0=$SECONDS t
        t=$SECONDS; build_etcd || failed+=(etcd); log "etcd: $((SECONDS - t))s"
        t=$SECONDS; build_kwok || failed+=(kwok); log "kwok: $((SECONDS - t))s"
        t=$SECONDS; build_kube || failed+=(kubernetes); log "kubernetes: $((SECONDS - t))s"
        log "build total: $((SECONDS - t0))s"
        if ((${#failed[@]})); then
            if grep -qs "403 Forbidden" "$LOG_DIR"/*.log; then
                log "the Go module proxy refused some pinned module versions (403, 'not available'): see $LOG_DIR"
            fi
            die "could not build: ${failed[*]}"
        fi
    fi
    printf '%s\n' "$BIN_DIR"
}

main "$@"
