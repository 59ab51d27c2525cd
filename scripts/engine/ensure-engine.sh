#!/usr/bin/env bash
# Make the pinned Pulumi engine available without the installer or plugin downloads: the CLI and the
# kubernetes provider are built from Go modules; the Python language host and the random and docker
# providers, whose modules some proxies refuse, come from prebuilt pieces (../shared/engine beside the
# project, or $SUPPORT_PLATFORM_ENGINE_PIECES), sha256-checked, else are built from Go modules too.
# Idempotent; a warm run only checks stamp files.
#
#   PATH="$(scripts/engine/ensure-engine.sh):$PATH"
#
# stdout: the last line is the absolute bin directory that holds `pulumi`. Logs go to stderr.
# If a `pulumi` is already on PATH it is used as is, and only the resource plugins are ensured.
# Otherwise everything is built into
#   ${SUPPORT_PLATFORM_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/support-platform/engine}/<version>/bin
# and the resource plugins are installed into $PULUMI_HOME (default ~/.pulumi).
#
# Run the CLI with PULUMI_SKIP_UPDATE_CHECK=true and PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true,
# and PULUMI_IGNORE_AMBIENT_PLUGINS=true so that the installed, versioned plugins are used rather than the
# unversioned pulumi-resource-* binaries that sit in this bin directory (the language host is still found
# next to `pulumi`).
set -euo pipefail

# ---- pins: the cache stamps hash these lines, so editing one rebuilds what it feeds ----
PULUMI_VERSION=v3.259.0
PULUMI_CLI_MODULE=github.com/pulumi/pulumi/pkg/v3
PULUMI_CLI_PACKAGE=github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
PULUMI_SDK_MODULE=github.com/pulumi/pulumi/sdk/v3
PULUMI_CLI_PIECE=pulumi-v3.259.0-linux-amd64.xz
PULUMI_CLI_SHA256=edad53d892352bdcc9011f979ba8c89f1e36e1de428cd97ece34dac21b45a8ca
# pkg/v3's go.mod replaces clipboard with a fork; replaces only apply in the main module, so copy it.
PULUMI_CLIPBOARD_REPLACE=github.com/atotto/clipboard=github.com/tgummerer/clipboard@v0.0.0-20241001131231-d02d263e614e
# The Python language host is its own module without tags: pin the commit of tag v3.259.0.
PYTHON_HOST_MODULE=github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3
PYTHON_HOST_REF=0ac56e876614
PYTHON_HOST_PIECE=pulumi-language-python-v3.259.0-linux-amd64.xz
PYTHON_HOST_SHA256=2c2529af464fe60d229a4cb15a2c57f79e85bfc35f999b44dbca7a165a61e58c
# Provider modules (provider/ directories) have no usable tags: pin the release commits. The
# kubernetes one is the full pseudo-version of tag v4.25.0 (proxies refuse the short commit); its
# go.mod requires sdk/v4 v4.24.0, which -mod=mod resolves.
K8S_VERSION=4.25.0
K8S_MODULE=github.com/pulumi/pulumi-kubernetes/provider/v4
K8S_REF=v4.0.0-20260115033456-f47bc2d6f199
K8S_PIECE=pulumi-resource-kubernetes-v4.25.0-linux-amd64.xz
K8S_SHA256=85ea02d5733f5f64a41f29e4d89a50d2526b48d6b41769bd164bde8c38a10dac
RANDOM_VERSION=4.21.1
RANDOM_MODULE=github.com/pulumi/pulumi-random/provider/v4
RANDOM_REF=f2d8b029d0f7
RANDOM_SHIM_MODULE=github.com/pulumi/pulumi-random/provider/shim
RANDOM_PIECE=pulumi-resource-random-v4.21.1-linux-amd64.xz
RANDOM_SHA256=fe5d0eb1d28cb4bff2395a3191373575fbe3ac248b93d62de5dc4ce080032d2f
DOCKER_VERSION=5.1.0
DOCKER_MODULE=github.com/pulumi/pulumi-docker/provider/v5
DOCKER_REF=e944612c4c97
DOCKER_UPSTREAM_MODULE=github.com/kreuzwerker/terraform-provider-docker
DOCKER_UPSTREAM_REF=5074970c71ce
DOCKER_PIECE=pulumi-resource-docker-v5.1.0-linux-amd64.xz
DOCKER_SHA256=e81f893c410b83f55dafaa8b56917eec50e06731b5f278b9c370d2ee8bdc59c6
# ---- end pins ----
# Bump when the build steps below change in a way that must invalidate built binaries.
RECIPE_REVISION=2

SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/$(basename "${BASH_SOURCE[0]}")"
PROJECT_ROOT="$(cd "$(dirname "$SCRIPT_PATH")/../.." && pwd -P)"
PIECES_DIR="${SUPPORT_PLATFORM_ENGINE_PIECES:-$PROJECT_ROOT/../shared/engine}"
CACHE_ROOT="${SUPPORT_PLATFORM_ENGINE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/support-platform/engine}"
VERSION_DIR="$CACHE_ROOT/$PULUMI_VERSION"
BIN_DIR="$VERSION_DIR/bin"
STAMP_DIR="$VERSION_DIR/stamps"
WORK_DIR="$VERSION_DIR/work"
LOG_DIR="$VERSION_DIR/logs"

export PULUMI_SKIP_UPDATE_CHECK=true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

LOG_PREFIX=ensure-engine
# Every component depends on the CLI's pins (the SDK and its version ldflags).
COMMON_PIN_PREFIXES=PULUMI
# shellcheck source=scripts/lib/pinned-build.sh
source "$(dirname "$SCRIPT_PATH")/../lib/pinned-build.sh"

go_env_setup() {
    if ! command -v go >/dev/null 2>&1; then
        log "go is not on PATH; it is needed to build the engine"
        explain_missing "${STALE[@]}"
        exit 1
    fi
    export CGO_ENABLED=0
    export GOTOOLCHAIN=local
    export GOFLAGS=-modcacherw
    # The module proxy serves these modules, but the checksum database it fronts lacks entries for
    # several of them (e.g. pulumi-kubernetes/sdk/v4 v4.32.0 answers 404), and pseudo-versions of
    # untagged provider commits are often never recorded there: verification would stop the build.
    export GOSUMDB=off
    command -v python3 >/dev/null 2>&1 || die "python3 is needed to prepare the provider sources"
    mkdir -p "$BIN_DIR" "$STAMP_DIR" "$WORK_DIR" "$LOG_DIR"
}

# Download module@ref (a commit is allowed) and print "<canonical version> <directory>".
fetch_module() {
    go mod download "$1@$2" || return 1
    go list -m -f '{{.Version}} {{.Dir}}' "$1@$2"
}

# Canonical version of module@ref without downloading it: the shim replacement targets below declare
# another module path in their go.mod, which only a replace (not a plain download) accepts.
resolve_version() { go list -m -f '{{.Version}}' "$1@$2"; }

copy_module_replaces() { # wrapper_dir module_dir: copy module-to-module replaces (local ones are skipped)
    local line
    while IFS= read -r line; do
        [[ -z "$line" ]] || go mod edit -replace "$line" "$1/go.mod" || return 1
    done < <(go mod edit -json "$2/go.mod" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    old, new = r["Old"], r["New"]
    if not new.get("Version"):
        continue  # a directory replace: the caller supplies that module
    lhs = old["Path"] + ("@" + old["Version"] if old.get("Version") else "")
    print(lhs + "=" + new["Path"] + "@" + new["Version"])
')
}


# What to do when a piece can be neither found nor built.
explain_missing() { # failed component names...
    log "missing: $*"
    local name
    for name in "$@"; do
        case "$name" in
            python-host|random|docker)
                log "  $name: no prebuilt piece in $PIECES_DIR (set SUPPORT_PLATFORM_ENGINE_PIECES to the folder" \
                    "holding $PYTHON_HOST_PIECE, $RANDOM_PIECE and $DOCKER_PIECE) and the module proxy did not serve it" ;;
            *) log "  $name: the module proxy did not serve it (is GOPROXY reachable?)" ;;
        esac
    done
    log "or install the official Pulumi CLI $PULUMI_VERSION (https://www.pulumi.com/docs/install/), put it on PATH," \
        "and install its plugins: pulumi plugin install resource kubernetes $K8S_VERSION;" \
        "pulumi plugin install resource random $RANDOM_VERSION; pulumi plugin install resource docker $DOCKER_VERSION"
}

