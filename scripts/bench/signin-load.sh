#!/usr/bin/env bash
# Light requests of a card session while 50 clients hammer the password sign-in: this build
# against the commit before argon2 moved to the blocking pool (BEFORE, default ded270d), both
# release builds in one target directory, run alternately ROUNDS times.
set -euo pipefail
cd "$(dirname "$0")/../.."
BEFORE=${BEFORE:-ded270d}
ROUNDS=${ROUNDS:-2}
T=${CARGO_TARGET_DIR:-$PWD/target}
OLD=$(mktemp -d)
trap 'git worktree remove --force "$OLD/src" >/dev/null 2>&1 || true; rm -rf "$OLD"' EXIT
git worktree add --detach "$OLD/src" "$BEFORE" >/dev/null
(cd "$OLD/src" && CARGO_TARGET_DIR="$T/bench-before" cargo build --release -q -p dangjian-server)
cargo build --release -q -p dangjian-server -p dangjian-tests --example signin_load_bench
for r in $(seq 1 "$ROUNDS"); do
  echo "== round $r: before ($BEFORE)"
  DANGJIAN_SERVER_BIN="$T/bench-before/release/dangjian-server" "$T/release/examples/signin_load_bench"
  echo "== round $r: after (this build)"
  DANGJIAN_SERVER_BIN="$T/release/dangjian-server" "$T/release/examples/signin_load_bench"
done
