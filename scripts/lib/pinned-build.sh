# shellcheck shell=bash
# Helpers shared by the scripts that build pinned binaries from Go modules into a versioned cache
# (scripts/engine/ensure-engine.sh, scripts/cluster/ensure-cluster.sh). Sourced, never run.
# The caller sets: LOG_PREFIX, SCRIPT_PATH (whose "# ---- pins" block keys the stamps),
# RECIPE_REVISION, COMMON_PIN_PREFIXES (pin prefixes every component depends on; may be empty),
# BIN_DIR, STAMP_DIR, WORK_DIR.

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
