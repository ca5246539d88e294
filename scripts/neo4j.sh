#!/usr/bin/env bash
# Starts and stops a throwaway Neo4j 5 server on loopback for tests and local development: the
# in-process server of org.neo4j.test:neo4j-harness (scripts/neo4j/), run on the machine's Java 17.
#
#   scripts/neo4j.sh build     compile the server; downloads its Maven dependencies once (~/.m2)
#   scripts/neo4j.sh start     start it and print shell exports: eval "$(scripts/neo4j.sh start)"
#   scripts/neo4j.sh stop      stop it (no error when it is not running)
#   scripts/neo4j.sh uri       print the bolt URI of the running server
#
# Environment: NEO4J_STATE_DIR (pid, log and URI files; default .run/neo4j in the repository),
# NEO4J_PORT (default 0: a free port), NEO4J_DATA_DIR (keep the store there across restarts; needs
# NEO4J_PORT), NEO4J_START_TIMEOUT (seconds, default 240), NEO4J_HEAP (default 768m).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
proj="$root/scripts/neo4j"
state="${NEO4J_STATE_DIR:-$root/.run/neo4j}"
# The fixed development credentials: loopback only, never a real server's.
user=neo4j
password=enrich-dev-password

build() {
	local cp="$proj/target/classpath.txt" cls="$proj/target/classes/enrich/neo4j/Main.class"
	if [[ -f "$cp" && -f "$cls" && "$cls" -nt "$proj/src/main/java/enrich/neo4j/Main.java" && "$cp" -nt "$proj/pom.xml" ]]; then
		return 0
	fi
	# Offline first: once ~/.m2 holds the dependencies, a build needs no network.
	if ! (cd "$proj" && mvn -q -o -B compile >/dev/null 2>&1); then
		echo "neo4j.sh: resolving Neo4j harness dependencies (first run)" >&2
		(cd "$proj" && mvn -q -B compile >&2)
	fi
}

running() {
	[[ -f "$state/pid" ]] && kill -0 "$(cat "$state/pid")" 2>/dev/null
}

start() {
	build
	mkdir -p "$state"
	if running && [[ -s "$state/uri" ]]; then
		exports
		return 0
	fi
	# stdout too: the new server truncates it only once it runs, and a stale URI must not be read.
	rm -f "$state/uri" "$state/pid" "$state/stdout"
	local args=(--port "${NEO4J_PORT:-0}" --password "$password")
	if [[ -n "${NEO4J_DATA_DIR:-}" ]]; then
		args+=(--dir "$NEO4J_DATA_DIR")
	fi
	local started=$SECONDS
	# setsid: the server must outlive this script's process group (make runs each line in one).
	setsid java "-Xmx${NEO4J_HEAP:-768m}" -XX:+UseSerialGC \
		-cp "$proj/target/classes:$(cat "$proj/target/classpath.txt")" enrich.neo4j.Main "${args[@]}" \
		>"$state/stdout" 2>"$state/log" </dev/null &
	echo $! >"$state/pid"
	local deadline=$((SECONDS + ${NEO4J_START_TIMEOUT:-240}))
	while ! grep -q '^bolt://' "$state/stdout" 2>/dev/null; do
		if ! running; then
			echo "neo4j.sh: the server exited during start-up; last lines of $state/log:" >&2
			tail -n 30 "$state/log" >&2
			exit 1
		fi
		if ((SECONDS > deadline)); then
			echo "neo4j.sh: no bolt URI after ${NEO4J_START_TIMEOUT:-240}s; stopping it" >&2
			stop
			exit 1
		fi
		sleep 0.5
	done
	grep -m1 '^bolt://' "$state/stdout" >"$state/uri"
	echo "neo4j.sh: Neo4j up at $(cat "$state/uri") in $((SECONDS - started))s" >&2
	exports
}

exports() {
	printf 'export NEO4J_URI=%q NEO4J_USER=%q NEO4J_PASSWORD=%q\n' "$(cat "$state/uri")" "$user" "$password"
}

stop() {
	if [[ ! -f "$state/pid" ]]; then
		return 0
	fi
	local pid
	pid="$(cat "$state/pid")"
	if kill -TERM "$pid" 2>/dev/null; then
		for _ in $(seq 1 60); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.5
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "neo4j.sh: server $pid ignored SIGTERM for 30s; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$state/pid" "$state/uri"
}

case "${1:-}" in
build) build ;;
start) start ;;
stop) stop ;;
uri) cat "$state/uri" ;;
*)
	echo "usage: $0 build|start|stop|uri" >&2
	exit 2
	;;
esac
