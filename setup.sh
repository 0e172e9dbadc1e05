#!/usr/bin/env bash
# Idempotent environment setup, one venv per job. Needs only Python 3.11+ and access to PyPI.
#   ./setup.sh deploy   .venv-deploy: the serve/deploy path without PyTorch (what ./deploy.sh uses)
#   ./setup.sh dev      .venv: the deploy path plus PyTorch & co. for export, train, bench and the tests
#   ./setup.sh          all of them plus .venv-taskcat and .venv-checkov: everything ./test.sh needs
# Re-running it is cheap: a venv whose requirements did not change is left alone.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup.sh: Python 3.11+ is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

requirement_files() {  # requirement_files FILE: FILE and every file it pulls in with -r, recursively
  echo "$1"
  local included
  for included in $(sed -n 's/^-r[[:space:]]*//p' "$1"); do
    requirement_files "$(dirname "$1")/$included"
  done
}

install_venv() {  # install_venv DIR REQUIREMENTS "what the first run downloads"
  local dir=$1 requirements=$2 download=$3
  local stamp="$dir/.requirements.sha256"
  local want
  want=$(requirement_files "$requirements" | xargs cat | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "setup.sh: $dir is up to date"
    return
  fi
  echo "setup.sh: installing $dir from $requirements (a first run downloads $download; later runs are instant)"
  [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --upgrade pip 2>&1 | { grep -v "is ignored" || true; }
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "setup.sh: pip install into $dir failed (see above)" >&2; exit 1; }
  echo "$want" > "$stamp"
}

link_project() {  # link_project DIR: `import detection`, `import export`, ... work from anywhere with DIR/bin/python
  local site
  site=$("$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  printf '%s\n%s\n' "$PWD" "$PWD/lambda_src" > "$site/serverless_detection.pth"
}

setup_deploy() {
  install_venv .venv-deploy requirements/deploy.txt "about 100 MB, no PyTorch"
  link_project .venv-deploy
}

setup_dev() {
  install_venv .venv requirements/dev.txt "several GB (PyTorch with its CUDA libraries, transformers)"
  link_project .venv
}

case "${1:-all}" in
  deploy)
    setup_deploy
    echo "setup.sh: done (.venv-deploy ready)" ;;
  dev)
    setup_dev
    echo "setup.sh: done (.venv ready)" ;;
  all)
    setup_deploy
    setup_dev
    install_venv .venv-taskcat requirements/taskcat.txt "about 40 MB"
    install_venv .venv-checkov requirements/checkov.txt "about 55 MB"
    echo "setup.sh: done (.venv-deploy, .venv, .venv-taskcat and .venv-checkov ready)" ;;
  *)
    echo "usage: ./setup.sh [deploy|dev|all]   (deploy: .venv-deploy, no PyTorch; dev: .venv; all: both plus" \
         ".venv-taskcat and .venv-checkov, the default)" >&2
    exit 2 ;;
esac
