#!/usr/bin/env bash
# Issue 17: one server against two behind HAProxy with a streaming replica serving reads, at
# MEMBERS members on PostgreSQL — lookups by ID number and a branch's member list under 50 and
# 200 concurrent clients, requests/s and p99 side by side in one run. The rig is the cluster
# suite's own (tests/src/cluster.rs: a PostgreSQL primary and replica of its own made with
# Debian's initdb/pg_basebackup, two servers, HAProxy), built once; run on a quiet machine.
#   MEMBERS=1000000 DURATION=20 CLIENTS=50,200 bash scripts/bench/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
ensure_packages postgresql haproxy
T=${CARGO_TARGET_DIR:-$PWD/target}
# Two builds: `--example` would narrow a joint one to the example and leave the server stale.
cargo build --release -q -p dangjian-server --bin dangjian-server
cargo build --release -q -p dangjian-tests --example cluster_bench
echo "== $(nproc) cores; MEMBERS=${MEMBERS:-1000000} DURATION=${DURATION:-20} CLIENTS=${CLIENTS:-50,200}"
DANGJIAN_SERVER_BIN="$T/release/dangjian-server" "$T/release/examples/cluster_bench"
