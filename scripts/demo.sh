#!/usr/bin/env bash
# The demo behind `make run`: a coordinator on a temporary SQLite file, three offline agents (one
# per instance type) and the 90-entity example batch, then the summary and where the dossiers are.
# Every process started here is stopped on exit, whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-bin}
DOSSIERS=${DOSSIERS:-dossiers}
DELAY=${DEMO_DELAY:-150ms-600ms}
work=$(mktemp -d "${TMPDIR:-/tmp}/enrich-demo.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Free loopback ports, so the demo never collides with a coordinator already running.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
addr="127.0.0.1:$(port)"
http="127.0.0.1:$(port)"
export ENRICH_ADDR=$addr

echo "==> coordinator on $addr (store: $work/enrich.db, dossiers: $DOSSIERS/)"
"$BIN/enrich-coordinator" --listen "$addr" --http "$http" --store "sqlite:$work/enrich.db" --dossiers "$DOSSIERS" \
  --log-level warn 2>"$work/coordinator.log" &
pids+=($!)

for t in entities persons leagues; do
  "$BIN/enrich-agent" --coordinator "$addr" --id "demo-$t" --types "$t" --slots 4 --offline-delay "$DELAY" \
    --spool "$work/spool-$t" --log-level warn 2>"$work/agent-$t.log" &
  pids+=($!)
done

echo "==> waiting for 3 agents"
for _ in $(seq 1 150); do
  n=$("$BIN/enrichctl" agents -o json 2>/dev/null | grep -c '"agentId"' || true)
  [ "$n" = 3 ] && break
  sleep 0.2
done
"$BIN/enrichctl" agents

echo "==> launching examples/entities.jsonl"
set +e
"$BIN/enrichctl" launch --from examples/entities.jsonl --wait
code=$?
set -e
echo
"$BIN/enrichctl" status
batch_dir=$("$BIN/enrichctl" status -o json | sed -n 's/.*"outputDir": *"\([^"]*\)".*/\1/p' | head -1)
echo
echo "==> dossiers and report in ${batch_dir:-$DOSSIERS/}"
[ -n "$batch_dir" ] && ls "$batch_dir"
if [ "$code" != 0 ]; then
  echo "demo batch did not complete cleanly (exit $code); logs:" >&2
  tail -n 20 "$work"/*.log >&2
fi
exit "$code"
