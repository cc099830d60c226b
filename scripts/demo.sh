#!/usr/bin/env bash
# make demo: the service on embedded defaults with a simulated world loaded
# and gentle traffic, plus the curl commands to look at a personalised feed.
# Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${BIN:-bin/reelfeed}" demo "$@"
