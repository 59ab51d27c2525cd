#!/usr/bin/env bash
# Runs the Pulumi engine for one stack on the project's local file backend.
#   scripts/stack.sh up|preview|destroy|refresh|history [STACK] [extra pulumi args...]
# Uses a `pulumi` on PATH, else the pinned engine built by scripts/engine/ensure-engine.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
action=${1:?usage: scripts/stack.sh up|preview|destroy|refresh|history [STACK] [pulumi args...]}
stack=${2:-dev}
shift $(( $# >= 2 ? 2 : 1 ))

case "$stack" in dev|staging|production) ;; *)
  echo "error: unknown stack '$stack'; use dev, staging or production" >&2; exit 2 ;;
esac

export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
if ! command -v pulumi >/dev/null 2>&1; then
  if [ ! -x scripts/engine/ensure-engine.sh ]; then
    echo "error: no pulumi on PATH and no engine build script; install the Pulumi CLI v3.259.0" >&2
    exit 1
  fi
  PATH="$(scripts/engine/ensure-engine.sh):$PATH"
fi

# State stays inside the project unless the caller chose a backend.
if [ -z "${PULUMI_BACKEND_URL:-}" ]; then
  mkdir -p "$root/.pulumi-state"
  export PULUMI_BACKEND_URL="file://$root/.pulumi-state"
fi

# dev's passphrase protects nothing real (its secrets are generated for a render); staging and
# production must bring their own, so a forgotten variable never creates a weakly keyed stack.
if [ "$stack" = dev ]; then
  export PULUMI_CONFIG_PASSPHRASE="${PULUMI_CONFIG_PASSPHRASE-dev-only-not-a-secret}"
elif [ -z "${PULUMI_CONFIG_PASSPHRASE+set}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ] \
     && ! grep -q '^secretsprovider:' "Pulumi.$stack.yaml"; then
  echo "error: stack '$stack' needs its secrets passphrase: export PULUMI_CONFIG_PASSPHRASE (or" \
       "PULUMI_CONFIG_PASSPHRASE_FILE), or move it to a cloud secrets provider with" \
       "'pulumi stack change-secrets-provider'" >&2
  exit 1
fi

# A render run must never reach a cluster a stray kubeconfig points at.
[ "$stack" = dev ] && unset KUBECONFIG

pulumi stack select "$stack" --create --secrets-provider passphrase >/dev/null

case "$action" in
  up)      pulumi up --yes --stack "$stack" "$@" ;;
  preview) pulumi preview --diff --stack "$stack" "$@" ;;
  destroy) pulumi destroy --yes --stack "$stack" "$@" ;;
  refresh) pulumi refresh --yes --stack "$stack" "$@" ;;
  history) pulumi stack history --stack "$stack" "$@" ;;
  *) echo "error: unknown action '$action'" >&2; exit 2 ;;
esac

if [ "$action" = up ] && [ "$stack" = dev ]; then
  count=$(find rendered/dev -name '*.yaml' 2>/dev/null | wc -l)
  echo "rendered $count manifests to $root/rendered/dev"
fi
