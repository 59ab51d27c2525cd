#!/usr/bin/env bash
# Build a pinned Go tool once into a cache and print its path: "$(scripts/go-tool.sh actionlint)".
# Tools come from the Go module proxy like the engine does; nothing is committed or downloaded else.
set -euo pipefail
name=${1:?usage: scripts/go-tool.sh TOOL}
case "$name" in
  actionlint) package=github.com/rhysd/actionlint/cmd/actionlint version=v1.7.12 ;;
  # Prometheus tags its Go module v0.X.Y (for Prometheus 3.X.Y): v0.316.0 is Prometheus 3.16.0.
  promtool) package=github.com/prometheus/prometheus/cmd/promtool version=v0.316.0 ;;
  amtool) package=github.com/prometheus/alertmanager/cmd/amtool version=v0.35.0 ;;
  *) echo "error: unknown tool '$name'" >&2; exit 2 ;;
esac
cache="${SUPPORT_PLATFORM_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/support-platform/tools}/$name-$version"
if [ ! -x "$cache/$name" ]; then
  command -v go >/dev/null || { echo "error: $name needs Go to build (https://go.dev/dl)" >&2; exit 1; }
  echo "building $name $version from Go modules..." >&2
  mkdir -p "$cache"
  GOBIN="$cache" CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-modcacherw go install "$package@$version" >&2
fi
echo "$cache/$name"
