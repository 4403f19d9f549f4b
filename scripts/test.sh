#!/usr/bin/env bash
# Runs every test: installs and starts what the suites need (PostgreSQL), checks formatting and
# lints, builds once, then runs the unit, store (SQLite and PostgreSQL) and API suites.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_packages curl ca-certificates chromium chromium-driver fonts-noto-cjk
ensure_postgres
export CARGO_TERM_COLOR=never

echo "== format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

echo "== build"
cargo build --workspace --bins --tests

echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast --test-threads 4
else
  cargo test --workspace --no-fail-fast -- --test-threads 4
fi
