#!/bin/sh
# A stand-in for upstream's gcp_janitor.py: called as
#   gcp-janitor.sh --project=NAME [extra args...]
# It would delete every instance, disk, network, bucket... of the project;
# here it only says so. Exit 0 = cleaned; anything else = failed.
set -eu
project=""
for arg in "$@"; do
  case "$arg" in
    --project=*) project=${arg#--project=} ;;
  esac
done
if [ -z "$project" ]; then
  echo "gcp-janitor: --project=NAME is required" >&2
  exit 2
fi
for kind in instances disks networks buckets service-accounts; do
  echo "gcp-janitor: $project: deleting $kind (simulated)"
done
sleep "${GCP_JANITOR_DELAY:-0.2}"
echo "gcp-janitor: $project: clean"
