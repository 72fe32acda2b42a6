#!/usr/bin/env bash
# A verified backup of the corpgraph database:
#   1. pg_dump in custom format (compressed, restorable table by table) to DIR;
#   2. a verification restore into a scratch database on the same server, by ops/restore.sh
#      (with TimescaleDB: between timescaledb_pre_restore() and timescaledb_post_restore());
#   3. the row count of every table, and of every continuous aggregate's materialized data,
#      compared between the two; the scratch database dropped;
#   4. on success: DIR/last-success touched, corpgraph_backup_last_success_timestamp_seconds
#      pushed to PUSHGATEWAY_URL when set (alert CorpgraphBackupMissing), old dumps pruned.
#
#   ops/backup.sh DIR
#
# Connection: the libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE); the
# role needs CREATEDB for the scratch database. pg_dump must be of the server's major version.
# BACKUP_KEEP: how many dumps to keep (default 14).
# Documents in the object store are not in the dump: mirror the bucket alongside, e.g.
#   mc mirror --overwrite --remove minio/corpgraph-documents backup/corpgraph-documents
set -euo pipefail

dir=${1:?usage: ops/backup.sh DIR}
database=${PGDATABASE:?set PGDATABASE (and PGHOST, PGUSER, PGPASSWORD)}
keep=${BACKUP_KEEP:-14}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
dump="$dir/$database-$stamp.dump"
scratch="${database}_verify_$stamp"
mkdir -p "$dir"

log() { printf '%s backup: %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }

# every table's row count, then every continuous aggregate's materialized rows: one "name count"
# line each, in name order
row_counts() {
  psql -X -q -At -F ' ' -d "$1" -v ON_ERROR_STOP=1 <<'SQL'
SELECT format('SELECT %L, count(*) FROM %I.%I',
              format('%I.%I', table_schema, table_name), table_schema, table_name)
FROM information_schema.tables
WHERE table_type = 'BASE TABLE'
  AND table_schema NOT IN ('pg_catalog', 'information_schema')
  AND table_schema NOT LIKE '\_timescaledb%' AND table_schema NOT LIKE 'timescaledb\_%'
ORDER BY table_schema, table_name
\gexec
SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'timescaledb') AS timescale \gset
\if :timescale
SELECT format('SELECT %L, count(*) FROM %I.%I',
              format('%I.%I (materialized)', view_schema, view_name),
              materialization_hypertable_schema, materialization_hypertable_name)
FROM timescaledb_information.continuous_aggregates
ORDER BY view_schema, view_name
\gexec
\endif
SQL
}

log "dumping $database to $dump"
pg_dump -Fc -Z 6 -d "$database" -f "$dump.partial"
mv "$dump.partial" "$dump"

cleanup() { dropdb --if-exists "$scratch" || true; }
trap cleanup EXIT
"$(dirname "$0")/restore.sh" "$dump" "$scratch"  # as a recovery would

source_counts=$(row_counts "$database")
restored_counts=$(row_counts "$scratch")
if [ "$source_counts" != "$restored_counts" ]; then
  log "verification FAILED: row counts differ"
  diff <(echo "$source_counts") <(echo "$restored_counts") >&2 || true
  mv "$dump" "$dump.unverified"
  exit 1
fi
log "verified: $(wc -l <<<"$source_counts") tables and aggregates, same row counts"

touch "$dir/last-success"
if [ -n "${PUSHGATEWAY_URL:-}" ]; then
  printf 'corpgraph_backup_last_success_timestamp_seconds %s\n' "$(date +%s)" |
    curl -fsS --data-binary @- "$PUSHGATEWAY_URL/metrics/job/corpgraph-backup" ||
    log "could not report to $PUSHGATEWAY_URL"
fi
# keep the newest $keep verified dumps
ls -1t "$dir"/"$database"-*.dump | tail -n +"$((keep + 1))" | xargs -r rm --
echo "$dump"
