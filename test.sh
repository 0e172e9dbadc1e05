#!/usr/bin/env bash
# The whole test suite: sets up .venv/.venv-taskcat on first run (./setup.sh), then runs pytest.
# Extra arguments go to pytest, e.g. ./test.sh tests/unit -k preprocess
set -euo pipefail
cd "$(dirname "$0")"
./setup.sh
exec .venv/bin/python -m pytest "$@"
