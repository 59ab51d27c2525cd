#!/usr/bin/env bash
# Runs the Pulumi engine for one stack on the project's local file backend.
#   scripts/stack.sh up|preview|preview-json|destroy|refresh|history [STACK] [extra pulumi args...]
#   scripts/stack.sh run STACK <pulumi args...>   any pulumi command in the same environment
# up and the previews run the policy pack in policies/ with policies/config/<STACK>.json.
# Uses a `pulumi` on PATH, else the pinned engine built by scripts/engine/ensure-engine.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
action=${1:?usage: scripts/stack.sh up|preview|preview-json|destroy|refresh|history [STACK] [pulumi args...]}
stack=${2:-dev}
shift $(( $# >= 2 ? 2 : 1 ))

case "$stack" in dev|staging|production) ;; *)
  echo "error: unknown stack '$stack'; use dev, staging or production" >&2; exit 2 ;;
esac

export PULUMI_SKIP_UPDATE_CHECK=true
# A pulumi on PATH is used as installed, with its own plugin resolution. Otherwise the pinned engine
# is built from Go modules; its plugins are installed by version, so nothing may be downloaded and
# the unversioned binaries beside the CLI must not shadow them.
if ! command -v pulumi >/dev/null 2>&1; then
  engine_bin=$(scripts/engine/ensure-engine.sh) || {
    echo "error: no pulumi on PATH and the pinned engine could not be built (see above);" \
         "install the Pulumi CLI v3.259.0 or fix the engine build" >&2
    exit 1
  }
  PATH="$engine_bin:$PATH"
  export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true PULUMI_IGNORE_AMBIENT_PLUGINS=true
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

policy=(--policy-pack "$root/policies" --policy-pack-config "$root/policies/config/$stack.json")
case "$action" in
  up)      pulumi up --yes --stack "$stack" "${policy[@]}" "$@" ;;
  preview) pulumi preview --diff --stack "$stack" "${policy[@]}" "$@" ;;
  preview-json) pulumi preview --json --stack "$stack" "${policy[@]}" "$@" ;;
  destroy) pulumi destroy --yes --stack "$stack" "$@" ;;
  refresh) pulumi refresh --yes --stack "$stack" "$@" ;;
  history) pulumi stack history --stack "$stack" "$@" ;;
  run)     pulumi "$@" ;;
  *) echo "error: unknown action '$action'" >&2; exit 2 ;;
esac

if [ "$action" = up ] && [ "$stack" = dev ]; then
  # Rendered Secrets hold the dev stack's generated credentials in plaintext: owner-only.
  rendered=$(pulumi stack output renderDirectory --stack dev)
  chmod -R go-rwx "$rendered"
  count=$(find "$rendered" -name '*.yaml' | wc -l)
  echo "rendered $count manifests to $root/$rendered"
fi
