#!/usr/bin/env bash
# What the test suite talks to, made ready: a PostgreSQL server the tests reach as
# postgres@HOST:PORT over TCP without a password, with a database named `test` (tests/conftest.py
# creates one database per session through it), Chromium for the browser tests, and Prometheus
# (prometheus, promtool) for the tests of the shipped alerting rules.
#
#   bash scripts/test-services.sh          make them ready (fast when they already are)
#   bash scripts/test-services.sh --stop   stop the throw-away PostgreSQL cluster, if one runs
#
# PostgreSQL, in order: the server named by $MLWARDEN_TEST_PG (default 127.0.0.1:5432), started
# with pg_ctlcluster if it is a stopped Debian cluster and we are root; when it cannot be reached
# password-less, a throw-away cluster (initdb, trust on 127.0.0.1 only, fsync off) in
# ${TMPDIR:-/tmp}/mlwarden-test-pg-$UID on a free port, reused by later runs. What the tests should
# use is written to $TEST_SERVICES_ENV (default .venv/test-services.env) as MLWARDEN_TEST_PG and
# MLWARDEN_TEST_CHROMIUM lines: `set -a; . .venv/test-services.env; set +a` before pytest (the
# Makefile's test target does). Nothing in a system cluster's configuration is changed.
# Where something cannot be set up, the exact command to install it is printed, and the exit
# status is 1.
set -euo pipefail

cd "$(dirname "$0")/.."
ENV_FILE=${TEST_SERVICES_ENV:-.venv/test-services.env}
PYTHON=${PYTHON:-.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=python3
DEFAULT_PG=postgresql+psycopg://postgres@127.0.0.1:5432
CLUSTER=${MLWARDEN_TEST_PG_CLUSTER:-${TMPDIR:-/tmp}/mlwarden-test-pg-$(id -u)}

say() { echo "test-services: $*"; }
fail() { echo "test-services: $*" >&2; exit 1; }

as_root=false
[ "$(id -u)" -eq 0 ] && as_root=true
sudo=""
$as_root || sudo="sudo "

# The command that installs a Debian/Fedora/Arch/Homebrew package, for the message.
install_hint() {
    local debian=$1 fedora=$2 arch=$3 brew=$4
    if command -v apt-get >/dev/null 2>&1; then echo "${sudo}apt-get install -y $debian"
    elif command -v dnf >/dev/null 2>&1; then echo "${sudo}dnf install -y $fedora"
    elif command -v pacman >/dev/null 2>&1; then echo "${sudo}pacman -S --needed $arch"
    elif command -v brew >/dev/null 2>&1; then echo "brew install $brew"
    else echo "install $debian with your system's package manager"
    fi
}

# ---------------------------------------------------------------- PostgreSQL

# Is the server at $1 (a SQLAlchemy URL without database) reachable password-less as its user?
# Prints "ok", "down" or "refused: why" (psycopg: the driver the tests use).
pg_probe() {
    PGPASSWORD="" PGCONNECT_TIMEOUT=3 "$PYTHON" - "$1" <<'EOF'
import sys

import psycopg

url = sys.argv[1].replace("postgresql+psycopg://", "postgresql://", 1)
try:
    psycopg.connect(url + "/postgres", connect_timeout=3).close()
except psycopg.OperationalError as exc:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    refused = "Connection refused" in text or "timeout" in text or "could not translate" in text
    print("down" if refused else f"refused: {text}")
else:
    print("ok")
EOF
}

# Create the database `test` on the server at $1 when it is missing.
pg_create_test_database() {
    "$PYTHON" - "$1" <<'EOF'
import sys

import psycopg

url = sys.argv[1].replace("postgresql+psycopg://", "postgresql://", 1)
with psycopg.connect(url + "/postgres", autocommit=True) as conn:
    if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'test'").fetchone() is None:
        conn.execute("CREATE DATABASE test")
        print("test-services: created the database test")
EOF
}

pg_bin() {
    # $1: initdb, pg_ctl ... from PATH or the newest /usr/lib/postgresql/*/bin
    if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -n "$dir" ] && [ -x "$dir/$1" ]; then echo "$dir/$1"; fi
}

# The throw-away cluster runs as us, or as an unprivileged user when we are root (PostgreSQL
# refuses to run as root).
cluster_user=""
if $as_root; then
    if id postgres >/dev/null 2>&1; then cluster_user=postgres; else cluster_user=nobody; fi
fi
as_cluster_user() {
    if [ -n "$cluster_user" ]; then runuser -u "$cluster_user" -- "$@"; else "$@"; fi
}

cluster_port() { cat "$CLUSTER/port" 2>/dev/null || true; }

stop_cluster() {
    local pg_ctl
    pg_ctl=$(pg_bin pg_ctl)
    if [ -n "$pg_ctl" ] && [ -f "$CLUSTER/data/postmaster.pid" ]; then
        as_cluster_user "$pg_ctl" -D "$CLUSTER/data" -m fast -w stop >/dev/null
        say "stopped the throw-away PostgreSQL cluster in $CLUSTER"
    fi
}

