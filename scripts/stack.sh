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

# The program and the policy pack run in their own virtualenvs (Pulumi.yaml, PulumiPolicy.yaml). The
# CLI v3.259.0 waits forever, without a word, when the pack's one is missing (its policy proxy is never
# told that the pack failed to start: pulumi/pulumi#24492), so both are made sure of first.
scripts/ensure-venv.sh venv requirements-dev.txt requirements.txt policies/requirements.txt
scripts/ensure-venv.sh policies/venv policies/requirements.txt

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

# State stays inside the project unless the caller chose a backend. Shared stacks only preview
# that way: changing staging or production against a checkout's private state (an unset CI secret
# reads as empty) would deploy with no record the team can see.
if [ -z "${PULUMI_BACKEND_URL:-}" ]; then
  case "$stack:$action" in
    dev:*|*:preview|*:preview-json) ;;
    *) echo "error: '$action' on stack '$stack' needs the team's state backend: set PULUMI_BACKEND_URL" >&2
       exit 1 ;;
  esac
  mkdir -p "$root/.pulumi-state"
  export PULUMI_BACKEND_URL="file://$root/.pulumi-state"
fi

# A CLI killed while it saved a file-backend checkpoint can leave the checkpoint's metadata sidecar
# (<stack>.json.attrs, written after the new checkpoint but before its rename) empty; the previous
# checkpoint is then still whole, but every command fails with "failed to load checkpoint: EOF". An
# empty sidecar is never valid and a missing one is: remove it (not a fresh one a live run may be
# writing this instant).
case "$PULUMI_BACKEND_URL" in file://*)
  state_dir=${PULUMI_BACKEND_URL#file://}
  state_dir=${state_dir%%\?*}
  if [ -d "$state_dir/.pulumi/stacks" ]; then
    while IFS= read -r sidecar; do
      echo "warning: removing $sidecar, left empty by an interrupted state write" >&2
      rm -f "$sidecar"
    done < <(find "$state_dir/.pulumi/stacks" -name '*.json.attrs' -size 0 ! -newermt '-5 seconds' 2>/dev/null)
  fi ;;
esac

# dev's passphrase protects nothing real (its secrets are generated for a render); staging and
# production must bring their own, so a forgotten (or empty) variable never keys a stack weakly.
has_provider=false
grep -q '^secretsprovider:' "Pulumi.$stack.yaml" && has_provider=true
# Pulumi.dev.yaml carries the salt of this passphrase, so a passphrase exported for another stack
# must not reach dev.
if [ "$stack" = dev ]; then
  export PULUMI_CONFIG_PASSPHRASE=dev-only-not-a-secret
  unset PULUMI_CONFIG_PASSPHRASE_FILE
elif [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ] \
     && [ "$has_provider" = false ]; then
  echo "error: stack '$stack' needs its secrets passphrase: export PULUMI_CONFIG_PASSPHRASE (or" \
       "PULUMI_CONFIG_PASSPHRASE_FILE), or move it to a cloud secrets provider with" \
       "'pulumi stack change-secrets-provider'" >&2
  exit 1
fi

if [ "$stack" = dev ]; then
  # A render run must never reach a cluster a stray kubeconfig points at, and the rendered Secrets
  # hold the dev stack's generated credentials in plaintext: owner-only from the first file.
  unset KUBECONFIG
  umask 077
fi

# A stack file that names a secrets provider keeps it; only a new stack defaults to the passphrase.
# Every command below names --stack, so selecting only creates the stack the first time; on a file
# backend whose stack exists it is skipped (a CLI start less on every warm `make up`). `run` passes
# the user's own command through, which may rely on the selected stack.
existing=false
if [ -n "${state_dir:-}" ] && [ "$action" != run ]; then
  for f in "$state_dir/.pulumi/stacks/support-platform/$stack.json" "$state_dir/.pulumi/stacks/support-platform/$stack.json.gz"; do
    [ -s "$f" ] && existing=true
  done
fi
if [ "$existing" = false ]; then
  select=(stack select "$stack" --create)
  [ "$has_provider" = true ] || select+=(--secrets-provider passphrase)
  pulumi "${select[@]}" >/dev/null
fi

policy=(--policy-pack "$root/policies" --policy-pack-config "$root/policies/config/$stack.json")
# dev renders files and reaches no cluster: a preview before its update would run the program and the
# pack twice to learn nothing the update does not print (the pack still judges every step).
up_options=()
[ "$stack" = dev ] && up_options+=(--skip-preview)
case "$action" in
  up)      pulumi up --yes "${up_options[@]}" --stack "$stack" "${policy[@]}" "$@" ;;
  preview) pulumi preview --diff --stack "$stack" "${policy[@]}" "$@" ;;
  # --event-log (policy findings are not in the JSON digest) exists only with debug commands on.
  preview-json) PULUMI_DEBUG_COMMANDS=true pulumi preview --json --stack "$stack" "${policy[@]}" "$@" ;;
  destroy) pulumi destroy --yes --stack "$stack" "$@" ;;
  refresh) pulumi refresh --yes --stack "$stack" "$@" ;;
  history) pulumi stack history --stack "$stack" "$@" ;;
  run)     pulumi "$@" ;;
  *) echo "error: unknown action '$action'" >&2; exit 2 ;;
esac

if [ "$action" = up ] && [ "$stack" = dev ]; then
  # Where the stack file says it renders (settings require target.renderDirectory in render mode);
  # read here rather than by another CLI start.
  rendered=$(venv/bin/python -c 'import sys, yaml
print(yaml.safe_load(open(sys.argv[1]))["config"]["support-platform:target"]["renderDirectory"])' Pulumi.dev.yaml)
  chmod -R go-rwx "$rendered"  # files rendered before umask 077 was set here
  count=$(find "$rendered" -name '*.yaml' | wc -l)
  echo "rendered $count manifests to $root/$rendered"
fi
