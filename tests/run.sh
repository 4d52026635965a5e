#!/usr/bin/env bash
# Runs every test: the C unit tests, then each tests/*_test.lua under
# `bosk run`, several files at once. Each test prints TAP-style lines
# ("ok - name" / "not ok - name" / "ok - name # skip why"); a file that dies
# without reporting counts as one failure. Ends with "N passed, N failed".
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

run_one() {
  local file=$1 log="$LOGDIR/$(basename "$1").log" start=$SECONDS
  if [[ $file == *.lua ]]; then
    timeout -k 5 "$FILE_TIMEOUT" "$BOSK" run "$file" >"$log" 2>&1
  else
    timeout -k 5 "$FILE_TIMEOUT" "$file" >"$log" 2>&1
  fi
  local rc=$?
  echo "# exit $rc after $((SECONDS - start))s" >>"$log"
  if [ $rc -ne 0 ] && ! grep -q '^not ok' "$log"; then
    { echo "not ok - $file exited with status $rc; its last lines:"
      grep -v '^ok ' "$log" | tail -n 15 | sed 's/^/  | /'; } >>"$log.tail"
    cat "$log.tail" >>"$log"
  fi
}
export -f run_one

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
