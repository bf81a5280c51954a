#!/usr/bin/env bash
# The main job (temporary until the staging stack lands): the example canary gates against a real
# Prometheus backfilled with the bundled healthy scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
python examples/run_scenario.py healthy "$@"
