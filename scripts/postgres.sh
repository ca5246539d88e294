#!/usr/bin/env bash
# Starts and stops a throwaway PostgreSQL cluster on loopback for tests, benchmarks and local
# development: initdb into a temporary folder, pg_ctl on a free port, trust authentication on
# 127.0.0.1 only. Uses the machine's PostgreSQL binaries (Debian: apt-get install postgresql).
#
#   scripts/postgres.sh start     start it and print shell exports: eval "$(scripts/postgres.sh start)"
#   scripts/postgres.sh stop      stop it and delete its data (no error when it is not running)
#   scripts/postgres.sh url       print the URL of the running cluster's test database
#
# It exports ENRICH_TEST_POSTGRES=postgres://...; the PostgreSQL tests read it.
#
# Environment: POSTGRES_STATE_DIR (pid, port and URL files; default .run/postgres in the
# repository), POSTGRES_PORT (default: a free port), POSTGRES_DURABLE=1 keeps fsync and
# synchronous commits on (benchmarks; tests run without them, a throwaway cluster needs no crash
# safety), POSTGRES_USER (the system user that runs the server when started as root; default
# postgres, created by the Debian package).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
state="${POSTGRES_STATE_DIR:-$root/.run/postgres}"
db=enrich_test

bindir() {
	local d
	# Debian keeps the server binaries off PATH, one folder per major version: take the newest.
	d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)"
	if [[ -z "$d" ]] && command -v pg_ctl >/dev/null 2>&1; then
		d="$(dirname "$(command -v pg_ctl)")"
	fi
	if [[ -z "$d" || ! -x "$d/initdb" || ! -x "$d/psql" ]]; then
		echo "postgres.sh: no PostgreSQL binaries found (apt-get install postgresql)" >&2
		exit 1
	fi
	echo "$d"
}

# as runs a command as the server's user: PostgreSQL refuses to run as root.
as() {
	if [[ $EUID -eq 0 ]]; then
		runuser -u "${POSTGRES_USER:-postgres}" -- "$@"
	else
		"$@"
	fi
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

running() {
	[[ -f "$state/datadir" ]] && as "$(bindir)/pg_ctl" -D "$(cat "$state/datadir")/db" status >/dev/null 2>&1
}

exports() {
	printf 'export ENRICH_TEST_POSTGRES=%q\n' "$(cat "$state/url")"
}

start() {
	mkdir -p "$state"
	if running && [[ -s "$state/url" ]]; then
		exports
		return 0
	fi
	local bin data port started=$SECONDS
	bin="$(bindir)"
	if [[ $EUID -eq 0 ]] && ! id "${POSTGRES_USER:-postgres}" >/dev/null 2>&1; then
		echo "postgres.sh: user ${POSTGRES_USER:-postgres} does not exist (install the postgresql package or set POSTGRES_USER)" >&2
		exit 1
	fi
	data="$(mktemp -d "${TMPDIR:-/tmp}/enrich-pg-XXXXXX")"
	if [[ $EUID -eq 0 ]]; then
		chown "${POSTGRES_USER:-postgres}" "$data"
	fi
	echo "$data" >"$state/datadir"
	port="${POSTGRES_PORT:-$(free_port)}"
	as "$bin/initdb" -D "$data/db" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$state/initdb.log" 2>&1 || {
		echo "postgres.sh: initdb failed:" >&2
		cat "$state/initdb.log" >&2
		exit 1
	}
	local opts="-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$data -c max_connections=300"
	if [[ "${POSTGRES_DURABLE:-}" != 1 ]]; then
		opts+=" -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
	fi
	# setsid: the server must outlive this script's process group (make runs each line in one).
	if ! as setsid "$bin/pg_ctl" -D "$data/db" -l "$data/server.log" -o "$opts" -w -t 60 start >"$state/pg_ctl.log" 2>&1; then
		echo "postgres.sh: the server did not start; last lines of its log:" >&2
		tail -n 30 "$data/server.log" >&2 || true
		exit 1
	fi
	as "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qAtc "CREATE DATABASE $db" >/dev/null
	echo "postgres://postgres@127.0.0.1:$port/$db?sslmode=disable" >"$state/url"
	echo "postgres.sh: PostgreSQL $("$bin/postgres" --version | awk '{print $3}') up at 127.0.0.1:$port in $((SECONDS - started))s" >&2
	exports
}

stop() {
	if [[ ! -f "$state/datadir" ]]; then
		return 0
	fi
	local data
	data="$(cat "$state/datadir")"
	if [[ -d "$data/db" ]]; then
		as "$(bindir)/pg_ctl" -D "$data/db" -m fast -w -t 30 stop >/dev/null 2>&1 || true
	fi
	rm -rf "$data"
	rm -f "$state/datadir" "$state/url"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
url) cat "$state/url" ;;
*)
	echo "usage: $0 start|stop|url" >&2
	exit 2
	;;
esac
