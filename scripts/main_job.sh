#!/usr/bin/env bash
# The main job: rehearse the dual-memory rollout on the local staging stack, by running the
# ```sh rehearsal blocks of docs/operations/dual_memory_rollout.md ("Rehearse in staging") with
# $OUT=out/main: bring up the reference service, a real Prometheus scraping it and its flag file
# on 127.0.0.1, drive traffic, run the phase 0, 1 and 2 gates (GO), inject a latency regression
# into the canary and run phase 2 again with --rollout-on-abort=rollback (ABORT, flag rolled back
# and verified), then stop everything it started. Reports and decision records: out/main/.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python scripts/rehearse.py --out out/main "$@"
