#!/usr/bin/env bash
# Idempotent environment setup: .venv (project, tests, export, train, bench), .venv-taskcat and .venv-checkov.
# Needs only Python 3.11+ and access to PyPI. Re-running it is cheap: an up-to-date venv is left alone.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup.sh: Python 3.11+ is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi

install_venv() {  # install_venv DIR REQUIREMENTS...
  local dir=$1; shift
  local stamp="$dir/.requirements.sha256"
  local want
  want=$(cat "$@" requirements/*.txt | sha256sum | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    echo "setup.sh: $dir is up to date"
    return
  fi
  echo "setup.sh: installing $dir (first run downloads several GB for PyTorch; later runs are instant)"
  [ -x "$dir/bin/python" ] || "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install --quiet --upgrade pip 2>&1 | { grep -v "is ignored" || true; }
  local args=()
  for req in "$@"; do args+=(-r "$req"); done
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "setup.sh: pip install into $dir failed (see above)" >&2; exit 1; }
  echo "$want" > "$stamp"
}

link_project() {  # make `import detection`, `import export`, ... work from anywhere with .venv/bin/python
  local site
  site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  printf '%s\n%s\n' "$PWD" "$PWD/lambda_src" > "$site/serverless_detection.pth"
}

install_venv .venv requirements/dev.txt
link_project
install_venv .venv-taskcat requirements/taskcat.txt
install_venv .venv-checkov requirements/checkov.txt
echo "setup.sh: done (.venv, .venv-taskcat and .venv-checkov ready)"
