#!/usr/bin/env bash
# Restore a dump made by ops/backup.sh into a new, empty database (never over a live one):
#
#   ops/restore.sh DUMP TARGET_DATABASE
#
# Connection: the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD). With TimescaleDB in
# the dump, the restore runs between timescaledb_pre_restore() and timescaledb_post_restore().
# Then point CORPGRAPH_DATABASE_URL at TARGET_DATABASE (or rename it) and start the API;
# restore the documents bucket from its mirror (see ops/backup.sh).
set -euo pipefail

dump=${1:?usage: ops/restore.sh DUMP TARGET_DATABASE}
target=${2:?usage: ops/restore.sh DUMP TARGET_DATABASE}
[ -f "$dump" ] || { echo "restore: no such dump: $dump" >&2; exit 1; }

# the whole listing first: piped into `grep -q`, which stops reading at its first match,
# pg_restore would die of SIGPIPE now and then, and pipefail turn that into "no TimescaleDB"
contents=$(pg_restore --list "$dump")
createdb "$target"  # fails if it exists: a restore never merges into live data
if grep -q 'EXTENSION - timescaledb' <<<"$contents"; then
  psql -X -q -d "$target" -v ON_ERROR_STOP=1 \
    -c "CREATE EXTENSION timescaledb" -c "SELECT timescaledb_pre_restore()" >/dev/null
  pg_restore --exit-on-error --no-owner -d "$target" "$dump"
  psql -X -q -d "$target" -v ON_ERROR_STOP=1 -c "SELECT timescaledb_post_restore()" >/dev/null
  echo "restore: $dump restored into $target (TimescaleDB)" >&2
else
  pg_restore --exit-on-error --no-owner -d "$target" "$dump"
  echo "restore: $dump restored into $target (plain PostgreSQL)" >&2
fi
