#!/usr/bin/env bash
# Build a pinned Go tool once into a cache and print its path: "$(scripts/go-tool.sh actionlint)".
# Tools come from the Go module proxy like the engine does; nothing is committed or downloaded else.
# The heavy ones (promtool, amtool) are unpacked from a prebuilt piece instead when ../shared/engine (or
# $SUPPORT_PLATFORM_ENGINE_PIECES) holds one whose sha256 is the pinned one.
set -euo pipefail
name=${1:?usage: scripts/go-tool.sh TOOL}
replaces=()
piece='' piece_sha256=
case "$name" in
  actionlint) package=github.com/rhysd/actionlint/cmd/actionlint version=v1.7.12 ;;
  # Prometheus tags its Go module v0.X.Y (for Prometheus 3.X.Y): v0.305.0 is Prometheus 3.5.0, the
  # version of the bundled server (monitoring.images.prometheus).
  promtool)
    package=github.com/prometheus/prometheus/cmd/promtool version=v0.305.0
    # The module's own go.mod pins fsnotify this way; `go install pkg@version` refuses a module
    # with replace directives, so it is built in a throwaway main module that repeats them.
    replaces=(github.com/fsnotify/fsnotify@v1.8.0=github.com/fsnotify/fsnotify@v1.7.0)
    piece=promtool-v0.305.0-linux-amd64.xz
    piece_sha256=3f99dff9812dc00c2ab9cf9b9de711d05cbc2bfbf3c93c050907f1ad44e12a40
    ;;
  # The version of the bundled Alertmanager (monitoring.images.alertmanager).
  amtool)
    package=github.com/prometheus/alertmanager/cmd/amtool version=v0.28.1
    piece=amtool-v0.28.1-linux-amd64.xz
    piece_sha256=42f25253a1a939d5a048b8d4123a86d2d1c7a2d58f667521063ec0fae6847c93
    ;;
  # The bundled Alertmanager itself, for the tests that post alerts to it (inhibition).
  alertmanager) package=github.com/prometheus/alertmanager/cmd/alertmanager version=v0.28.1 ;;
  *) echo "error: unknown tool '$name'" >&2; exit 2 ;;
esac
cache="${SUPPORT_PLATFORM_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/support-platform/tools}/$name-$version"
if [ ! -x "$cache/$name" ]; then
  # Parallel callers (make -j, pytest -n) wait for one build instead of writing the same files.
  mkdir -p "$(dirname "$cache")"
  exec 8>"$cache.lock"
  if command -v flock >/dev/null 2>&1; then flock 8; fi
fi
if [ ! -x "$cache/$name" ] && [ -n "$piece" ]; then
  LOG_PREFIX=go-tool
  # shellcheck source=scripts/lib/pinned-build.sh
  source "$(dirname "$0")/lib/pinned-build.sh"
  unpack_piece "$piece" "$piece_sha256" "$name" "$cache" || true
fi
if [ ! -x "$cache/$name" ]; then
  command -v go >/dev/null || { echo "error: $name needs Go to build (https://go.dev/dl)" >&2; exit 1; }
  echo "building $name $version from Go modules..." >&2
  mkdir -p "$cache"
  export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-modcacherw
  if [ ${#replaces[@]} -eq 0 ]; then
    GOBIN="$cache" go install "$package@$version" >&2
  else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    (
      cd "$work"
      go mod init support-platform/go-tool >&2
      for replace in "${replaces[@]}"; do go mod edit -replace "$replace"; done
      go get "$package@$version" >&2
      go build -trimpath -o "$cache/$name.tmp" "$package" >&2
    )
    mv "$cache/$name.tmp" "$cache/$name"
  fi
fi
echo "$cache/$name"
