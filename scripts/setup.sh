#!/usr/bin/env bash
# Install what pytest-rollout's tests, examples and staging stack need on a fresh Debian machine:
# Debian's prometheus (+promtool), victoria-metrics (the second PromQL backend of the end-to-end
# tests), prometheus-alertmanager (alert-to-rollback tests) and chromium (report rendering
# tests), then the package itself with its pinned test dependencies. Safe to run again: it
# installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v /usr/bin/prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v /usr/bin/victoria-metrics >/dev/null 2>&1 || missing+=(victoria-metrics)
command -v /usr/bin/chromium >/dev/null 2>&1 || missing+=(chromium)
command -v /usr/bin/prometheus-alertmanager >/dev/null 2>&1 || missing+=(prometheus-alertmanager)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

echo "setup: installing pytest-rollout with its test dependencies" >&2
python -m pip install -q --disable-pip-version-check -e ".[test]" 2>&1 | grep -v "Running pip as the 'root' user" || true
python -c "import pytest_rollout, pytest_html, xdist, hypothesis, locust" >/dev/null
