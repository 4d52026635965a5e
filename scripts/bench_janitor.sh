#!/usr/bin/env bash
# Janitor benchmarks against the bundled server (memory storage):
#   1. no-op cleanings of 2,000 dirty resources: resources per second dirty -> free
#   2. 200 cleanings of janitor.exec{"sleep", "0.2"} at concurrency 50: total
#      time against the ideal ceil(200/50) x 0.2 s = 0.8 s
#   3. supervisor resident memory with 200 cleanings in flight
# Runnable alone: BOSK=build/bosk scripts/bench_janitor.sh
set -eu
cd "$(dirname "$0")/.."
BOSK=${BOSK:-build/bosk}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/bosk-bench-janitor.XXXXXX")
server_pid=""
janitor_pid=""
cleanup() {
  [ -n "$janitor_pid" ] && kill -KILL "$janitor_pid" 2>/dev/null
  [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }

# start_server TYPE COUNT: a fresh server holding COUNT dirty resources of TYPE.
start_server() {
  local rtype=$1 count=$2
  [ -n "$server_pid" ] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
  {
    echo "resources:"
    echo "- type: $rtype"
    echo "  state: dirty"
    echo "  names:"
    for i in $(seq -w 1 "$count"); do echo "  - $rtype-$i"; done
  } >"$tmp/config.yaml"
  port=$(free_port)
  url="http://127.0.0.1:$port"
  "$BOSK" server --config "$tmp/config.yaml" --listen "127.0.0.1:$port" >"$tmp/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 200); do
    curl -fs "$url/" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "bench_janitor: server did not start"; cat "$tmp/server.log"; exit 1
}

count_state() { # TYPE STATE
  curl -fs "$url/metric?type=$1" | python3 -c "import json,sys; print(json.load(sys.stdin)['current'].get('$2', 0))"
}

# 1. no-op throughput
start_server noop 2000
cat >"$tmp/noop.lua" <<'EOF'
janitor.policy{ type = "noop", clean = function() return true end }
EOF
t0=$(now)
"$BOSK" janitor --once --pool-size 20 --boskos-url "$url" "$tmp/noop.lua" >"$tmp/noop.out" 2>"$tmp/noop.err"
t1=$(now)
freed=$(count_state noop free)
rate=$(python3 -c "print(f'{$freed/($t1-$t0):.0f}')")
secs=$(python3 -c "print(f'{$t1-$t0:.2f}')")
echo "no-op cleanings: $freed of 2000 dirty -> free in ${secs} s = $rate resources/s (target >= 1000/s)"

# 2. 200 x sleep 0.2 at concurrency 50
start_server sleepy 200
cat >"$tmp/sleep.lua" <<'EOF'
janitor.policy{ type = "sleepy", concurrency = 50, clean = function()
  return (janitor.exec{ "sleep", "0.2" })
end }
EOF
t0=$(now)
"$BOSK" janitor --once --pool-size 50 --boskos-url "$url" "$tmp/sleep.lua" >"$tmp/sleep.out" 2>"$tmp/sleep.err"
t1=$(now)
freed=$(count_state sleepy free)
python3 -c "
t = $t1 - $t0
print(f'exec sleep 0.2 x 200 at concurrency 50: {$freed} freed in {t:.3f} s; ideal 0.800 s; {(t/0.8-1)*100:+.1f}% (target within 10%)')"
# The same 200 sleeps with no janitor at all, for scale on this machine.
t0=$(now)
seq 200 | xargs -P 50 -I{} sleep 0.2
t1=$(now)
python3 -c "
t = $t1 - $t0
print(f'  reference, xargs -P 50 sleep 0.2 x 200 (no janitor, no server): {t:.3f} s; {(t/0.8-1)*100:+.1f}%')"

# 3. RSS with 200 cleanings in flight
start_server held 200
cat >"$tmp/held.lua" <<'EOF'
janitor.policy{ type = "held", concurrency = 200, clean = function()
  return (janitor.exec{ "sleep", "5" })
end }
EOF
"$BOSK" janitor --pool-size 200 --grace 0s --boskos-url "$url" "$tmp/held.lua" >"$tmp/held.out" 2>&1 &
janitor_pid=$!
for _ in $(seq 1 200); do
  [ "$(count_state held cleaning)" = 200 ] && break
  sleep 0.05
done
sleep 0.3
# workers are children of the worker factory, the janitor's only child
workers=0
for z in $(pgrep -P "$janitor_pid"); do workers=$((workers + $(pgrep -P "$z" | wc -l))); done
rss=$(awk '/VmRSS/ {print $2}' "/proc/$janitor_pid/status")
echo "supervisor RSS with $(count_state held cleaning) leases held, $workers workers running: $((rss / 1024)) MB ($rss kB; target <= 20 MB)"
kill -TERM "$janitor_pid"
wait "$janitor_pid" || true
janitor_pid=""
echo "after SIGTERM: $(count_state held dirty) of 200 back to dirty"
