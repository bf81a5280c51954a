#!/usr/bin/env bash
# The main job: rehearse the dual-memory rollout on the local staging stack.
# Brings up the reference service, a real Prometheus scraping it and its flag file on 127.0.0.1,
# drives traffic, runs the phase 0, 1 and 2 gates (GO), injects a latency regression into the
# canary and runs phase 2 again with --rollout-on-abort=rollback (ABORT, flag rolled back and
# verified), then stops everything it started. Reports and decision records: out/main/.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python scripts/rehearse.py --out out/main "$@"
