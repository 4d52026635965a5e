#!/bin/sh
# Prints bosk's version, from one place: the VERSION file at the top of
# the tree. A build from a git checkout with a release tag (v1.2.3) on its
# history prints `git describe` instead (1.2.3, or 1.2.3-4-gabcdef0 four
# commits later), so a development binary names its commit. No git, no
# tag, or a tree that is not the git repository's top: VERSION alone.
cd "$(dirname "$0")/.." || exit 1
top=$(git rev-parse --show-toplevel 2>/dev/null)
if [ -n "$top" ] && [ "$(cd "$top" && pwd -P)" = "$(pwd -P)" ]; then
  if v=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
    echo "${v#v}"
    exit 0
  fi
fi
if [ ! -r VERSION ]; then
  echo "mk/version.sh: no VERSION file in $(pwd)" >&2
  exit 1
fi
head -n 1 VERSION
