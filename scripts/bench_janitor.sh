#!/usr/bin/env bash
# Janitor benchmarks against the bundled server (memory storage). Each
# figure is printed as a ratio to a reference measured in the same run,
# alternating with it (absolute times on a shared machine are noise):
#   1. no-op cleanings of 2,000 dirty resources at concurrency 50: rate
#      (dirty -> free per second) over the fork floor, bench/fork_floor.c,
#      a tiny C program that forks and reaps 2,000 children at concurrency
#      50 (target >= 0.6)
#   2. 200 cleanings of janitor.exec{"sleep", "0.2"} at concurrency 50:
#      the time of `xargs -P 50` for the same sleeps over the janitor's
#      (target >= 0.95); bench/mini_janitor.c (the design in bare C) too
#   3. supervisor resident memory, peak and current, with 200 cleanings in
#      flight (target <= 8 MB)
# Runnable alone: BOSK=build/bosk [RUNS=5] scripts/bench_janitor.sh
# OLD=path/to/an/older/bosk also runs that binary in every round, right
# after BOSK, and prints its ratios next to BOSK's (before/after figures
# from the same run).
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

RUNS=${RUNS:-5}
OLD=${OLD:-}
# The binaries measured, as label=path: BOSK, and OLD when given.
binaries="new=$BOSK"
[ -n "$OLD" ] && binaries="$binaries old=$OLD"
cc -O2 -o "$tmp/fork_floor" bench/fork_floor.c || exit 1
cc -O2 -o "$tmp/mini_janitor" bench/mini_janitor.c $(pkg-config --cflags --libs libcurl) || exit 1
cc -O2 -o "$tmp/fork_cost" bench/fork_cost.c || exit 1

# timed FILE COMMAND...: runs COMMAND, appends its wall time (s) to FILE.
timed() {
  local file=$1 t0 t1
  shift
  t0=$(now)
  "$@"
  t1=$(now)
  python3 -c "print($t1 - $t0)" >>"$file"
}
# check_freed TYPE COUNT WHO [LOG]: every resource of the run ended free.
check_freed() {
  local freed
  freed=$(count_state "$1" free)
  [ "$freed" = "$2" ] || { echo "bench_janitor: $3 freed only $freed of $2"; [ -z "${4:-}" ] || tail -n 5 "$4"; exit 1; }
}

# cpu FILE COMMAND...: runs COMMAND, appends the CPU seconds (user + system)
# of the processes it started and waited for (a janitor's worker factory
# and, through it, every worker) to FILE. Rates on a shared machine follow
# its load; CPU per cleaning moves less.
cpu() {
  local file=$1 TIMEFORMAT='%U %S' t status=0
  shift
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 ) || status=$?
  [ "$status" = 0 ] || { echo "bench_janitor: $* exited with status $status"; exit 1; }
  python3 -c "u, s = '$t'.split(); print(float(u) + float(s))" >>"$file"
}

# 1. no-op cleanings against the fork floor, RUNS rounds: in each, every
# binary cleans 2,000 dirty resources on a fresh server at concurrency 50
# (process start to exit), then fork_floor forks and reaps 2,000 children
# at concurrency 50.
cat >"$tmp/noop.lua" <<'EOF'
janitor.policy{ type = "noop", clean = function() return true end }
EOF
run_noop() { "$1" janitor --once --pool-size 50 --boskos-url "$url" "$tmp/noop.lua" >"$tmp/noop.out" 2>"$tmp/noop.err"; }
for _ in $(seq 1 "$RUNS"); do
  for b in $binaries; do
    start_server noop 2000
    timed "$tmp/noop.${b%%=*}" run_noop "${b#*=}"
    check_freed noop 2000 "no-op janitor (${b%%=*})" "$tmp/noop.err"
    start_server noop 2000
    cpu "$tmp/noopcpu.${b%%=*}" run_noop "${b#*=}"
  done
  "$tmp/fork_floor" 2000 50 >>"$tmp/floor"
  cpu "$tmp/floorcpu" "$tmp/fork_floor" 2000 50
done

# 2. 200 x sleep 0.2 at concurrency 50, RUNS rounds: each binary on a fresh
# server, then the same sleeps under xargs (no janitor, no server), then
# bench/mini_janitor.c (the design stripped to its bones in C: one
# process, acquire and release over libcurl, a forked child per cleaning
# that runs sleep; no Lua, no threads, no logs) on its own fresh server.
# The janitor's time is process start to exit: start-up and the last
# release are included. A round's ratio is xargs's time over the
# janitor's in that round.
cat >"$tmp/sleep.lua" <<'EOF'
janitor.policy{ type = "sleepy", concurrency = 50, clean = function()
  return (janitor.exec{ "sleep", "0.2" })
end }
EOF
run_janitor() { "$1" janitor --once --pool-size 50 --boskos-url "$url" "$tmp/sleep.lua" >"$tmp/sleep.out" 2>"$tmp/sleep.err"; }
run_xargs() { seq 200 | xargs -P 50 -I{} sleep 0.2; }
for _ in $(seq 1 "$RUNS"); do
  for b in $binaries; do
    start_server sleepy 200
    timed "$tmp/sleep.${b%%=*}" run_janitor "${b#*=}"
    check_freed sleepy 200 "bosk janitor (${b%%=*})" "$tmp/sleep.err"
  done
  timed "$tmp/xargs" run_xargs
  start_server sleepy 200
  timed "$tmp/mini" "$tmp/mini_janitor" "$url" sleepy 50
  check_freed sleepy 200 mini_janitor
