#!/usr/bin/env bash
# run.sh BUILD NAME SECONDS [libFuzzer flags...]: fuzzes one harness for
# SECONDS over its seeds (tests/fuzz/NAME/, read only) and what it found
# before (BUILD/corpus/NAME/, where new inputs go), then prints one line:
#   fuzz NAME: EXECS execs in SECONDS s (EXEC/S/s), CORPUS inputs
# or, on a crash, "fuzz NAME: CRASH ..." with the reproducer's path and the
# report's first lines, and exits 1. FUZZ_CORPUS names another directory
# for new inputs (tests/fuzz_test.lua starts from the seeds alone).
set -u
build=$1 name=$2 seconds=$3
shift 3
corpus=${FUZZ_CORPUS:-$build/corpus/$name} crashes=$build/crashes log=$build/$name.log
mkdir -p "$corpus" "$crashes"
# -timeout: one input taking 10 s is a hang; -rss_limit_mb: an input
# costing 2 GB is a memory bomb. Both count as crashes.
"$build/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$crashes/$name-" "$@" \
  "$corpus" "tests/fuzz/$name" >"$log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
inputs=$(find "$corpus" -type f | wc -l)
if [ $rc -eq 0 ]; then
  echo "fuzz $name: ${execs:-?} execs in ${seconds} s (${rate:-?}/s), $inputs inputs found"
  exit 0
fi
artifact=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
echo "fuzz $name: CRASH (exit $rc), input in ${artifact:-?}, log $log"
# The diagnosis and the stack frames in bosk's own code.
grep -E 'ERROR: [A-Za-z]+Sanitizer|SUMMARY|invariant broken|runtime error|^wire:| in [^ ]+ [^ ]*/(src|tests/fuzz)/' \
  "$log" | grep -v 'LLVMFuzzerTestOneInput\|deadly signal\|NEW_FUNC' | head -n 12 | sed 's/^/  | /'
exit 1
