#!/usr/bin/env bash
# One command: build the Lambda zip, pick a model, upload, lint, deploy (change sets), first detection.
#   ./deploy.sh                 real AWS if credentials are configured, else the local AWS emulation
#   ./deploy.sh --local         the embedded local AWS (offline; no account, no Docker)
#   ./deploy.sh --region eu-west-1 [--profile p] [--backend gpu|inferentia [--accelerator-instance-type T]]
#   ./deploy.sh [--local] --bundle NEW / --rollback   switch the served model / serve the previous one again
#   ./deploy.sh [--local] --delete
# ./deploy.sh --help documents every flag and environment variable.
set -euo pipefail
cd "$(dirname "$0")"
# The deploy path runs in .venv-deploy (no PyTorch). setup.sh is idempotent and instant when it matches
# requirements/: running it every time means an edited requirements file is installed before deploying. Its
# "up to date" lines are dropped (output streams, so a first-time install shows progress).
if ! ./setup.sh deploy 2>&1 | { grep --line-buffered -v -e " is up to date$" -e "^setup.sh: done" >&2 || true; }; then
  echo "deploy.sh: ./setup.sh deploy failed (see above); fix that and run ./deploy.sh again" >&2
  exit 1
fi
exec .venv-deploy/bin/python -m deployer "$@"