CLI_LDFLAGS="-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION"

build_cli() {
    local key w logf="$LOG_DIR/cli.log"
    key="$(component_key)"
    is_fresh cli "$key" pulumi && return 0
    log "building pulumi $PULUMI_VERSION (log: $logf)"
    : >"$logf"
    w="$(new_wrapper cli)"
    (
        cd "$w" || exit 1
        run_logged "$logf" go mod edit -replace "$PULUMI_CLIPBOARD_REPLACE" || exit 1
        run_logged "$logf" go get -tool "$PULUMI_CLI_PACKAGE@$PULUMI_VERSION" || exit 1
        run_logged "$logf" go build -o out/ -ldflags "$CLI_LDFLAGS" tool || exit 1
    ) || return 1
    finish cli "$key" pulumi
}

build_python_host() {
    local key w logf="$LOG_DIR/python-host.log"
    key="$(component_key PYTHON_HOST)"
    is_fresh python-host "$key" pulumi-language-python pulumi-language-python-exec && return 0
    log "building pulumi-language-python at $PYTHON_HOST_REF (log: $logf)"
    : >"$logf"
    w="$(new_wrapper python-host)"
    (
        cd "$w" || exit 1
        # Its go.mod points sdk and pkg at ../../.. directories: require the released ones instead.
        run_logged "$logf" go mod edit -replace "$PULUMI_CLIPBOARD_REPLACE" || exit 1
        run_logged "$logf" go get "$PULUMI_SDK_MODULE@$PULUMI_VERSION" "$PULUMI_CLI_MODULE@$PULUMI_VERSION" || exit 1
        run_logged "$logf" go get -tool "$PYTHON_HOST_MODULE@$PYTHON_HOST_REF" || exit 1
        run_logged "$logf" go build -o out/ -ldflags "$CLI_LDFLAGS" tool || exit 1
        # The host runs this script with the stack's Python; it ships in the sdk module.
        local sdk
        sdk="$(fetch_module "$PULUMI_SDK_MODULE" "$PULUMI_VERSION" 2>>"$logf")" || exit 1
        cp "${sdk#* }/python/cmd/pulumi-language-python-exec" out/ || exit 1
        chmod 0755 out/pulumi-language-python-exec
    ) || return 1
    finish python-host "$key" pulumi-language-python pulumi-language-python-exec
}

# Copy the provider's main package out of the module cache and generate the *-embed.json files its
# go:embed lines name (build outputs, absent from the module): X-embed.json is X.json re-serialised,
# with the schema's "version" set, as the providers' own generate step does.
prepare_provider_main() { # module_dir cmd_name version dest
    local src="$1/cmd/$2" dest="$4"
    [[ -f "$src/main.go" ]] || { echo "no cmd/$2/main.go in $1"; return 1; }
    mkdir -p "$dest"
    find "$src" -maxdepth 1 -type f ! -name '*_test.go' ! -name 'generate.go' -exec cp {} "$dest/" \;
    chmod -R u+w "$dest"
    python3 - "$dest" "$3" <<'PY'
import json, pathlib, re, sys
dest, version = pathlib.Path(sys.argv[1]), sys.argv[2]
embeds = set()
for go in dest.glob("*.go"):
    embeds.update(re.findall(r"^//go:embed\s+(\S+)", go.read_text(), re.M))
for name in sorted(embeds):
    target = dest / name
    if target.exists():
        continue
    source = dest / name.replace("-embed.json", ".json")
    if not name.endswith("-embed.json") or not source.exists():
        sys.exit(f"cannot produce embedded file {name}")
    data = json.loads(source.read_text())
    if name == "schema-embed.json":
        data["version"] = version
    target.write_text(json.dumps(data, separators=(",", ":")))
    print(f"generated {name}")
PY
}

