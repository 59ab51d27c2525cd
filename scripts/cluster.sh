#!/usr/bin/env bash
# A throwaway Kubernetes control plane on this machine, no container runtime needed: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and the kwok controller (which plays the
# kubelets of fake nodes and marks their pods Running and Ready) run as local processes on
# 127.0.0.1, started by kwokctl (`runtime: binary`) from the pinned binaries that
# scripts/cluster/ensure-cluster.sh builds. Pod Security Admission and every other default
# admission plugin stay on.
#
#   scripts/cluster.sh up           start (or reuse) the cluster; the last stdout line is
#                                   `export KUBECONFIG=<path>`
#   scripts/cluster.sh down         delete it; no process is left behind
#   scripts/cluster.sh kubeconfig   print the kubeconfig path (fails when the cluster is not up)
#   scripts/cluster.sh context      print the kubeconfig context name
#   scripts/cluster.sh status       exit 0 when the API server answers /readyz
#   scripts/cluster.sh stop-apiserver | start-apiserver
#                                   fault injection for the tests: stop or restart the API server
#
# Environment:
#   SUPPORT_PLATFORM_CLUSTER_NAME  cluster name (default: support-platform)
#   SUPPORT_PLATFORM_CLUSTER_HOME  kwokctl's work directory (KWOK_WORKDIR), outside the repository
#                                  (default: ${XDG_STATE_HOME:-$HOME/.local/state}/support-platform/kwok)
#   SUPPORT_PLATFORM_CLUSTER_NODES number of fake nodes (default: 2)
#   SUPPORT_PLATFORM_CLUSTER_STAGES config (default): kwok's built-in pod and node stages;
#                                  crd: the same stages as Stage objects (sigs.k8s.io/kwok's fast set,
#                                  from its Go module), so a test can add its own (hold pods unready)
set -euo pipefail
cd "$(dirname "$0")/.."

action=${1:?usage: scripts/cluster.sh up|down|kubeconfig|context|status|stop-apiserver|start-apiserver}
name=${SUPPORT_PLATFORM_CLUSTER_NAME:-support-platform}
home=${SUPPORT_PLATFORM_CLUSTER_HOME:-${XDG_STATE_HOME:-$HOME/.local/state}/support-platform/kwok}
nodes=${SUPPORT_PLATFORM_CLUSTER_NODES:-2}
stages=${SUPPORT_PLATFORM_CLUSTER_STAGES:-config}
KWOK_MODULE=sigs.k8s.io/kwok@v0.8.0  # the kwok that ensure-cluster.sh builds
export KWOK_WORKDIR="$home"
cluster_dir="$home/clusters/$name"
kubeconfig="$cluster_dir/kubeconfig.yaml"
context="kwok-$name"
KUBE_VERSION=v1.37.2  # the version ensure-cluster.sh builds: kwokctl picks component flags by it

# Settings kwokctl would otherwise take from the environment: this cluster is fully described by
# the configuration below, so a stray KWOK_* variable cannot turn admission off or pick a runtime.
unset KWOK_KUBE_ADMISSION KWOK_KUBE_AUTHORIZATION KWOK_SECURE_PORT KWOK_RUNTIME KWOK_BIND_ADDRESS \
      KWOK_KUBE_VERSION KWOK_CONFIG

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

bin_dir() { scripts/cluster/ensure-cluster.sh; }

kubectl_path() { # the machine's kubectl, else the one ensure-cluster.sh built
    local bins="$1"
    command -v kubectl 2>/dev/null || printf '%s\n' "$bins/kubectl"
}

kctl() { "$KUBECTL" --kubeconfig "$kubeconfig" --context "$context" "$@"; }

ready() { [ -f "$kubeconfig" ] && kctl get --raw /readyz >/dev/null 2>&1; }

