#!/usr/bin/env bash
# The agent's tunnel against direct mutual TLS and against stunnel (Debian's stunnel4), on this
# machine, in one run (issue 7): the same light request (`GET /api/v1/session`) through three
# paths to one `dangjian-server demo`, each with its own card account (a TOTP code is accepted
# once per account and 30-second step):
#
#   direct   the load client speaks mutual TLS to the server itself with the tier-1 admin's
#            software card key; session from POST /api/v1/session/card, then a bearer token;
#   tunnel   the tier-2 admin's key in the virtual PIV card (vcard, vpcd reader
#            "Virtual PCD 00 01", real pcscd); `dangjian-agent connect` holds the card session
#            and the load client speaks plain HTTP/1.1 to its loopback endpoint with the
#            dj_agent cookie from the first URL;
#   stunnel  stunnel4 in client mode with the security officer's software key, verifying the
#            platform CA; the load client speaks plain HTTP/1.1 to it with a bearer token.
#
# The load client is `tests/examples/tunnel_bench.rs`: per round and path, sequential requests
# on one keep-alive connection (p50/p99/mean) and throughput runs with C keep-alive connections;
# the paths alternate within every round. It prints a markdown table.
#
#   bash scripts/bench/tunnel.sh
#
# Knobs (environment): REQUESTS per path and round (5000), WARMUP (500), THROUGHPUT requests
# per run (20000), CONCURRENCY ("1,8"), ROUNDS (5), MEMBERS in the demo (1000), NO_BUILD=1 to
# skip `cargo build --release --workspace --bins --examples`.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

REQUESTS=${REQUESTS:-5000}
WARMUP=${WARMUP:-500}
THROUGHPUT=${THROUGHPUT:-20000}
CONCURRENCY=${CONCURRENCY:-1,8}
ROUNDS=${ROUNDS:-5}
MEMBERS=${MEMBERS:-1000}
READER="Virtual PCD 00 01"
VPCD_PORT=35964
PIN=123456

ensure_packages stunnel4 jq curl
ensure_pcscd
[ -n "${NO_BUILD:-}" ] || cargo build --release --workspace --bins --examples
BIN=target/release
SERVER_BIN=$BIN/dangjian-server
AGENT_BIN=$BIN/dangjian-agent

WORK=$(mktemp -d)
SERVER_PID="" CARD_PID="" AGENT_PID="" STUNNEL_PID=""
stop() { # PID: TERM, then KILL after 5 s
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 1 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  # The card leaves the reader (and pcscd has seen it go) before the agent holding it is
  # stopped, so the next user of the reader finds it empty.
  if [ -n "$CARD_PID" ]; then
    kill -USR1 "$CARD_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do card_present || break; sleep 0.1; done
  fi
  [ -z "$AGENT_PID" ] || stop "$AGENT_PID"
  [ -z "$CARD_PID" ] || stop "$CARD_PID"
  [ -z "$STUNNEL_PID" ] || stop "$STUNNEL_PID"
  [ -z "$SERVER_PID" ] || stop "$SERVER_PID"
  exec 7>&- 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Whether pcscd sees a card in our reader: `dangjian-agent readers` prints each reader's name on
# one line and "  卡片：未插入" (card: not inserted) on the next when it is empty.
card_present() {
  local state
  state=$("$AGENT_BIN" readers 2>/dev/null | grep -A1 -F "$READER" | sed -n 2p)
  [ -n "$state" ] && ! grep -q '未插入' <<<"$state"
}

# Waits until FILE has a line matching REGEX (process PID alive), at most SECONDS.
wait_for_line() {
  local file=$1 regex=$2 pid=$3 seconds=$4 i
  for i in $(seq 1 $((seconds * 10))); do
    grep -qE "$regex" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "process $pid ended; its output:" >&2; cat "$file" >&2; return 1; }
    sleep 0.1
  done
  echo "timed out waiting for /$regex/ in $file" >&2
  return 1
}

totp() { "$SERVER_BIN" totp-code --secret "$1"; }

# ---- the server --------------------------------------------------------------------------------
PORT=$(free_port)
DATA="$WORK/demo"
DANGJIAN_LOG=warn "$SERVER_BIN" demo --data "$DATA" --members "$MEMBERS" \
  --listen "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
wait_for_line "$WORK/server.log" "^listening on " "$SERVER_PID" 120
BASE="https://127.0.0.1:$PORT"
CA="$DATA/tls/ca.crt"

