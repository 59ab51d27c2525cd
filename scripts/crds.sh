#!/usr/bin/env bash
# The published CRDs of the custom resources the program emits, taken from their projects' Go modules
# (pinned below) into a cache; prints the directory that holds them. Nothing is hand-written or
# committed: tests validate manifests against these files, and the cluster tests install them.
#   dir="$(scripts/crds.sh)"
set -euo pipefail

# module@version  path-in-module...
PINS=(
  "sigs.k8s.io/gateway-api@v1.6.3 config/crd/standard/gateway.networking.k8s.io_gatewayclasses.yaml config/crd/standard/gateway.networking.k8s.io_gateways.yaml config/crd/standard/gateway.networking.k8s.io_httproutes.yaml config/crd/standard/gateway.networking.k8s.io_referencegrants.yaml"
  "github.com/cert-manager/cert-manager@v1.21.2 deploy/crds/cert-manager.io_certificates.yaml deploy/crds/cert-manager.io_issuers.yaml deploy/crds/cert-manager.io_clusterissuers.yaml deploy/crds/cert-manager.io_certificaterequests.yaml"
  "github.com/envoyproxy/gateway@v1.9.1 charts/gateway-helm/charts/crds/crds/generated/gateway.envoyproxy.io_backendtrafficpolicies.yaml"
  # The operator's main module: v0.85.0 is the newest version the module proxy serves here.
  # The snapshot CRDs live in the client module (repository path client/config/crd), not the main one.
  "github.com/kubernetes-csi/external-snapshotter/client/v8@v8.7.0 config/crd/snapshot.storage.k8s.io_volumesnapshots.yaml config/crd/snapshot.storage.k8s.io_volumesnapshotclasses.yaml config/crd/snapshot.storage.k8s.io_volumesnapshotcontents.yaml"
  "github.com/prometheus-operator/prometheus-operator@v0.85.0 example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml example/prometheus-operator-crd/monitoring.coreos.com_alertmanagerconfigs.yaml"
)

key="$(printf '%s\n' "${PINS[@]}" | sha256sum | cut -c1-16)"
dir="${SUPPORT_PLATFORM_CRD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/support-platform/crds}/$key"
if [ -f "$dir/.complete" ]; then
  echo "$dir"
  exit 0
fi
# Parallel callers (pytest -n) wait for one fetch instead of replacing the directory under each other.
mkdir -p "${dir%/*}"
exec 8>"$dir.lock"
if command -v flock >/dev/null 2>&1; then flock 8; fi
if [ -f "$dir/.complete" ]; then
  echo "$dir"
  exit 0
fi
command -v go >/dev/null || { echo "error: the CRDs come from Go modules; install Go (https://go.dev/dl)" >&2; exit 1; }
export GOFLAGS=-modcacherw GOTOOLCHAIN=local
# Some of these modules' versions are missing from the checksum database the proxy fronts.
export GOSUMDB=off
staging="$(mktemp -d "${dir%/*}.XXXXXX" 2>/dev/null || { mkdir -p "${dir%/*}"; mktemp -d "${dir%/*}/.staging.XXXXXX"; })"
trap 'rm -rf "$staging"' EXIT
for pin in "${PINS[@]}"; do
  read -r module paths <<<"$pin"
  # go mod download needs a module context; an empty scratch module is enough.
  moddir="$(cd "$staging" && { [ -f go.mod ] || go mod init crds.local >/dev/null 2>&1; } && go mod download -json "$module" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  for path in $paths; do
    cp "$moddir/$path" "$staging/${module//\//_}__${path##*/}"
  done
done
rm -f "$staging/go.mod" "$staging/go.sum"
chmod -R u+w "$staging"
touch "$staging/.complete"
mkdir -p "${dir%/*}"
rm -rf "$dir"
mv "$staging" "$dir"
trap - EXIT
echo "$dir"
