#!/usr/bin/env bash
# `make bench`: every benchmark, one after another. Benchmarks report
# ratios against a reference measured in the same run; absolute times on
# shared machines are noisy. Each part can also run alone.
set -u
cd "$(dirname "$0")/.."
export BOSK=${BOSK:-build/bosk}
status=0
for part in scripts/bench_client.sh scripts/bench_server.sh scripts/bench_janitor.sh; do
  if [ -x "$part" ]; then
    echo "==== $part"
    "$part" || { echo "$part failed"; status=1; }
  else
    echo "==== $part: missing"
  fi
done
exit $status