start_cluster() {
    local initdb pg_ctl port
    initdb=$(pg_bin initdb)
    pg_ctl=$(pg_bin pg_ctl)
    if [ -z "$initdb" ] || [ -z "$pg_ctl" ]; then
        fail "no PostgreSQL server reachable and no initdb/pg_ctl to start a throw-away one.
  Install the server:  $(install_hint postgresql postgresql-server postgresql postgresql@16)
  or point the tests at a server that lets postgres in over TCP without a password:
    MLWARDEN_TEST_PG=postgresql+psycopg://postgres@HOST:PORT
  or leave the PostgreSQL cases out:  .venv/bin/python -m pytest -m 'not postgres'"
    fi
    port=$(cluster_port)
    if [ ! -f "$CLUSTER/data/PG_VERSION" ]; then
        rm -rf "$CLUSTER"
        mkdir -p "$CLUSTER"
        [ -n "$cluster_user" ] && chown "$cluster_user" "$CLUSTER"
        say "initdb of a throw-away PostgreSQL cluster in $CLUSTER"
        as_cluster_user "$initdb" -D "$CLUSTER/data" -U postgres --auth=trust -E UTF8 \
            --locale=C --no-sync >"$CLUSTER/initdb.log" 2>&1 \
            || fail "initdb failed: see $CLUSTER/initdb.log"
        port=""
    fi
    if [ -z "$port" ]; then
        port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        echo "$port" >"$CLUSTER/port"
    fi
    if ! as_cluster_user "$pg_ctl" -D "$CLUSTER/data" status >/dev/null 2>&1; then
        say "starting it on 127.0.0.1:$port"
        # loopback only, its socket in its own folder, no fsync: nothing in it outlives a test run
        as_cluster_user "$pg_ctl" -D "$CLUSTER/data" -l "$CLUSTER/server.log" -w -t 60 \
            -o "-p $port -c listen_addresses=127.0.0.1 -k $CLUSTER -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
            start >/dev/null || fail "the throw-away cluster did not start: see $CLUSTER/server.log"
    fi
    PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port"
}

if [ "${1:-}" = "--stop" ]; then
    stop_cluster
    exit 0
fi

mkdir -p "$(dirname "$ENV_FILE")"
PG_URL=${MLWARDEN_TEST_PG:-$DEFAULT_PG}
state=$(pg_probe "$PG_URL")
if [ "$state" = "down" ] && [ "$PG_URL" = "$DEFAULT_PG" ] && $as_root \
        && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ] \
        && [ -n "$(ls /etc/postgresql 2>/dev/null)" ]; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    say "PostgreSQL is down: starting the Debian cluster $version/main"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do
        state=$(pg_probe "$PG_URL")
        [ "$state" = "down" ] || break
        sleep 1
    done
fi
if [ "$state" != "ok" ]; then
    if [ "$state" = "down" ]; then
        say "no PostgreSQL at ${PG_URL#*@}"
    else
        user=${PG_URL#*://}
        user=${user%%@*}
        say "PostgreSQL at ${PG_URL#*@} does not let $user in without a password (${state#refused: });"
        say "  its configuration is left alone (to use it instead, add to its pg_hba.conf:"
        say "  'host all $user 127.0.0.1/32 trust' and reload it)"
    fi
    # a cluster left by an earlier run is reused when it still answers
    port=$(cluster_port)
    if [ -n "$port" ] && [ "$(pg_probe "postgresql+psycopg://postgres@127.0.0.1:$port")" = "ok" ]; then
        PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port"
    else
        start_cluster
    fi
    state=$(pg_probe "$PG_URL")
    [ "$state" = "ok" ] || fail "the throw-away cluster does not answer: $state (see $CLUSTER/server.log)"
fi
pg_create_test_database "$PG_URL"
say "PostgreSQL: ${PG_URL#*@} (database test)"

# ---------------------------------------------------------------- Chromium

CHROMIUM=${MLWARDEN_TEST_CHROMIUM:-}
if [ -z "$CHROMIUM" ]; then
    for candidate in /usr/bin/chromium chromium chromium-browser google-chrome-stable google-chrome; do
        if command -v "$candidate" >/dev/null 2>&1; then
            CHROMIUM=$(command -v "$candidate")
            break
        fi
    done
fi
if [ -z "$CHROMIUM" ] && $as_root && command -v apt-get >/dev/null 2>&1; then
    say "Chromium is missing: installing Debian's chromium package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq chromium >/dev/null
    CHROMIUM=/usr/bin/chromium
fi
if [ -z "$CHROMIUM" ] || ! "$CHROMIUM" --version >/dev/null 2>&1; then
    fail "Chromium is missing (the browser tests drive it headless). Install it:
  $(install_hint chromium chromium chromium "--cask chromium")
  or name one: MLWARDEN_TEST_CHROMIUM=/path/to/chrome
  or leave the browser cases out:  .venv/bin/python -m pytest -m 'not browser'"
fi
say "Chromium: $CHROMIUM ($("$CHROMIUM" --version 2>/dev/null | head -n 1))"

# ---------------------------------------------------------------- Prometheus

# the tests of deploy/prometheus/rules.yml run promtool and a real Prometheus from PATH
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    if $as_root && command -v apt-get >/dev/null 2>&1; then
        say "Prometheus is missing: installing Debian's prometheus package"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq prometheus >/dev/null
    fi
fi
if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
    fail "Prometheus is missing (the tests of the shipped alerting rules run it). Install it:
  $(install_hint prometheus golang-github-prometheus prometheus prometheus)
  or leave those cases out:  .venv/bin/python -m pytest -m 'not prometheus'"
fi
say "Prometheus: $(command -v prometheus) ($(prometheus --version 2>&1 | head -n 1))"

printf 'MLWARDEN_TEST_PG=%s\nMLWARDEN_TEST_CHROMIUM=%s\n' "$PG_URL" "$CHROMIUM" >"$ENV_FILE"
