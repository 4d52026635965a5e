#!/bin/sh
# ci-lease.sh: lease a Boskos resource for a CI job, keep the lease alive
# while the job runs, and release it however the job ends.
#
#   usage: ci-lease.sh TYPE COMMAND [ARGS...]
#
# The job sees the leased resource's name in $BOSKOS_RESOURCE and its JSON
# in $BOSKOS_RESOURCE_JSON. The script exits with the job's status, or 1
# when no resource could be leased or the lease was lost meanwhile.
#
# Environment: BOSKOS_URL, BOSKOS_OWNER (default ci-<hostname>-<pid>),
# BOSK (the bosk binary, default `bosk`), LEASE_WAIT (default 10m),
# HEARTBEAT_PERIOD (default 30s), FROM_STATE (free), BUSY_STATE (busy),
# RELEASE_STATE (dirty: let the janitor clean it).
set -eu

if [ $# -lt 2 ]; then
  echo "usage: $0 TYPE COMMAND [ARGS...]" >&2
  exit 2
fi
type=$1
shift
BOSK=${BOSK:-bosk}
BOSKOS_OWNER=${BOSKOS_OWNER:-ci-$(hostname)-$$}
export BOSKOS_OWNER

# 1. Lease: wait up to LEASE_WAIT in the server's FIFO queue.
resource=$("$BOSK" acquire --type "$type" --state "${FROM_STATE:-free}" \
  --target-state "${BUSY_STATE:-busy}" --timeout "${LEASE_WAIT:-10m}") || {
  echo "ci-lease: could not lease a $type" >&2
  exit 1
}
# Resource names are DNS-1123 names: no quotes or escapes to worry about.
name=$(printf '%s\n' "$resource" | sed -n 's/.*"name":"\([^"]*\)".*/\1/p')
if [ -z "$name" ]; then
  echo "ci-lease: acquire printed no resource" >&2
  exit 1
fi
echo "ci-lease: leased $name" >&2

# 2. Release on every exit path (success, failure, Ctrl-C, kill).
heartbeat=
release() {
  status=$?
  trap - EXIT INT TERM
  if [ -n "$heartbeat" ]; then
    if kill "$heartbeat" 2>/dev/null; then
      wait "$heartbeat" || true
    else
      wait "$heartbeat" || { echo "ci-lease: the lease on $name was lost" >&2; status=1; }
    fi
  fi
  "$BOSK" release --name "$name" --target-state "${RELEASE_STATE:-dirty}" >&2 || status=1
  exit "$status"
}
trap release EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 3. Heartbeat in the background; it exits non-zero if the lease is lost.
"$BOSK" heartbeat --resource "$resource" --period "${HEARTBEAT_PERIOD:-30s}" >&2 &
heartbeat=$!

# 4. The job itself.
BOSKOS_RESOURCE=$name BOSKOS_RESOURCE_JSON=$resource "$@"