write_config() { # bin_dir config_path
    local bins="$1"
    cat >"$2" <<YAML
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
options:
  runtime: binary
  kubeVersion: $KUBE_VERSION
  bindAddress: 127.0.0.1
  # Secure port with authorization and the default admission plugins (Pod Security among them).
  securePort: true
  kubeAuthorization: true
  kubeAdmission: true
  kubeApiserverBinary: $bins/kube-apiserver
  kubeControllerManagerBinary: $bins/kube-controller-manager
  kubeSchedulerBinary: $bins/kube-scheduler
  etcdBinary: $bins/etcd
  kwokControllerBinary: $bins/kwok
  kubectlBinary: $KUBECTL
$([ "$stages" = crd ] && printf '  enableCRDs: [Stage]')
componentsPatches:
  # PersistentVolumeClaims of the default StorageClass bind to host-path volumes.
  - name: kube-controller-manager
    extraArgs:
      - key: enable-hostpath-provisioner
        value: "true"
YAML
}

# Processes of this cluster: kwokctl records their pids; a process whose command line names the
# cluster directory is one of them too (a pid file can be gone when a start failed half-way).
cluster_pids() {
    local f pid
    for f in "$cluster_dir"/pids/*.pid; do
        [ -f "$f" ] || continue
        pid=$(cat "$f")
        [ -n "$pid" ] && alive "$pid" && printf '%s\n' "$pid"
    done
    [ -d /proc ] || return 0
    for f in /proc/[0-9]*/cmdline; do
        pid=${f#/proc/}
        pid=${pid%/cmdline}
        [ "$pid" = "$$" ] && continue
        tr '\0' ' ' <"$f" 2>/dev/null | grep -qF -- "$cluster_dir/" && alive "$pid" && printf '%s\n' "$pid"
    done
    return 0
}

down() {
    if [ -d "$cluster_dir" ]; then
        local bins
        bins=$(bin_dir | tail -n 1)
        log "deleting cluster $name"
        "$bins/kwokctl" delete cluster --name "$name" --kubeconfig "$kubeconfig" >&2 || log "kwokctl delete failed; stopping its processes"
    fi
    local pids pid i
    for i in 1 2 3 4 5 6 7 8 9 10; do
        pids=$(cluster_pids | sort -u)
        [ -z "$pids" ] && break
        for pid in $pids; do
            if [ "$i" -lt 6 ]; then kill "$pid" 2>/dev/null || true; else kill -9 "$pid" 2>/dev/null || true; fi
        done
        sleep 0.5
    done
    pids=$(cluster_pids | sort -u)
    [ -z "$pids" ] || die "processes of cluster $name are still running: $pids"
    rm -rf "$cluster_dir"
    log "cluster $name is down; no process left"
}

nodes_ready() { [ "$(kctl get nodes --no-headers 2>/dev/null | grep -cw Ready)" -ge "$nodes" ]; }

# A process that exited but was not reaped (a zombie: kwokctl detaches the components, and PID 1 of
# a container may never reap them) is gone too.
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

pid_gone() { ! alive "$1"; }

wait_for() { # seconds description command...
    local deadline=$((SECONDS + $1)) what="$2"
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || die "timed out waiting for $what"
        sleep 0.5
    done
}

up() {
    local bins t0=$SECONDS
    bins=$(bin_dir | tail -n 1)
    KUBECTL=$(kubectl_path "$bins")
    if ready; then
        log "cluster $name is already up"
    else
        [ -d "$cluster_dir" ] && { log "cluster $name exists but does not answer: recreating it"; down; }
        mkdir -p "$home"
        local config="$home/$name.kwokctl.yaml"
        write_config "$bins" "$config"
        log "creating cluster $name (kwokctl, runtime binary, work directory $home)"
        # kwokctl picks its components' ports by probing for a free one, so two clusters created at
        # once (pytest -n 2) can pick the same: one creation at a time, until its servers listen.
        # flock -o: the lock is not inherited by the servers kwokctl leaves running.
        local serial=()
        command -v flock >/dev/null 2>&1 && serial=(flock -o "${TMPDIR:-/tmp}/support-platform-kwokctl-create.lock")
        if ! "${serial[@]}" "$bins/kwokctl" create cluster --name "$name" --config "$config" --kubeconfig "" --wait 2m >"$home/$name.create.log" 2>&1; then
            tail -n 30 "$home/$name.create.log" | sed 's/^/    /' >&2
            log "full log: $home/$name.create.log; component logs: $bins/kwokctl logs <component> --name $name"
            down || true
            die "could not create cluster $name"
        fi
    fi
    [ "$stages" = crd ] && apply_stages
    "$bins/kwokctl" scale node --name "$name" --replicas "$nodes" >&2
    wait_for 60 "$nodes Ready nodes" nodes_ready
    # The controller-manager creates every namespace's default ServiceAccount: pods need it.
    wait_for 60 "the default ServiceAccount" kctl -n default get serviceaccount default
    kctl apply -f - >&2 <<'YAML'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
YAML
    log "cluster $name is up in $((SECONDS - t0))s: context $context, $nodes nodes"
    echo "export KUBECONFIG=$kubeconfig"
}

# With the Stage CRD on, kwok reads its stages from the cluster only: the ones kwokctl would otherwise
# configure (node initialize and heartbeat, pod ready, complete and delete), from the module's files.
apply_stages() {
    command -v go >/dev/null || die "SUPPORT_PLATFORM_CLUSTER_STAGES=crd takes kwok's stages from its Go module: install Go"
    local moddir scratch
    # go mod download needs a module context: an empty scratch module (as scripts/crds.sh does).
    scratch=$(mktemp -d)
    moddir=$(cd "$scratch" && go mod init stages.local >/dev/null 2>&1 &&
        GOFLAGS=-modcacherw GOTOOLCHAIN=local GOSUMDB=off go mod download -json "$KWOK_MODULE" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
    rm -rf "$scratch"
    kctl apply -f "$moddir/kustomize/stage/node/fast/node-initialize.yaml" \
        -f "$moddir/kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" \
        -f "$moddir/kustomize/stage/pod/fast/pod-ready.yaml" \
        -f "$moddir/kustomize/stage/pod/fast/pod-complete.yaml" \
        -f "$moddir/kustomize/stage/pod/fast/pod-delete.yaml" >&2
}

apiserver_pid() { local f="$cluster_dir/pids/kube-apiserver.pid"; [ -f "$f" ] && cat "$f"; }

case "$action" in
  up) up ;;
  down) down ;;
  kubeconfig) [ -f "$kubeconfig" ] || die "cluster $name is not up (scripts/cluster.sh up)"; echo "$kubeconfig" ;;
  context) echo "$context" ;;
  status) KUBECTL=$(kubectl_path "$(bin_dir | tail -n 1)"); ready ;;
  stop-apiserver)
    KUBECTL=$(kubectl_path "$(bin_dir | tail -n 1)")
    pid=$(apiserver_pid) || die "no kube-apiserver pid for cluster $name"
    # SIGKILL, an abrupt crash: after SIGTERM it stops listening at once but may linger for minutes
    # draining, and kwokctl would take the lingering process for a running one.
    kill -9 "$pid"
    wait_for 30 "kube-apiserver to stop" pid_gone "$pid"
    ready && die "the API server still answers"
    log "kube-apiserver (pid $pid) stopped" ;;
  start-apiserver)
    bins=$(bin_dir | tail -n 1)
    KUBECTL=$(kubectl_path "$bins")
    # kwokctl takes a component whose pid still exists for running; an unreaped zombie does not count.
    pid=$(apiserver_pid) && pid_gone "$pid" && rm -f "$cluster_dir/pids/kube-apiserver.pid"
    "$bins/kwokctl" start cluster --name "$name" >&2
    wait_for 60 "the API server" ready
    log "kube-apiserver is back" ;;
  *) die "unknown action '$action'" ;;
esac
