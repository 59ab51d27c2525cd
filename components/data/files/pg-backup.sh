#!/bin/sh
# Logical backups of one PostgreSQL database, for the postgres image (POSIX sh, the image's client tools).
#
#   pg-backup.sh backup               dump PGDATABASE into BACKUP_DIR, verify it, prune old dumps
#   pg-backup.sh verify FILE          sha256 and archive table of contents of one dump
#   pg-backup.sh restore-check FILE   verify, restore into a scratch database, compare exact row counts
#
# Environment: libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD (from a Secret) and PGDATABASE (required);
# BACKUP_DIR (required for backup); RETENTION_DAYS (default 7, a positive integer); BACKUP_LABEL
# (optional, e.g. pre-migration: letters, digits, '.', '_', '-').
# Files in BACKUP_DIR: <db>-<YYYYmmddTHHMMSSZ>[-<label>].dump (pg_dump -Fc), <dump>.sha256 (sha256sum
# format), backups.log (one JSON line per successful backup) and latest.json (the last of those lines).
# Exit status: 0 success, 1 a failed backup, verification or check, 2 usage or configuration error.
set -eu

prog=pg-backup.sh
log() { printf '%s: %s\n' "$prog" "$*"; }
fail() {
  printf '%s: error: %s\n' "$prog" "$*" >&2
  exit 1
}
usage() {
  printf '%s: %s\nusage: %s backup | verify FILE | restore-check FILE\n' "$prog" "$*" "$prog" >&2
  exit 2
}

# Database names end up in file names and in a quoted identifier: keep them to a safe alphabet, and short
# enough that "<db>_restore_check" fits PostgreSQL's 63-byte identifiers.
check_database() {
  [ -n "${PGDATABASE:-}" ] || usage "PGDATABASE is not set"
  case $PGDATABASE in
    *[!A-Za-z0-9_-]* | -*) usage "PGDATABASE '$PGDATABASE' must be letters, digits, '_' or '-'" ;;
  esac
  [ "${#PGDATABASE}" -le 49 ] || usage "PGDATABASE '$PGDATABASE' is longer than 49 characters"
}

# One statement in PGDATABASE; warnings and errors reach stderr, notices ("does not exist, skipping") do not.
sql() {
  psql -X -q -w -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "$1"
}

# "hash  name" from sha256sum on stdin; prints the hash.
sha256_of() {
  sum=$(sha256sum <"$1") || fail "cannot read $1"
  printf '%s\n' "${sum%% *}"
}

# What a half-finished run leaves behind, removed by the EXIT trap unless the run got past it.
partial_dump=
partial_sum=
work_dir=
scratch_db=
cleanup() {
  status=$?
  [ -z "$partial_dump" ] || rm -f "$partial_dump"
  [ -z "$partial_sum" ] || rm -f "$partial_sum"
  [ -z "$work_dir" ] || rm -rf "$work_dir"
  if [ -n "$scratch_db" ]; then
    sql "DROP DATABASE IF EXISTS \"$scratch_db\"" >/dev/null 2>&1 ||
      printf '%s: error: could not drop the scratch database %s\n' "$prog" "$scratch_db" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

verify() {
  file=$1
  [ -f "$file" ] || fail "verify: $file does not exist"
  [ -f "$file.sha256" ] || fail "verify: $file.sha256 does not exist: the dump cannot be checked"
  expected=
  read -r expected _ <"$file.sha256" || [ -n "$expected" ] || fail "verify: $file.sha256 is empty"
  actual=$(sha256_of "$file")
  [ "$expected" = "$actual" ] || fail "verify: CHECKSUM MISMATCH for $file: expected $expected, got $actual"
  toc=$(pg_restore --list "$file" 2>&1) || fail "verify: pg_restore cannot read $file: $toc"
  entries=$(printf '%s\n' "$toc" | grep -c '^[0-9]') || true
  log "verify: OK $file (sha256 $actual, $entries archive entries)"
}

backup() {
  check_database
  [ -n "${BACKUP_DIR:-}" ] || usage "BACKUP_DIR is not set"
  [ -d "$BACKUP_DIR" ] || usage "BACKUP_DIR $BACKUP_DIR is not a directory"
  retention=${RETENTION_DAYS:-7}
  case $retention in
    '' | *[!0-9]*) usage "RETENTION_DAYS '$retention' is not a whole number of days" ;;
  esac
  # Leading zeros would make $(( )) read octal; 0 would prune every dump but the last.
  retention=$(printf '%s' "$retention" | sed 's/^0*//')
  [ -n "$retention" ] || usage "RETENTION_DAYS 0 would keep no history; use 1 or more"
  [ "${#retention}" -le 5 ] || usage "RETENTION_DAYS $retention is more than 99999 days"
  label=${BACKUP_LABEL:-}
  case $label in
    *[!A-Za-z0-9._-]*) usage "BACKUP_LABEL '$label' must be letters, digits, '.', '_' or '-'" ;;
  esac

  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  name="$PGDATABASE-$stamp${label:+-$label}.dump"
  final="$BACKUP_DIR/$name"
  [ ! -e "$final" ] || fail "backup: $final already exists"
  # Hidden and without the .dump suffix: no reader or pruning takes a partial dump for a backup.
  tmp="$BACKUP_DIR/.$name.partial.$$"
  partial_dump=$tmp
  partial_sum=$tmp.sha256

  log "backup: dumping database $PGDATABASE from ${PGHOST:-local socket}:${PGPORT:-5432} to $final"
  pg_dump -w -Fc -f "$tmp" || fail "backup: pg_dump failed; nothing was written"
  toc=$(pg_restore --list "$tmp" 2>&1) || fail "backup: the new dump does not read back: $toc"
  hash=$(sha256_of "$tmp")
  size=$(wc -c <"$tmp")
  size=$((size))
  printf '%s  %s\n' "$hash" "$name" >"$tmp.sha256"
  # The checksum first: a dump that is visible always has one. Until the dump is renamed, the trap removes both.
  mv "$tmp.sha256" "$final.sha256"
  partial_sum=$final.sha256
  mv "$tmp" "$final"
  partial_dump=
  partial_sum=
  log "backup: wrote $name ($size bytes, sha256 $hash)"

  line=$(printf '{"timestamp":"%s","database":"%s","file":"%s","size":%s,"sha256":"%s","label":%s}' \
    "$stamp" "$PGDATABASE" "$name" "$size" "$hash" "$(if [ -n "$label" ]; then printf '"%s"' "$label"; else printf null; fi)")
  printf '%s\n' "$line" >>"$BACKUP_DIR/backups.log"
  printf '%s\n' "$line" >"$BACKUP_DIR/.latest.json.$$"
  mv "$BACKUP_DIR/.latest.json.$$" "$BACKUP_DIR/latest.json"
  log "backup: recorded in $BACKUP_DIR/backups.log and latest.json"

  # This database's dumps only (the timestamp pattern keeps "app" from matching "app-old"), never the new one.
  # -mtime +N is "N+1 days or older" (whole days, rounded down), so N-1 prunes from RETENTION_DAYS days old.
  kept=0
  for f in "$BACKUP_DIR/$PGDATABASE"-[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]T[0-9][0-9][0-9][0-9][0-9][0-9]Z*.dump; do
    [ -f "$f" ] || continue
    if [ "$f" != "$final" ] && [ -n "$(find "$f" -prune -mtime +"$((retention - 1))")" ]; then
      rm -f "$f" "$f.sha256"
      log "prune: removed ${f##*/} (older than RETENTION_DAYS=$retention)"
    else
      kept=$((kept + 1))
    fi
  done
  # A run killed outright (OOM, SIGKILL) cannot run its trap; a day later its partial file is surely stale.
  for f in "$BACKUP_DIR/.$PGDATABASE"-*.partial.*; do
    [ -f "$f" ] || continue
    if [ -n "$(find "$f" -prune -mtime +0)" ]; then
      rm -f "$f"
      log "prune: removed stale partial file ${f##*/}"
    fi
  done
  log "backup: OK $name; $kept dumps of $PGDATABASE kept"
}

