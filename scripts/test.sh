#!/usr/bin/env bash
# Runs every test: installs and starts what the suites need (PostgreSQL; pcscd with vsmartcard's
# vpcd for the card suite; Chromium for the browser suite), checks formatting and lints, builds
# once, then runs the unit, store (SQLite and PostgreSQL), API, fuzz (schemathesis from a pinned
# Python virtual environment), browser, certificate and card suites.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_packages postgresql haproxy curl ca-certificates openssl chromium chromium-driver fonts-noto-cjk poppler-utils \
  pcscd libpcsclite-dev vsmartcard-vpcd opensc yubico-piv-tool pcsc-tools
ensure_postgres
ensure_pcscd
ensure_st_venv
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
