#!/usr/bin/env bash
# Full and resumed TLS 1.3 handshakes per second with an ECDSA P-256 client certificate:
# dangjian-server against nginx (Debian's package) configured for the same mutual TLS with the
# same certificates, on this machine, in one run, with the same load generator for both
# (`openssl s_time`, several instances at once).
#
#   bash scripts/bench/tls-handshakes.sh
#
# Knobs (environment): DURATION seconds per measurement (10), CLIENTS concurrent s_time
# instances (4), ROUNDS alternations of the two servers (3).
#
# Each measurement: CLIENTS × `openssl s_time -connect 127.0.0.1:PORT -tls1_3 -cert CARD.crt
# -key CARD.key -CAfile ca.crt -www PATH -new|-reuse -time DURATION`, started together;
# handshakes per second = the connections they report, summed, over the wall-clock time of the
# batch. Every connection is a TCP connect, a TLS 1.3 handshake (full: ECDHE, server ECDSA
# P-256 signature, client certificate and CertificateVerify checked against the platform CA and
# its CRL; resumed: PSK-DHE from a session ticket), one HTTP/1.0 GET of a tiny answer and a
# close. Server CPU per handshake comes from the server processes' utime+stime in /proc.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/lib.sh

DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-4}
ROUNDS=${ROUNDS:-3}

ensure_packages openssl nginx jq curl
[ -n "${NO_BUILD:-}" ] || cargo build --release -p dangjian-server

WORK=$(mktemp -d)
OURS_PID=""
NGINX_CONF="$WORK/nginx/nginx.conf"
cleanup() {
  if [ -n "$OURS_PID" ]; then kill "$OURS_PID" 2>/dev/null || true; wait "$OURS_PID" 2>/dev/null || true; fi
  if [ -f "$WORK/nginx/nginx.pid" ]; then
    kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -f "$WORK/nginx/nginx.pid" ] || break; sleep 0.1; done
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# ---- our server: the demo (1,000 members) ----------------------------------------------------
OURS_PORT=$(free_port)
DATA="$WORK/demo"
DANGJIAN_LOG=warn target/release/dangjian-server demo --data "$DATA" --members 1000 \
  --listen "127.0.0.1:$OURS_PORT" >"$WORK/ours.log" 2>&1 &
OURS_PID=$!
for _ in $(seq 1 600); do
  grep -q "^listening on " "$WORK/ours.log" 2>/dev/null && break
  kill -0 "$OURS_PID" 2>/dev/null || { cat "$WORK/ours.log"; exit 1; }
  sleep 0.1
done
grep -q "^listening on " "$WORK/ours.log" || { echo "dangjian-server did not start" >&2; exit 1; }

CA="$DATA/tls/ca.crt"
SERVER_CRT="$DATA/tls/server.crt" # the server certificate followed by the platform CA
SERVER_KEY="$DATA/tls/server.key"
CLIENT_CA="$DATA/ca/ca.crt"
CRL="$DATA/ca/crl.pem"
ACCOUNT=$(jq -c '[.[] | select(.cert != null)][0]' "$DATA/demo-accounts.json")
CARD_CRT=$(jq -r .cert <<<"$ACCOUNT")
CARD_KEY=$(jq -r .key <<<"$ACCOUNT")
case "$CARD_CRT" in /*) ;; *) CARD_CRT="$DATA/$CARD_CRT" CARD_KEY="$DATA/$CARD_KEY" ;; esac

# ---- nginx: same certificates, TLS 1.3 only, client certificate optional -------------------
NGINX_PORT=$(free_port)
mkdir -p "$WORK/nginx/tmp"
{
  [ "$(id -u)" -eq 0 ] && echo "user nobody nogroup;"
  cat <<EOF
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl;
    ssl_certificate $SERVER_CRT;
    ssl_certificate_key $SERVER_KEY;
    ssl_protocols TLSv1.3;
    ssl_client_certificate $CLIENT_CA;
    ssl_crl $CRL;
    ssl_verify_client optional;
    ssl_session_cache shared:SSL:10m;
    ssl_session_tickets on;
    location / {
      default_type text/plain;
      return 200 "ok \$ssl_client_verify\n";
    }
  }
}
EOF
} >"$NGINX_CONF"
nginx -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$NGINX_CONF"
for _ in $(seq 1 50); do [ -s "$WORK/nginx/nginx.pid" ] && break; sleep 0.1; done
NGINX_PID=$(cat "$WORK/nginx/nginx.pid")

# The path each server answers with a few bytes and no database work.
OURS_PATH=/api/v1/health
NGINX_PATH=/

# ---- what is negotiated: the same for both, checked rather than assumed ---------------------
echo
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
echo "client:  $(openssl version); nginx: $(nginx -v 2>&1 | cut -d/ -f2)"
echo "server certificate: $(openssl x509 -in "$SERVER_CRT" -noout -text | grep -m1 'ASN1 OID' | sed 's/^ *//'); client certificate: $(openssl x509 -in "$CARD_CRT" -noout -text | grep -m1 'ASN1 OID' | sed 's/^ *//')"
for target in "ours $OURS_PORT $OURS_PATH" "nginx $NGINX_PORT $NGINX_PATH"; do
  set -- $target
  out=$(openssl s_client -connect "127.0.0.1:$2" -tls1_3 -cert "$CARD_CRT" -key "$CARD_KEY" \
      -CAfile "$CA" -verify_return_error 2>&1 </dev/null) || { echo "$out"; exit 1; }
  grep -q "Requested Signature Algorithms" <<<"$out" ||
    { echo "$1 did not request a client certificate" >&2; exit 1; }
  printf '%-6s %s, %s, %s, %s, client CA names: %s; answer: %s\n' "$1" \
    "$(grep -m1 -o 'New, TLSv1.3, Cipher is [A-Z0-9_]*' <<<"$out" | sed 's/New, //')" \
    "$(grep -m1 'Server Temp Key' <<<"$out" | sed 's/^Server Temp Key: /key exchange /')" \
    "$(grep -m1 'Peer signature type' <<<"$out" | sed 's/^Peer signature type: /server signs with /')" \
    "$(grep -m1 'Verify return code' <<<"$out" | sed 's/^ *//')" \
    "$(grep -A1 'Acceptable client certificate CA names' <<<"$out" | tail -1)" \
    "$(curl -s -w ' HTTP %{http_code}' --cacert "$CA" --cert "$CARD_CRT" --key "$CARD_KEY" "https://127.0.0.1:$2$3" | tr -d '\n' | sed -E 's/^(.{40}).*( HTTP [0-9]+)$/\1…\2/')"