# "schema.table|rows" for every table of the database $1 into the file $2, sorted for join(1);
# count(*) per table, not the planner's estimates.
row_counts() {
  psql -X -q -w -A -t -F '|' -v ON_ERROR_STOP=1 -d "$1" -o "$2.unsorted" -c "
    SELECT format('%I.%I', n.nspname, c.relname),
           (xpath('/row/n/text()',
                  query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')
           ))[1]::text::bigint
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema')
      AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'
    ORDER BY 1" || return 1
  LC_ALL=C sort -t '|' -k 1,1 "$2.unsorted" >"$2"
}

# Compares the live database with the dump: run it on a quiet database, or right after the backup,
# or rows written since the dump show up as mismatches.
restore_check() {
  file=$1
  check_database
  verify "$file"
  work=$(mktemp -d) || fail "restore-check: cannot create a temporary directory"
  work_dir=$work

  scratch="${PGDATABASE}_restore_check"
  log "restore-check: restoring $file into scratch database $scratch"
  sql "DROP DATABASE IF EXISTS \"$scratch\"" >/dev/null ||
    fail "restore-check: cannot drop a leftover $scratch"
  # template0: nothing an administrator added to template1 gets in the way of the restore.
  sql "CREATE DATABASE \"$scratch\" TEMPLATE template0" >/dev/null ||
    fail "restore-check: cannot create $scratch (the role needs CREATEDB)"
  scratch_db=$scratch
  pg_restore -w --no-owner --exit-on-error -d "$scratch" "$file" ||
    fail "restore-check: pg_restore into $scratch failed"

  row_counts "$PGDATABASE" "$work/source" || fail "restore-check: cannot count rows in $PGDATABASE"
  row_counts "$scratch" "$work/restored" || fail "restore-check: cannot count rows in $scratch"
  LC_ALL=C join -t '|' -a 1 -a 2 -e missing -o 0,1.2,2.2 "$work/source" "$work/restored" >"$work/joined" ||
    fail "restore-check: cannot compare the counts"

  tables=0
  mismatches=0
  while IFS='|' read -r table source restored; do
    tables=$((tables + 1))
    if [ "$source" = "$restored" ]; then
      log "restore-check: $table source=$source restored=$restored ok"
    else
      mismatches=$((mismatches + 1))
      printf '%s: restore-check: %s source=%s restored=%s MISMATCH\n' "$prog" "$table" "$source" "$restored" >&2
    fi
  done <"$work/joined"
  [ "$tables" -gt 0 ] || log "restore-check: warning: $PGDATABASE has no tables"
  [ "$mismatches" -eq 0 ] || fail "restore-check: FAILED: $mismatches of $tables tables differ between $PGDATABASE and the dump"
  log "restore-check: OK $file ($tables tables, row counts equal)"
}

[ $# -ge 1 ] || usage "no mode given"
mode=$1
shift
case $mode in
  backup)
    [ $# -eq 0 ] || usage "backup takes no arguments"
    backup
    ;;
  verify)
    [ $# -eq 1 ] || usage "verify takes one FILE"
    verify "$1"
    ;;
  restore-check)
    [ $# -eq 1 ] || usage "restore-check takes one FILE"
    restore_check "$1"
    ;;
  *) usage "unknown mode '$mode'" ;;
esac
