#!/usr/bin/env bash
# Install the Debian packages the tests need when their commands are missing: one `apt-get update`,
# then one install. Usage: scripts/system-deps.sh COMMAND=PACKAGE...   e.g. shellcheck=shellcheck
# Without root or apt-get it says what to install and fails, so nothing is silently skipped.
set -euo pipefail
missing=()
for pair in "$@"; do
  command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
done
((${#missing[@]})) || exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing packages: ${missing[*]}; install them (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing Debian packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# A lock file serialises concurrent callers (parallel make targets, test fixtures).
exec 9>/tmp/support-platform-apt.lock
flock 9
# Another caller may have installed them while this one waited.
missing=()
for pair in "$@"; do
  command -v "${pair%%=*}" >/dev/null 2>&1 || missing+=("${pair#*=}")
done
((${#missing[@]})) || exit 0
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