done
fork_us=$("$tmp/fork_cost")

python3 - "$tmp" "$fork_us" $binaries <<'EOF'
import statistics, sys
d, fork_us = sys.argv[1], sys.argv[2]
labels = [b.split("=", 1)[0] for b in sys.argv[3:]]
def values(name):
    return [float(x) for x in open(f"{d}/{name}").read().split()]
def rounds(ratios):
    return (f"median {statistics.median(ratios):.2f}, best {max(ratios):.2f} (rounds: " +
            " ".join(f"{r:.2f}" for r in ratios) + ")")
floor = values("floor")
print("no-op cleanings, 2000 dirty -> free at concurrency 50: rate / fork floor (target >= 0.6)")
print(f"  reference, bench/fork_floor.c 2000 50: median {statistics.median(floor):.0f} children/s"
      f" (range {min(floor):.0f}-{max(floor):.0f})")
for b in labels:
    rates = [2000 / t for t in values("noop." + b)]
    print(f"  bosk janitor ({b}): {rounds([r / f for r, f in zip(rates, floor)])};"
          f" median {statistics.median(rates):.0f} resources/s")
floor_cpu = [c / 2000 * 1e6 for c in values("floorcpu")]
print(f"  CPU per child of fork_floor: median {statistics.median(floor_cpu):.0f} us")
for b in labels:
    jcpu = [c / 2000 * 1e6 for c in values("noopcpu." + b)]
    print(f"  CPU per cleaning, janitor and its processes ({b}): median {statistics.median(jcpu):.0f} us;"
          f" fork floor's over it: {rounds([f / j for f, j in zip(floor_cpu, jcpu)])}")
xargs, mini = values("xargs"), values("mini")
print("200 x exec sleep 0.2 at concurrency 50: xargs time / janitor time (target >= 0.95)")
print(f"  reference, xargs -P 50 sleep 0.2: median {statistics.median(xargs):.3f} s"
      f" (range {min(xargs):.3f}-{max(xargs):.3f}; ideal 0.800)")
for b in labels:
    t = values("sleep." + b)
    print(f"  bosk janitor ({b}): {rounds([x / j for x, j in zip(xargs, t)])};"
          f" median {statistics.median(t):.3f} s")
print(f"  bench/mini_janitor.c: {rounds([x / m for x, m in zip(xargs, mini)])};"
      f" median {statistics.median(mini):.3f} s")
print(f"  fork + exit + wait of a small C process here (bench/fork_cost.c): {fork_us} us")
EOF

# 3. Supervisor memory with 200 cleanings in flight, each binary.
cat >"$tmp/held.lua" <<'EOF'
janitor.policy{ type = "held", concurrency = 200, clean = function()
  return (janitor.exec{ "sleep", "30" })   -- still running when measured, even on a busy machine
end }
EOF
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
for b in $binaries; do
  start_server held 200
  "${b#*=}" janitor --pool-size 200 --grace 0s --boskos-url "$url" "$tmp/held.lua" >"$tmp/held.out" 2>&1 &
  janitor_pid=$!
  for _ in $(seq 1 400); do
    [ "$(count_state held cleaning)" = 200 ] && break
    sleep 0.05
  done
  sleep 0.3
  # workers are children of the worker factory, the janitor's only child
  workers=0
  for z in $(pgrep -P "$janitor_pid"); do workers=$((workers + $(pgrep -P "$z" | wc -l))); done
  status="/proc/$janitor_pid/status"
  rss=$(awk '/^VmRSS/ {print $2}' "$status")
  hwm=$(awk '/^VmHWM/ {print $2}' "$status")
  threads=$(awk '/^Threads/ {print $2}' "$status")
  echo "supervisor memory (${b%%=*}) with $(count_state held cleaning) leases held, $workers workers running:" \
       "peak RSS $(mb "$hwm") MB, now $(mb "$rss") MB, $threads threads (target: peak <= 8 MB)"
  kill -TERM "$janitor_pid"
  wait "$janitor_pid" || true
  janitor_pid=""
  echo "  after SIGTERM: $(count_state held dirty) of 200 back to dirty"
done
