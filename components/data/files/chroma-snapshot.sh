#!/bin/sh
# A CSI VolumeSnapshot of Chroma's claim, then pruning of the old ones (POSIX sh and kubectl).
#
#   chroma-snapshot.sh    create chroma-<UTC timestamp> of CLAIM with CLASS, wait until it is readyToUse,
#                         then delete the oldest labelled snapshots beyond KEEP (never the new one)
#
# Environment: NAMESPACE, CLAIM and CLASS (required); KEEP (default 7, a positive integer); WAIT_SECONDS
# (default 900, a positive integer: how long the snapshot may take to become ready). kubectl finds the
# API server the usual way (the pod's service account token, or KUBECONFIG).
# Needs, in NAMESPACE: create, get, list and delete on volumesnapshots.snapshot.storage.k8s.io.
# The snapshot is crash-consistent: the volume as it is at that instant, the server keeps running.
# Exit status: 0 success, 1 a failed or unready snapshot or a failed prune, 2 configuration error.
set -eu

prog=chroma-snapshot.sh
label_key=support-platform.io/snapshot-of
label_value=chroma
log() { printf '%s: %s\n' "$prog" "$*"; }
fail() {
  printf '%s: error: %s\n' "$prog" "$*" >&2
  exit 1
}
usage() {
  printf '%s: %s\n' "$prog" "$*" >&2
  exit 2
}

# A positive integer without leading zeros (which $(( )) would read as octal), at most 6 digits.
positive() {
  case $2 in
    '' | *[!0-9]*) usage "$1 '$2' is not a whole number" ;;
  esac
  n=$(printf '%s' "$2" | sed 's/^0*//')
  [ -n "$n" ] || usage "$1 must be 1 or more"
  [ "${#n}" -le 6 ] || usage "$1 $n is too large"
  printf '%s\n' "$n"
}

# Names the API server accepts as they are: no quoting is needed anywhere below.
dns_name() {
  case $2 in
    '') usage "$1 is not set" ;;
    *[!a-z0-9.-]* | [.-]* | *[.-]) usage "$1 '$2' is not a DNS name (lowercase letters, digits, '-', '.')" ;;
  esac
}

dns_name NAMESPACE "${NAMESPACE:-}"
dns_name CLAIM "${CLAIM:-}"
dns_name CLASS "${CLASS:-}"
keep=$(positive KEEP "${KEEP:-7}")
wait_seconds=$(positive WAIT_SECONDS "${WAIT_SECONDS:-900}")

name="$label_value-$(date -u +%Y%m%d-%H%M%S)"
log "creating VolumeSnapshot $NAMESPACE/$name of claim $CLAIM with class $CLASS"
kubectl create --namespace "$NAMESPACE" -f - <<EOF || fail "cannot create VolumeSnapshot $name"
apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata:
  name: $name
  labels:
    $label_key: $label_value
spec:
  volumeSnapshotClassName: $CLASS
  source:
    persistentVolumeClaimName: $CLAIM
EOF

# A snapshot that failed or never became ready is deleted: it must not count as one of the KEEP.
discard() {
  kubectl delete --namespace "$NAMESPACE" --wait=false volumesnapshot "$name" >/dev/null 2>&1 ||
    printf '%s: error: could not delete the unready VolumeSnapshot %s\n' "$prog" "$name" >&2
  fail "$1"
}

start=$(date +%s)
while :; do
  status=$(kubectl get --namespace "$NAMESPACE" volumesnapshot "$name" \
    -o jsonpath='{.status.readyToUse}|{.status.error.message}') || discard "cannot read VolumeSnapshot $name"
  ready=${status%%|*}
  error=${status#*|}
  if [ "$ready" = true ]; then
    break
  fi
  [ -z "$error" ] || discard "SNAPSHOT FAILED: VolumeSnapshot $name of $CLAIM reports: $error"
  elapsed=$(($(date +%s) - start))
  if [ "$elapsed" -ge "$wait_seconds" ]; then
    discard "SNAPSHOT NOT READY: VolumeSnapshot $name of $CLAIM is not readyToUse after ${elapsed}s (WAIT_SECONDS=$wait_seconds); is the CSI driver of class $CLASS running?"
  fi
  sleep 2
done
log "VolumeSnapshot $name is ready to use"

# Oldest first: creation time, then name (snapshots created in the same second).
list=$(kubectl get --namespace "$NAMESPACE" volumesnapshots --selector "$label_key=$label_value" \
  -o jsonpath='{range .items[*]}{.metadata.creationTimestamp}{" "}{.metadata.name}{"\n"}{end}') ||
  fail "cannot list the VolumeSnapshots labelled $label_key=$label_value"
sorted=$(printf '%s\n' "$list" | sed '/^$/d' | LC_ALL=C sort)
total=$(printf '%s\n' "$sorted" | sed '/^$/d' | wc -l)
total=$((total))
excess=$((total - keep))
pruned=0
if [ "$excess" -gt 0 ]; then
  for old in $(printf '%s\n' "$sorted" | head -n "$excess" | cut -d ' ' -f 2); do
    [ "$old" != "$name" ] || continue
    kubectl delete --namespace "$NAMESPACE" --wait=false volumesnapshot "$old" >/dev/null ||
      fail "cannot delete the old VolumeSnapshot $old"
    log "prune: deleted VolumeSnapshot $old (more than KEEP=$keep)"
    pruned=$((pruned + 1))
  done
fi
log "OK $name; $((total - pruned)) snapshots of $label_value kept"
