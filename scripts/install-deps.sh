#!/usr/bin/env bash
# Installs the Debian packages bosk needs to build, test and benchmark.
# Idempotent: apt-get runs only when a package is missing.
#   scripts/install-deps.sh           what building and testing need
#   scripts/install-deps.sh --bench   also what only the benchmarks need
set -euo pipefail

packages=(
  gcc make pkg-config
  liblua5.4-dev lua5.4 lua-cjson-dev
  libcurl4-openssl-dev curl
  libmicrohttpd-dev libyaml-dev libsqlite3-dev sqlite3
  libuv1-dev libreadline-dev libcjson-dev
  python3 procps bc
  groff-base luarocks   # tests/install_test.lua: man pages, luarocks make
  clang libclang-rt-dev   # make fuzz, and tests/fuzz_test.lua under make test
)
if [ "${1:-}" = "--bench" ]; then
  packages=(wrk hyperfine valgrind)   # valgrind: the callgrind figures in docs/benchmarks.md
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2 || true
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