# account ROLE TIER → its JSON line from demo-accounts.json (card accounts only)
account() {
  jq -ce --arg role "$1" --argjson tier "$2" \
    '[.[] | select(.cert != null and .role == $role and .tier == $tier)][0]' "$DATA/demo-accounts.json"
}
field() { jq -r ".$2" <<<"$1"; }
abs() { case "$1" in /*) echo "$1" ;; *) echo "$DATA/$1" ;; esac; }
DIRECT=$(account admin 1)
TUNNEL=$(account admin 2)
STUNNEL=$(account security null)

# ---- 1. direct mutual TLS ------------------------------------------------------------------------
D_CRT=$(abs "$(field "$DIRECT" cert)") D_KEY=$(abs "$(field "$DIRECT" key)")
D_TOKEN=$(curl -sS --fail-with-body --cacert "$CA" --cert "$D_CRT" --key "$D_KEY" \
  -H 'content-type: application/json' -d "{\"code\":\"$(totp "$(field "$DIRECT" totp_secret)")\"}" \
  "$BASE/api/v1/session/card" | jq -er .token)

# ---- 2. the tunnel: vcard in reader 1, dangjian-agent connect ------------------------------------
"$AGENT_BIN" readers 2>/dev/null | grep -qF "$READER" ||
  { echo "pcscd shows no reader \"$READER\"" >&2; "$AGENT_BIN" readers >&2 || true; exit 1; }
# Other test runs use this reader too: wait (up to 3 minutes) until it is empty.
for _ in $(seq 1 360); do card_present || break; sleep 0.5; done
! card_present || { echo "\"$READER\" stayed busy (another card in it) for 3 minutes" >&2; exit 1; }
T_CRT=$(abs "$(field "$TUNNEL" cert)") T_KEY=$(abs "$(field "$TUNNEL" key)")
"$BIN/vcard" --port "$VPCD_PORT" --state "$WORK/card.json" --init-cert "$T_CRT" --init-key "$T_KEY" \
  </dev/null >"$WORK/vcard.log" 2>&1 &
CARD_PID=$!
for _ in $(seq 1 100); do card_present && break; sleep 0.1; done
card_present || { echo "the virtual card did not appear in \"$READER\"" >&2; cat "$WORK/vcard.log" >&2; exit 1; }
mkfifo "$WORK/agent.in"
exec 7<>"$WORK/agent.in" # kept open: the agent reads the PIN (and later ones) from it
"$AGENT_BIN" connect --server "$BASE" --ca "$CA" --reader "$READER" \
  --code "$(totp "$(field "$TUNNEL" totp_secret)")" <"$WORK/agent.in" >"$WORK/agent.out" 2>"$WORK/agent.err" &
AGENT_PID=$!
echo "$PIN" >&7
wait_for_line "$WORK/agent.out" '^http://127\.0\.0\.1:[0-9]+/\?k=' "$AGENT_PID" 30 ||
  { cat "$WORK/agent.err" >&2; exit 1; }
FIRST_URL=$(grep -m1 -E '^http://127\.0\.0\.1:' "$WORK/agent.out")
T_BASE=${FIRST_URL%%/\?k=*}
T_COOKIE=$(curl -sS -o /dev/null -D - "$FIRST_URL" | tr -d '\r' |
  sed -n 's/^[Ss]et-[Cc]ookie: \(dj_agent=[^;]*\).*/\1/p')
[ -n "$T_COOKIE" ] || { echo "the first URL set no dj_agent cookie" >&2; exit 1; }

# ---- 3. stunnel4 with a software key -------------------------------------------------------------
S_PORT=$(free_port)
S_CRT=$(abs "$(field "$STUNNEL" cert)") S_KEY=$(abs "$(field "$STUNNEL" key)")
cat >"$WORK/stunnel.conf" <<EOF
foreground = yes
pid =
output = $WORK/stunnel.log
debug = warning
[dangjian]
client = yes
accept = 127.0.0.1:$S_PORT
connect = 127.0.0.1:$PORT
cert = $S_CRT
key = $S_KEY
CAfile = $CA
verifyChain = yes
checkIP = 127.0.0.1
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
EOF
stunnel "$WORK/stunnel.conf" >"$WORK/stunnel.out" 2>&1 &
STUNNEL_PID=$!
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$S_PORT") 2>/dev/null && break; sleep 0.1; done
S_TOKEN=$(curl -sS --fail-with-body -H 'content-type: application/json' \
  -d "{\"code\":\"$(totp "$(field "$STUNNEL" totp_secret)")\"}" \
  "http://127.0.0.1:$S_PORT/api/v1/session/card" | jq -er .token) ||
  { cat "$WORK/stunnel.out" "$WORK/stunnel.log" >&2 2>/dev/null; exit 1; }

# ---- measure ---------------------------------------------------------------------------------------
jq -n --arg base "$BASE" --arg ca "$CA" --arg dcrt "$D_CRT" --arg dkey "$D_KEY" --arg dtok "$D_TOKEN" \
  --arg tbase "$T_BASE" --arg tcookie "$T_COOKIE" --argjson tpid "$AGENT_PID" \
  --arg sbase "http://127.0.0.1:$S_PORT" --arg stok "$S_TOKEN" --argjson spid "$STUNNEL_PID" '[
  {name: "direct mutual TLS", base: $base, ca: $ca, cert: $dcrt, key: $dkey,
   headers: {Authorization: ("Bearer " + $dtok)}},
  {name: "tunnel (dangjian-agent)", base: $tbase, headers: {Cookie: $tcookie}, relay_pid: $tpid},
  {name: "stunnel4 (software key)", base: $sbase, headers: {Authorization: ("Bearer " + $stok)},
   relay_pid: $spid}
]' >"$WORK/targets.json"

echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tree: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' + uncommitted changes'); $(stunnel -version 2>&1 | grep -m1 '^stunnel'); $(stunnel -version 2>&1 | grep -m1 'Compiled with\|Running  with' || true)"
echo "accounts: direct = tier-1 admin, tunnel = tier-2 admin (virtual card in \"$READER\"), stunnel = security officer"
"$BIN/examples/tunnel_bench" --targets "$WORK/targets.json" --requests "$REQUESTS" --warmup "$WARMUP" \
  --throughput-requests "$THROUGHPUT" --concurrency "$CONCURRENCY" --rounds "$ROUNDS"
echo
echo "vcard signatures (card handshakes): $(jq -r '.signature_counter // "?"' "$WORK/card.json" 2>/dev/null || echo '?')"
