#!/usr/bin/env bash
# Runs every test: the C unit tests, then each tests/*_test.lua under
# `bosk run tests/lib/tap.lua`, several files at once. Every file prints TAP
# ("ok - name" / "not ok - name" / "ok - name # skip why") and ends with its
# plan line "1..N". A file counts one more failure when it has no plan (it
# stopped early: os.exit, a crash, the time limit), when its plan disagrees
# with the tests it reported, or when it exits non-zero without a "not ok".
# Ends with "N passed, N failed" (", N skipped" when some were skipped).
set -u
cd "$(dirname "$0")/.."
BOSK=${BOSK:-build/bosk}
UNIT=${UNIT:-}
JOBS=${TEST_JOBS:-3}
FILE_TIMEOUT=${TEST_FILE_TIMEOUT:-300}
logdir=$(mktemp -d "${TMPDIR:-/tmp}/bosk-tests.XXXXXX")
trap 'rm -rf "$logdir"' EXIT
export BOSK LOGDIR="$logdir" FILE_TIMEOUT
export BOSK_ROOT="$PWD"

# What is wrong with a finished file's log, if anything (empty when fine).
log_problem() {
  local log=$1 rc=$2 plan reported
  plan=$(grep -E '^1\.\.[0-9]+$' "$log" | tail -n 1)
  reported=$(grep -cE '^(not )?ok( |$)' "$log")
  if [ -z "$plan" ]; then
    if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
      echo "was stopped after ${FILE_TIMEOUT}s, before its plan line"
    else
      echo "ended (exit status $rc) before its plan line"
    fi
  elif [ "${plan#1..}" -ne "$reported" ]; then
    echo "planned ${plan#1..} tests but reported $reported"
  elif [ "$rc" -ne 0 ] && ! grep -q '^not ok' "$log"; then
    echo "exited with status $rc"
  fi
}

run_one() {
  local file=$1 log="$LOGDIR/$(basename "$1").log" start=$SECONDS
  if [[ $file == *.lua ]]; then
    timeout -k 5 "$FILE_TIMEOUT" "$BOSK" run tests/lib/tap.lua "$file" >"$log" 2>&1
  else
    timeout -k 5 "$FILE_TIMEOUT" "$file" >"$log" 2>&1
  fi
  local rc=$? problem
  problem=$(log_problem "$log" "$rc")
  echo "# exit $rc after $((SECONDS - start))s" >>"$log"
  if [ -n "$problem" ]; then
    { echo "not ok - $file $problem; its last lines:"
      grep -v '^ok ' "$log" | tail -n 15 | sed 's/^/  | /'; } >>"$log.tail"
    cat "$log.tail" >>"$log"
  fi
}
export -f log_problem run_one

files=()
for u in $UNIT; do [ -x "$u" ] && files+=("$u"); done
pattern=${TESTS:-tests/*_test.lua}
for f in $pattern; do files+=("$f"); done
printf '%s\n' "${files[@]}" | xargs -P "$JOBS" -I{} bash -c 'run_one "$@"' _ {}

passed=0 failed=0 skipped=0
for f in "${files[@]}"; do
  log="$logdir/$(basename "$f").log"
  echo "== $f"
  # Show failures with their diagnostics; passing lines only count.
  grep -E '^(not ok|#)|^  ' "$log" | grep -v '^# exit 0' || true
  p=$(grep -cE '^ok ' "$log" | head -1); s=$(grep -cE '^ok .*# ?[Ss][Kk][Ii][Pp]' "$log")
  n=$(grep -cE '^not ok' "$log")
  passed=$((passed + p - s)); skipped=$((skipped + s)); failed=$((failed + n))
  echo "   $((p - s)) passed, $n failed, $s skipped"
done
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