done

# CPU seconds (utime + stime, in clock ticks) of a process and its children (nginx workers).
cpu_ticks() {
  local total=0 pid
  for pid in "$1" $(pgrep -P "$1" || true); do
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}')))
  done
  echo "$total"
}

# measure NAME PORT PATH PID new|reuse → "rate cpu_us_per_handshake resumed_share"
measure() {
  local name=$1 port=$2 path=$3 pid=$4 mode=$5 dir="$WORK/st-$1-$5" pids=() i
  rm -rf "$dir" && mkdir -p "$dir"
  local cpu0 t0 t1 cpu1
  cpu0=$(cpu_ticks "$pid")
  t0=$(date +%s.%N)
  for i in $(seq 1 "$CLIENTS"); do
    openssl s_time -connect "127.0.0.1:$port" -tls1_3 -cert "$CARD_CRT" -key "$CARD_KEY" \
      -CAfile "$CA" -www "$path" "-$mode" -time "$DURATION" >"$dir/$i" 2>&1 &
    pids+=($!)
  done
  wait "${pids[@]}"
  t1=$(date +%s.%N)
  cpu1=$(cpu_ticks "$pid")
  local conns resumed fresh bytes
  conns=$(cat "$dir"/* | awk '/connections in [0-9]+ real seconds/ {s += $1} END {print s + 0}')
  bytes=$(cat "$dir"/* | awk '/connections in [0-9]+ real seconds/ {b = $(NF - 4)} END {print b + 0}')
  resumed=$(cat "$dir"/* | grep -E '^[*rt123]+$' | tr -cd 'r' | wc -c)
  fresh=$(cat "$dir"/* | grep -E '^[*rt123]+$' | tr -cd '*t123' | wc -c)
  awk -v c="$conns" -v t0="$t0" -v t1="$t1" -v cpu=$((cpu1 - cpu0)) -v hz="$(getconf CLK_TCK)" \
    -v r="$resumed" -v f="$fresh" -v b="$bytes" \
    'BEGIN { printf "%.0f %.0f %.0f %d\n", c / (t1 - t0), (c ? cpu / hz / c * 1e6 : 0), ((r + f) ? 100 * r / (r + f) : 0), b }'
}

echo
echo "$CLIENTS concurrent openssl s_time clients, ${DURATION} s per measurement, $ROUNDS rounds"
declare -A SUM CPU SHARE
for round in $(seq 1 "$ROUNDS"); do
  for mode in new reuse; do
    for target in "ours $OURS_PORT $OURS_PATH $OURS_PID" "nginx $NGINX_PORT $NGINX_PATH $NGINX_PID"; do
      set -- $target
      read -r rate cpu share bytes < <(measure "$1" "$2" "$3" "$4" "$mode")
      printf 'round %d  %-5s %-6s %6d handshakes/s  %5d us server CPU each  %3d%% resumed  %4d bytes read each\n' \
        "$round" "$mode" "$1" "$rate" "$cpu" "$share" "$bytes"
      SUM[$1-$mode]=$(( ${SUM[$1-$mode]:-0} + rate ))
      CPU[$1-$mode]=$(( ${CPU[$1-$mode]:-0} + cpu ))
      SHARE[$1-$mode]=$share
    done
  done
done

echo
printf '| %-36s | %14s | %14s | %12s |\n' "handshake (mean of $ROUNDS runs)" "dangjian /s" "nginx /s" "ours / nginx"
printf '|%s|%s|%s|%s|\n' "--------------------------------------" "---------------:" "---------------:" "-------------:"
for mode in new reuse; do
  label="full (client certificate)"
  [ "$mode" = reuse ] && label="resumed (session ticket)"
  o=$(( SUM[ours-$mode] / ROUNDS )); n=$(( SUM[nginx-$mode] / ROUNDS ))
  printf '| %-36s | %14d | %14d | %12s |\n' "$label" "$o" "$n" "$(awk -v o="$o" -v n="$n" 'BEGIN { printf "%.2f x", o / n }')"
done
for mode in new reuse; do
  label="server CPU per full handshake, us"
  [ "$mode" = reuse ] && label="server CPU per resumed handshake, us"
  o=$(( CPU[ours-$mode] / ROUNDS )); n=$(( CPU[nginx-$mode] / ROUNDS ))
  printf '| %-36s | %14d | %14d | %12s |\n' "$label" "$o" "$n" "$(awk -v o="$o" -v n="$n" 'BEGIN { printf "%.2f x", o / n }')"
done
echo
echo "resumed share in the -reuse runs (last round): ours ${SHARE[ours-reuse]}%, nginx ${SHARE[nginx-reuse]}%"
