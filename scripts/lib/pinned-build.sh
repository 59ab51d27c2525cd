# shellcheck shell=bash
# Helpers shared by the scripts that build pinned binaries from Go modules into a versioned cache
# (scripts/engine/ensure-engine.sh, scripts/cluster/ensure-cluster.sh). Sourced, never run.
# The caller sets: LOG_PREFIX, SCRIPT_PATH (whose "# ---- pins" block keys the stamps),
# RECIPE_REVISION, COMMON_PIN_PREFIXES (pin prefixes every component depends on; may be empty),
# BIN_DIR, STAMP_DIR, WORK_DIR, and optionally PIECES_DIR.

log() { printf '%s: %s\n' "$LOG_PREFIX" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Hash of the pins a component depends on: the common prefixes' lines plus those of its own.
component_key() { # prefix...
    local pins prefix
    pins="$(sed -n '/^# ---- pins/,/^# ---- end pins/p' "$SCRIPT_PATH" | grep -v '^#')"
    {
        echo "recipe=$RECIPE_REVISION"
        # shellcheck disable=SC2086 # a list of words by design
        for prefix in $COMMON_PIN_PREFIXES "$@"; do grep -E "^${prefix}_" <<<"$pins" || true; done
    } | sha256sum | cut -c1-16
}

is_fresh() { # name key binary...: the stamp matches and every binary is there
    local name="$1" key="$2"
    shift 2
    [[ -f "$STAMP_DIR/$name" && "$(cat "$STAMP_DIR/$name")" == "$key" ]] || return 1
    local f
    for f in "$@"; do [[ -x "$BIN_DIR/$f" ]] || return 1; done
}

show_log_tail() {
    tail -n 25 "$1" | sed 's/^/    /' >&2
    log "full log: $1"
}

run_logged() { # logfile cmd...: output to the log; its tail on failure
    local logfile="$1"
    shift
    printf '+ %s\n' "$*" >>"$logfile"
    if ! "$@" >>"$logfile" 2>&1; then
        log "command failed: $*"
        show_log_tail "$logfile"
        return 1
    fi
}

new_wrapper() { # name -> prints a fresh wrapper module dir
    local dir="$WORK_DIR/$1"
    rm -rf "$dir"
    mkdir -p "$dir"
    (cd "$dir" && go mod init "$LOG_PREFIX.local/$1" >/dev/null 2>&1)
    printf '%s\n' "$dir"
}

finish() { # name key binary...: move staged binaries into bin, then write the stamp
    local name="$1" key="$2"
    shift 2
    local f
    for f in "$@"; do mv -f "$WORK_DIR/$name/out/$f" "$BIN_DIR/$f" || return 1; done
    printf '%s\n' "$key" >"$STAMP_DIR/$name"
    rm -rf "${WORK_DIR:?}/$name"
}

# ---- prebuilt pieces ----
# The project's pinned binaries, built by these same recipes and xz-compressed, in ../shared/engine
# beside the project (or $SUPPORT_PLATFORM_ENGINE_PIECES): a cold run unpacks them instead of spending
# most of its time compiling. A piece is used only when its unpacked sha256 is the pinned one.
: "${PIECES_DIR:=${SUPPORT_PLATFORM_ENGINE_PIECES:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd -P)/shared/engine}}"

piece_path() { # PIECE_FILE -> path if that piece is present
    [[ -f "$PIECES_DIR/$1" ]] && printf '%s\n' "$PIECES_DIR/$1"
}

# Unpack one xz piece into BIN_DIR (or DEST_DIR), refusing it unless the binary has the pinned sha256.
unpack_piece() { # piece_file sha256 binary_name [dest_dir]
    local src dest_dir="${4:-$BIN_DIR}" tmp actual
    src="$(piece_path "$1")" || return 1
    mkdir -p "$dest_dir"
    tmp="$(mktemp "$dest_dir/.$3.XXXXXX")"
    if command -v xz >/dev/null 2>&1; then
        xz -dc "$src" >"$tmp" || { rm -f "$tmp"; log "cannot unpack $src"; return 1; }
    else
        python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as s, open(sys.argv[2], "wb") as d: shutil.copyfileobj(s, d)' "$src" "$tmp" ||
            { rm -f "$tmp"; log "cannot unpack $src"; return 1; }
    fi
    actual="$(sha256sum "$tmp" | cut -d' ' -f1)"
    if [[ "$actual" != "$2" ]]; then
        rm -f "$tmp"
        log "sha256 mismatch for $src: got $actual, pinned $2; refusing it"
        return 1
    fi
    chmod 0755 "$tmp"
    mv -f "$tmp" "$dest_dir/$3"
}

# Install a component from pieces: "binary=piece=sha256" triples, all or nothing; stamps it like a build.
install_pieces() { # name key binary=piece=sha256...
    local name="$1" key="$2" spec
    shift 2
    for spec in "$@"; do
        local rest="${spec#*=}"
        piece_path "${rest%%=*}" >/dev/null || return 1
    done
    log "unpacking $name from $PIECES_DIR"
    for spec in "$@"; do
        local bin="${spec%%=*}" rest="${spec#*=}"
        unpack_piece "${rest%%=*}" "${rest#*=}" "$bin" || return 1
    done
    mkdir -p "$STAMP_DIR"
    printf '%s\n' "$key" >"$STAMP_DIR/$name"
}
