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
# Prebuilt pieces of the same pins (scripts/lib/pinned-build.sh): sha256 of each unpacked binary.
KUBE_PIECES=(
    kube-apiserver=kube-apiserver-v1.37.2-linux-amd64.xz=7c01ef3e14364be8573649fa6c68f822fc8ddee1d1f3f83d9e7487291a66834c
    kube-controller-manager=kube-controller-manager-v1.37.2-linux-amd64.xz=3cfffdb3d5d9b3b2f0a094d546a54e303d72f4af6c4ba78fefadc61fdf13f0a2
    kube-scheduler=kube-scheduler-v1.37.2-linux-amd64.xz=9308ce3aaeee3f0e9c3003c864782573a0530d24da64e228ce08a9d1da3a3d7c
)
ETCD_PIECES=(etcd=etcd-v3.7.3-linux-amd64.xz=07543a5a7cfe53198420a69b53f2a8460afa713eaf07bf92db42facbb75cf08f)
KWOK_PIECES=(
    kwok=kwok-v0.8.0-linux-amd64.xz=632d048e8b8381cc9867149fb269e1ce547cc0fb0d50ea5f7777b1d08223702b
    kwokctl=kwokctl-v0.8.0-linux-amd64.xz=a470ff92e3013e67dc9644b0354fb695c129212e6fa912fde098250c59710f60
)
# ---- end pins ----
# Bump when the build steps below change in a way that must invalidate built binaries.
RECIPE_REVISION=2

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

build_kube() { # component binaries...: the control-plane binaries, or kubectl alone
    local name="$1" key w logf="$LOG_DIR/$1.log"
    shift
    local bins=("$@")
    key="$(component_key KUBE)"
    is_fresh "$name" "$key" "${bins[@]}" && return 0
    log "building ${bins[*]} $KUBE_VERSION (log: $logf)"
    : >"$logf"
    w="$(new_wrapper "$name")"
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
    finish "$name" "$key" "${bins[@]}"
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
    is_fresh kubernetes "$(component_key KUBE)" "${KUBE_BINARIES[@]}" &&
        { ! need_kubectl || is_fresh kubectl "$(component_key KUBE)" kubectl; } &&
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
        t=$SECONDS
        is_fresh etcd "$(component_key ETCD)" etcd ||
            install_pieces etcd "$(component_key ETCD)" "${ETCD_PIECES[@]}" || build_etcd || failed+=(etcd)
        log "etcd: $((SECONDS - t))s"
        t=$SECONDS
        is_fresh kwok "$(component_key KWOK)" kwok kwokctl ||
            install_pieces kwok "$(component_key KWOK)" "${KWOK_PIECES[@]}" || build_kwok || failed+=(kwok)
        log "kwok: $((SECONDS - t))s"
        t=$SECONDS
        is_fresh kubernetes "$(component_key KUBE)" "${KUBE_BINARIES[@]}" ||
            install_pieces kubernetes "$(component_key KUBE)" "${KUBE_PIECES[@]}" ||
            build_kube kubernetes "${KUBE_BINARIES[@]}" || failed+=(kubernetes)
        # kubectl only when the machine has none: no piece of it, so it is built.
        if need_kubectl; then build_kube kubectl kubectl || failed+=(kubectl); fi
        log "kubernetes: $((SECONDS - t))s"
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