build_provider() { # name version module ref pin_prefix [module@version to require...]
    local name="$1" version="$2" module="$3" ref="$4" prefix="$5"
    shift 5
    local bin="pulumi-resource-$name" key w logf="$LOG_DIR/$name.log"
    key="$(component_key "$prefix")"
    is_fresh "$name" "$key" "$bin" && return 0
    log "building $bin $version from $module@$ref (log: $logf)"
    : >"$logf"
    w="$(new_wrapper "$name")"
    (
        cd "$w" || exit 1
        local fetched canonical mdir
        fetched="$(fetch_module "$module" "$ref" 2>>"$logf")" || { show_log_tail "$logf"; exit 1; }
        canonical="${fetched%% *}" mdir="${fetched#* }"
        run_logged "$logf" go mod edit -require "$module@$canonical" || exit 1
        run_logged "$logf" copy_module_replaces "$w" "$mdir" || exit 1
        run_logged "$logf" "provider_hook_$name" "$w" || exit 1
        run_logged "$logf" prepare_provider_main "$mdir" "$bin" "$version" "$w/cmd/$bin" || exit 1
        if (($#)); then run_logged "$logf" go get "$@" || exit 1; fi
        # -mod=mod adds what the copied main package needs for this platform (no go mod tidy, which
        # would also fetch every other platform's dependencies).
        run_logged "$logf" go build -mod=mod -o "out/$bin" \
            -ldflags "-X $module/pkg/version.Version=$version" "./cmd/$bin" || exit 1
    ) || return 1
    finish "$name" "$key" "$bin"
}

provider_hook_kubernetes() { :; } # its ../sdk replace is covered by requiring the sdk release

provider_hook_random() { # the provider imports its ./shim directory, published as its own module
    local shim
    shim="$(resolve_version "$RANDOM_SHIM_MODULE" "$RANDOM_REF")" || return 1
    go mod edit -replace \
        "github.com/terraform-providers/terraform-provider-random/shim=$RANDOM_SHIM_MODULE@$shim" "$1/go.mod"
}

provider_hook_docker() { # its shim package is in no module: provide it here, on the upstream provider
    local w="$1" upstream
    upstream="$(resolve_version "$DOCKER_UPSTREAM_MODULE" "$DOCKER_UPSTREAM_REF")" || return 1
    mkdir -p "$w/shim"
    cat >"$w/shim/go.mod" <<'MOD'
module github.com/terraform-providers/terraform-provider-docker/shim

go 1.24

require github.com/terraform-providers/terraform-provider-docker v0.0.0
MOD
    cat >"$w/shim/shim.go" <<'GO'
package shim

import (
	"github.com/hashicorp/terraform-plugin-sdk/v2/helper/schema"
	"github.com/terraform-providers/terraform-provider-docker/internal/provider"
)

func NewProvider() *schema.Provider {
	return provider.New("dev")()
}
GO
    go mod edit \
        -replace github.com/terraform-providers/terraform-provider-docker/shim=./shim \
        -replace "github.com/terraform-providers/terraform-provider-docker=$DOCKER_UPSTREAM_MODULE@$upstream" \
        -require github.com/terraform-providers/terraform-provider-docker@v0.0.0 \
        "$w/go.mod"
}

install_python_host_piece() {
    local key
    key="$(component_key PYTHON_HOST)"
    is_fresh python-host "$key" pulumi-language-python pulumi-language-python-exec && return 0
    log "installing pulumi-language-python $PULUMI_VERSION from $PIECES_DIR"
    unpack_piece "$PYTHON_HOST_PIECE" "$PYTHON_HOST_SHA256" pulumi-language-python || return 1
    # The host runs this script with the stack's Python; it ships in the sdk module, which proxies serve.
    local sdk logf="$LOG_DIR/python-host.log"
    : >"$logf"
    sdk="$(cd "$WORK_DIR" && fetch_module "$PULUMI_SDK_MODULE" "$PULUMI_VERSION" 2>>"$logf")" ||
        { show_log_tail "$logf"; return 1; }
    install -m 0755 "${sdk#* }/python/cmd/pulumi-language-python-exec" "$BIN_DIR/pulumi-language-python-exec" ||
        return 1
    printf '%s\n' "$key" >"$STAMP_DIR/python-host"
}

install_provider_piece() { # name piece sha256 pin_prefix
    local name="$1" key
    key="$(component_key "$4")"
    is_fresh "$name" "$key" "pulumi-resource-$name" && return 0
    log "installing pulumi-resource-$name from $PIECES_DIR"
    unpack_piece "$2" "$3" "pulumi-resource-$name" || return 1
    printf '%s\n' "$key" >"$STAMP_DIR/$name"
}

# Install a resource plugin into $PULUMI_HOME unless `pulumi plugin ls` lists that exact version
# (and the installed binary is the one built here).
ensure_plugin_installed() { # pulumi listing name version
    local pulumi="$1" listing="$2" name="$3" version="$4"
    local binary="$BIN_DIR/pulumi-resource-$name" home="${PULUMI_HOME:-$HOME/.pulumi}"
    if awk -v n="$name" -v v="$version" '$1 == n && $2 == "resource" && $3 == v { found = 1 }
            END { exit !found }' <<<"$listing"; then
        cmp -s "$binary" "$home/plugins/resource-$name-v$version/pulumi-resource-$name" && return 0
        log "resource plugin $name $version differs from the pinned build: reinstalling"
        "$pulumi" plugin install resource "$name" "$version" --file "$binary" --reinstall >&2
        return
    fi
    log "installing resource plugin $name $version"
    "$pulumi" plugin install resource "$name" "$version" --file "$binary" >&2
}

plugins_fingerprint() { # pulumi: the CLI, PULUMI_HOME, and each pinned build and installed plugin's identity
    local home="${PULUMI_HOME:-$HOME/.pulumi}" name version
    printf '%s\n' "$1" "$home"
    for name in kubernetes:$K8S_VERSION random:$RANDOM_VERSION docker:$DOCKER_VERSION; do
        version=${name#*:} name=${name%%:*}
        stat -L -c '%n %s %Y %i' "$BIN_DIR/pulumi-resource-$name" \
            "$home/plugins/resource-$name-v$version/pulumi-resource-$name" 2>&1 || true
        if [[ -e "$home/plugins/resource-$name-v$version.partial" ]]; then echo "partial $name"; fi
    done
}

ensure_plugins() { # pulumi: the pinned providers installed as the CLI's plugins
    # Warm, the plugins were found installed and identical to the pinned builds last time and nothing
    # has touched either side since: skip `pulumi plugin ls` and comparing 200 MB (half a second).
    local pulumi="$1" seen listing
    seen="$(plugins_fingerprint "$pulumi")"
    [[ -f "$STAMP_DIR/plugins" && "$(cat "$STAMP_DIR/plugins")" == "$seen" ]] && return 0
    listing="$("$pulumi" plugin ls 2>/dev/null)" || die "pulumi plugin ls failed"
    ensure_plugin_installed "$pulumi" "$listing" kubernetes "$K8S_VERSION"
    ensure_plugin_installed "$pulumi" "$listing" random "$RANDOM_VERSION"
    ensure_plugin_installed "$pulumi" "$listing" docker "$DOCKER_VERSION"
    mkdir -p "$STAMP_DIR"
    plugins_fingerprint "$pulumi" >"$STAMP_DIR/plugins"
}

main() {
    local pulumi_bin own=1
    if pulumi_bin="$(command -v pulumi 2>/dev/null)"; then
        pulumi_bin="$(cd "$(dirname "$pulumi_bin")" && pwd)/pulumi"
        [[ "$pulumi_bin" -ef "$BIN_DIR/pulumi" ]] || { own=0; log "using the pulumi on PATH: $pulumi_bin"; }
    else
        pulumi_bin="$BIN_DIR/pulumi"
    fi

    # What is not built yet, named for the error message if it cannot be built.
    STALE=()
    if ((own)); then
        is_fresh cli "$(component_key)" pulumi || STALE+=(cli)
        is_fresh python-host "$(component_key PYTHON_HOST)" \
            pulumi-language-python pulumi-language-python-exec || STALE+=(python-host)
    fi
    is_fresh kubernetes "$(component_key K8S)" pulumi-resource-kubernetes || STALE+=(kubernetes)
    is_fresh random "$(component_key RANDOM)" pulumi-resource-random || STALE+=(random)
    is_fresh docker "$(component_key DOCKER)" pulumi-resource-docker || STALE+=(docker)
    local need_build=$((${#STALE[@]} > 0))

    if ((need_build)); then
        go_env_setup
        # One builder at a time per cache (parallel make targets); the build steps recheck their stamps.
        if command -v flock >/dev/null 2>&1; then
            exec 9>"$VERSION_DIR/.lock"
            flock 9
        fi
        local failed=() t0=$SECONDS t
        if ((own)); then
            t=$SECONDS
            if ! is_fresh cli "$(component_key)" pulumi; then
                install_pieces cli "$(component_key)" "pulumi=$PULUMI_CLI_PIECE=$PULUMI_CLI_SHA256" ||
                    build_cli || failed+=(cli)
            fi
            log "cli: $((SECONDS - t))s"
            t=$SECONDS
            if piece_path "$PYTHON_HOST_PIECE" >/dev/null; then
                install_python_host_piece || failed+=(python-host)
            else
                build_python_host || failed+=(python-host)
            fi
            log "python-host: $((SECONDS - t))s"
        fi
        t=$SECONDS
        if ! is_fresh kubernetes "$(component_key K8S)" pulumi-resource-kubernetes; then
            install_pieces kubernetes "$(component_key K8S)" \
                "pulumi-resource-kubernetes=$K8S_PIECE=$K8S_SHA256" ||
                build_provider kubernetes "$K8S_VERSION" "$K8S_MODULE" "$K8S_REF" K8S || failed+=(kubernetes)
        fi
        log "kubernetes: $((SECONDS - t))s"
        t=$SECONDS
        if piece_path "$RANDOM_PIECE" >/dev/null; then
            install_provider_piece random "$RANDOM_PIECE" "$RANDOM_SHA256" RANDOM || failed+=(random)
        else
            build_provider random "$RANDOM_VERSION" "$RANDOM_MODULE" "$RANDOM_REF" RANDOM || failed+=(random)
        fi
        log "random: $((SECONDS - t))s"
        t=$SECONDS
        if piece_path "$DOCKER_PIECE" >/dev/null; then
            install_provider_piece docker "$DOCKER_PIECE" "$DOCKER_SHA256" DOCKER || failed+=(docker)
        else
            build_provider docker "$DOCKER_VERSION" "$DOCKER_MODULE" "$DOCKER_REF" DOCKER || failed+=(docker)
        fi
        log "docker: $((SECONDS - t))s"
        log "build total: $((SECONDS - t0))s"
        if ((${#failed[@]})); then
            # A module proxy that filters what it serves answers 403 "not available" for the pinned
            # commits: name that cause instead of leaving it buried in the logs.
            if grep -qs "403 Forbidden" "$LOG_DIR"/*.log; then
                log "the Go module proxy refused some pinned module versions (403, 'not available'): see $LOG_DIR"
            fi
            explain_missing "${failed[@]}"
            die "could not build: ${failed[*]}"
        fi
    fi

    [[ -x "$pulumi_bin" ]] || die "no pulumi at $pulumi_bin"
    ensure_plugins "$pulumi_bin"

    dirname "$pulumi_bin"
}

# Sourced (by the tests), it only defines the functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then main "$@"; fi
