#!/usr/bin/env bash
# The organisation tree with 2,000 direct children (issue 4: "opens in under a second"):
# a 10,000-member demo on SQLite, its tier-2 admin (card session) creates 2,000 branches under
# its general committee through the API, then 30 timed requests each for what the tree and the
# work area load: the first and the last page of children (100 per page, as the page script
# asks), the organisation record and the organisation page's children tab (HTML).
#
#   bash scripts/bench/tree.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -p dangjian-server
cargo run --release -p dangjian-tests --example tree_bench
