#!/usr/bin/env bash
# `make demo`: the main job on the embedded default.
#   1. bosk server on config/boskos-resources.yaml (memory storage, free port)
#   2. a mason-built cluster: two projects parked under it, listed in its
#      leasedResources (so the tombstone policy has something to give back)
#   3. the state of every type, then `bosk janitor --once config/policies/*.lua`,
#      then the state again
# Needs no terminal and no stdin (CI runs it).
set -eu
cd "$(dirname "$0")/.."
BOSK=${BOSK:-build/bosk}
CONFIG=config/boskos-resources.yaml
TYPES="gce-project aws-account gke-cluster ci-runner"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bosk-demo.XXXXXX")
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
echo "== bosk server --config $CONFIG --listen 127.0.0.1:$port"
"$BOSK" server --config "$CONFIG" --listen "127.0.0.1:$port" >"$tmp/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fs "$url/" >/dev/null 2>&1 && break
  sleep 0.05
done
curl -fs "$url/" >/dev/null || { echo "demo: server did not start"; cat "$tmp/server.log"; exit 1; }

post() { curl -fsS -X POST "$url$1" ${2:+--data-binary "$2"} >/dev/null; }
# What mason does when it builds bosk-demo-cluster-01 from two projects.
post "/acquirebystate?state=dirty&dest=leased&owner=mason&names=bosk-demo-project-07,bosk-demo-project-08"
post "/release?name=bosk-demo-project-07&dest=bosk-demo-cluster-01&owner=mason"
post "/release?name=bosk-demo-project-08&dest=bosk-demo-cluster-01&owner=mason"
post "/acquirebystate?state=toBeDeleted&dest=leased&owner=mason&names=bosk-demo-cluster-01"
post "/update?name=bosk-demo-cluster-01&owner=mason&state=leased" \
     '{"leasedResources":"- bosk-demo-project-07\n- bosk-demo-project-08\n"}'
post "/release?name=bosk-demo-cluster-01&dest=toBeDeleted&owner=mason"
# A CI job that leased a runner and vanished (the reaper's business; it does
# not run with --once, so this one stays busy).
post "/acquire?type=ci-runner&state=free&dest=busy&owner=ci-job-1234"

show_states() {
  for t in $TYPES; do
    curl -fs "$url/resources?type=$t" | python3 -c '
import json, sys
rows = json.load(sys.stdin)
counts = {}
for r in rows:
    key = r["state"] + ("" if not r["owner"] else " (" + r["owner"] + ")")
    counts[key] = counts.get(key, 0) + 1
print("  %-12s %s" % (sys.argv[1], ", ".join("%s=%d" % kv for kv in sorted(counts.items()))))' "$t"
  done
}

echo "== before"
show_states
echo "== bosk janitor --once --pool-size 8 config/policies/*.lua"
set +e
GCP_JANITOR_DELAY=0.3 "$BOSK" janitor --once --pool-size 8 --boskos-url "$url" config/policies/*.lua \
  >"$tmp/janitor.out" 2>"$tmp/janitor.log"
status=$?
set -e
grep -E 'msg=(cleaned|"cleaning failed"|"released leased resource")' "$tmp/janitor.log" |
  sed -e 's/^[^ ]* level=[a-z]* /  /'
sed 's/^/  /' "$tmp/janitor.out"
echo "== janitor exit status: $status"
echo "== after"
show_states
echo "== stopping the server"
