#!/usr/bin/env bash
# Shared helpers for the README's commands: idempotent installs and service starts.

# Installs the Debian packages named, when any is missing (apt-get update once first).
ensure_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    if [ -z "${DANGJIAN_APT_UPDATED:-}" ]; then
      $sudo apt-get update -qq
      DANGJIAN_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# Starts the local PostgreSQL cluster when it is not running and makes the test role.
# Exports DANGJIAN_TEST_PG.
ensure_postgres() {
  ensure_packages postgresql
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  local version
  version=$(ls /etc/postgresql | sort -n | tail -1)
  if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
    $sudo pg_ctlcluster "$version" main start
  fi
  for _ in $(seq 1 30); do
    $sudo su postgres -c "psql -qtAc 'select 1'" >/dev/null 2>&1 && break
    sleep 1
  done
  $sudo su postgres -c "psql -qtAc \"select 1 from pg_roles where rolname='dangjian'\"" | grep -q 1 ||
    $sudo su postgres -c "psql -qc \"create role dangjian login createdb password 'dangjian'\""
  export DANGJIAN_TEST_PG="postgres://dangjian:dangjian@127.0.0.1:5432/postgres"
}

# Starts pcscd (the PC/SC daemon, with vsmartcard's vpcd readers "Virtual PCD 00 00" on TCP
# 35963 and "Virtual PCD 00 01" on 35964) when it is not running. No systemd here: plain
# `pcscd` daemonises. Never `--auto-exit`: it would close the vpcd ports under a connected card.
ensure_pcscd() {
  ensure_packages pcscd libpcsclite-dev vsmartcard-vpcd opensc yubico-piv-tool pcsc-tools
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  # A live pcscd (not a zombie) with its socket; otherwise clean up and start one.
  if ! { ps -C pcscd -o stat= 2>/dev/null | grep -qv '^Z' && [ -S /run/pcscd/pcscd.comm ]; }; then
    $sudo pkill -x pcscd 2>/dev/null || true
    $sudo rm -f /run/pcscd/pcscd.pid /run/pcscd/pcscd.comm
    $sudo pcscd
  fi
  for _ in $(seq 1 50); do
    [ -S /run/pcscd/pcscd.comm ] && return 0
    sleep 0.1
  done
  echo "pcscd did not start" >&2
  return 1
}

# The API fuzzer and the client generator, pinned: schemathesis (`st`) and
# datamodel-code-generator with pydantic, in a Python virtual environment at target/st-venv
# (made, or remade, only when missing or holding other versions). Exports DANGJIAN_SCHEMATHESIS,
# the path of its `st`, for the fuzz suite (tests/tests/fuzz.rs).
DANGJIAN_PY_REQUIREMENTS="schemathesis==4.32.5 datamodel-code-generator==0.89.0 pydantic==2.14.4"
ensure_st_venv() {
  ensure_packages python3 python3-venv
  local venv
  venv="$(pwd)/target/st-venv"
  if [ "$(cat "$venv/.dangjian-requirements" 2>/dev/null)" != "$DANGJIAN_PY_REQUIREMENTS" ] ||
    ! "$venv/bin/st" --version >/dev/null 2>&1; then
    echo "installing into $venv: $DANGJIAN_PY_REQUIREMENTS"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv"
    # shellcheck disable=SC2086 # one word per requirement
    "$venv/bin/pip" install --quiet --disable-pip-version-check $DANGJIAN_PY_REQUIREMENTS
    echo "$DANGJIAN_PY_REQUIREMENTS" >"$venv/.dangjian-requirements"
  fi
  export DANGJIAN_SCHEMATHESIS="$venv/bin/st"
}

# A loopback port nobody listens on.
free_port() {
  local p
  while :; do
    p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return
    fi
  done
}
