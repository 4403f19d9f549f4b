#!/usr/bin/env bash
# Builds the server and starts the demo on the embedded SQLite default:
# a synthetic province, demo accounts in data/demo/demo-accounts.json, HTTPS on 127.0.0.1:8443.
# Extra arguments go to `dangjian-server demo` (e.g. --members 1000000, --listen 0.0.0.0:8443).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p dangjian-server
exec target/release/dangjian-server demo --data "${DANGJIAN_DATA:-data/demo}" "$@"
