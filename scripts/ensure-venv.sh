#!/usr/bin/env bash
# Create or refresh a virtualenv from pinned requirement files, so that every script that runs the
# program or the policy pack works as the first command after a clone (not only after `make`).
#
#   scripts/ensure-venv.sh DIR REQUIREMENTS [MORE_REQUIREMENT_FILES...]
#
# DIR/.installed holds a hash of the interpreter's version and every requirement file named (pass the
# files a `-r` line includes too): a warm run compares it and returns at once; a changed file, a new
# Python or a half-built directory rebuilds. Concurrent callers wait on a lock beside DIR. On failure
# the message names the command to run, and the half-built directory is not left looking ready.
set -euo pipefail
dir=${1:?usage: scripts/ensure-venv.sh DIR REQUIREMENTS [MORE_REQUIREMENT_FILES...]}
requirements=${2:?usage: scripts/ensure-venv.sh DIR REQUIREMENTS [MORE_REQUIREMENT_FILES...]}
shift 1
python=${PYTHON:-python3}

command -v "$python" >/dev/null 2>&1 || {
    echo "error: $python is not on PATH; install Python 3.11 (Debian: apt-get install python3 python3-venv)" >&2
    exit 1
}
want=$({ "$python" -c 'import sys; print(sys.version)'; cat "$@"; } | sha256sum | cut -d' ' -f1)
[[ -f "$dir/.installed" && "$(cat "$dir/.installed")" == "$want" && -x "$dir/bin/python" ]] && exit 0

if [[ -L "$dir" ]]; then
    # A link to another checkout's virtualenv (the suites' project copies): never rebuild that one.
    echo "error: $dir links to $(readlink -f "$dir"), which was not built from these requirement files;" \
        "run make venv policies-venv in the checkout it belongs to" >&2
    exit 1
fi
mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
# Another caller may have built it while this one waited.
[[ -f "$dir/.installed" && "$(cat "$dir/.installed")" == "$want" && -x "$dir/bin/python" ]] && exit 0

echo "preparing the virtualenv $dir from $requirements ..." >&2
rm -f "$dir/.installed"
if ! "$python" -m venv "$dir" >&2 ||
    ! "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2; then
    echo "error: could not prepare $dir; fix the error above, then run:" \
        "$python -m venv $dir && $dir/bin/pip install -r $requirements" >&2
    exit 1
fi
printf '%s\n' "$want" >"$dir/.installed"
