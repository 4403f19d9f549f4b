#!/usr/bin/env bash
# How long `dangjian-server demo --no-serve` takes to build the synthetic province (platform CA,
# migrations, organisations, units, members with sealed ID numbers and phones, accounts, demo
# card certificates) on SQLite and, when a local cluster answers, on PostgreSQL.
#
#   bash scripts/bench/demo-generation.sh
#
# Knobs (environment): MEMBERS sizes ("50000 200000"), RUNS per size and engine (2),
# PG_ADMIN_URL (postgres://dangjian:dangjian@127.0.0.1:5432/postgres; a scratch database is
# created there for each run and dropped after it). Prints the wall-clock time of the whole
# command and the build time the command reports itself.
set -euo pipefail
cd "$(dirname "$0")/../.."

MEMBERS=${MEMBERS:-"50000 200000"}
RUNS=${RUNS:-2}
PG_ADMIN_URL=${PG_ADMIN_URL:-postgres://dangjian:dangjian@127.0.0.1:5432/postgres}

[ -n "${NO_BUILD:-}" ] || cargo build --release -p dangjian-server

WORK=$(mktemp -d)
SCRATCH=""
cleanup() {
  if [ -n "$SCRATCH" ]; then psql -qX "$PG_ADMIN_URL" -c "drop database if exists $SCRATCH" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

engines=(sqlite)
if command -v psql >/dev/null && psql -qXtA "$PG_ADMIN_URL" -c 'select 1' >/dev/null 2>&1; then
  engines+=(postgres)
  PG_VERSION=$(psql -qXtA "$PG_ADMIN_URL" -c 'show server_version' | cut -d' ' -f1)
else
  echo "(no PostgreSQL at $PG_ADMIN_URL: SQLite only)"
fi

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo
printf '| %-16s | %-10s | %3s | %14s | %16s | %12s |\n' engine members run "wall clock, s" "reported build, s" "database"
printf '|%s|%s|%s|%s|%s|%s|\n' ------------------ ------------ -----: ---------------: ------------------: -------------:
for engine in "${engines[@]}"; do
  for n in $MEMBERS; do
    for run in $(seq 1 "$RUNS"); do
      data="$WORK/d-$engine-$n-$run"
      args=(demo --data "$data" --members "$n" --no-serve)
      if [ "$engine" = postgres ]; then
        SCRATCH="dj_bench_$$_${n}_$run"
        psql -qX "$PG_ADMIN_URL" -c "create database $SCRATCH" >/dev/null
        args+=(--database "${PG_ADMIN_URL%/*}/$SCRATCH")
      fi
      t0=$(date +%s.%N)
      DANGJIAN_LOG=warn target/release/dangjian-server "${args[@]}" >"$WORK/out" 2>&1 || { cat "$WORK/out"; exit 1; }
      t1=$(date +%s.%N)
      reported=$(grep -o 'built in [0-9.]* s' "$WORK/out" | awk '{print $3}')
      if [ "$engine" = postgres ]; then
        size=$(psql -qXtA "$PG_ADMIN_URL" -c "select pg_size_pretty(pg_database_size('$SCRATCH'))")
        psql -qX "$PG_ADMIN_URL" -c "drop database $SCRATCH" >/dev/null
        SCRATCH=""
        label="PostgreSQL $PG_VERSION"
      else
        size=$(du -h "$data/dangjian.db" | cut -f1) # the database file, without its WAL
        label="SQLite"
      fi
      printf '| %-16s | %10s | %3d | %14.1f | %16s | %12s |\n' "$label" "$n" "$run" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" "$reported" "$size"
      rm -rf "$data"
    done
  done
done
