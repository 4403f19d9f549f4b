#!/usr/bin/env bash
# A province of a million members (issue 16; DESIGN.md's performance targets), on SQLite and on
# PostgreSQL in turn: the demo's build, subtree statistics, lookup by ID number under 50
# concurrent clients, the comprehensive query and fuzzy search over sealed ID numbers in a
# subtree of about 100,000 members, far pages of a long list, the batch quality check of the
# whole province and an xlsx import of IMPORT_ROWS rows — all through the real server.
#
#   bash scripts/bench/scale.sh          # MEMBERS=1000000 ENGINES="sqlite postgres" IMPORT_ROWS=100000
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh
ensure_postgres
export DANGJIAN_TEST_PG="${DANGJIAN_TEST_PG:-postgres://dangjian:dangjian@127.0.0.1:5432/postgres}"
cargo build --release -p dangjian-server --bin dangjian-server
cargo build --release -p dangjian-tests --example scale_bench
for engine in ${ENGINES:-sqlite postgres}; do
  ENGINE=$engine MEMBERS=${MEMBERS:-1000000} IMPORT_ROWS=${IMPORT_ROWS:-100000} \
    target/release/examples/scale_bench
done
