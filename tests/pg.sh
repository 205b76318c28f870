#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster for the annotation store tests and print the URL.
#
#   eval "$(tests/pg.sh)"      # installs Debian's postgresql if missing, starts it, exports
#                              # VIDPROMPTER_PG_URL (stdout carries only the export line)
#   tests/pg.sh stop           # stops it; the data folder is deleted
#
# The cluster lives in $VIDPROMPTER_PG_DIR (default /tmp/vidprompter-pg), listens on
# 127.0.0.1:$VIDPROMPTER_PG_PORT (default 55432) with trust auth and fsync off: it holds test
# data only. Run as root it runs the server as the `postgres` user (initdb refuses root).
set -euo pipefail
PORT="${VIDPROMPTER_PG_PORT:-55432}"
DIR="${VIDPROMPTER_PG_DIR:-/tmp/vidprompter-pg}"
URL="postgresql+psycopg://postgres@127.0.0.1:${PORT}/postgres"

log() { echo "pg.sh: $*" >&2; }
pg_bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

if [ -z "$(pg_bindir)" ]; then
  log "postgresql not installed; installing with apt-get"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
fi
BIN="$(pg_bindir)"
[ -n "$BIN" ] || { log "no PostgreSQL binaries after install"; exit 1; }

DATA="$DIR/data"
if [ "${1:-start}" = "stop" ]; then
  as_owner "'$BIN/pg_ctl' -D '$DATA' -m fast stop" >&2 || true
  rm -rf "$DIR"
  exit 0
fi

if ! as_owner "'$BIN/pg_ctl' -D '$DATA' status" >/dev/null 2>&1; then
  rm -rf "$DIR"
  mkdir -p "$DIR"
  if [ "$(id -u)" -eq 0 ]; then chown postgres "$DIR"; fi
  as_owner "'$BIN/initdb' -D '$DATA' -A trust -U postgres --no-sync" >/dev/null
  as_owner "'$BIN/pg_ctl' -D '$DATA' -l '$DIR/server.log' -w -t 60 start \
    -o \"-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200\"" >&2 \
    || { log "server did not start; see $DIR/server.log"; tail -n 20 "$DIR/server.log" >&2; exit 1; }
fi
log "PostgreSQL ready on 127.0.0.1:$PORT (data $DATA)"
echo "export VIDPROMPTER_PG_URL=$URL"
