#!/usr/bin/env bash
# One command: build the Lambda zip, pick/export a model, upload, lint, deploy (change sets), smoke-test.
#   ./deploy.sh                 real AWS if credentials are configured, else the local AWS emulation
#   ./deploy.sh --local         the embedded local AWS (offline; no account, no Docker)
#   ./deploy.sh --region eu-west-1 [--profile p]
#   ./deploy.sh [--local] --delete
# ./deploy.sh --help documents every flag and environment variable.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ] || [ ! -f .venv/.requirements.sha256 ]; then
  echo "deploy.sh: no .venv yet: running ./setup.sh first (one time)" >&2
  ./setup.sh
fi
exec .venv/bin/python -m deployer "$@"
