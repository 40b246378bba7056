# Sourced by main.sh and test.sh: create or reuse the project's virtual environment in .venv,
# install the package with the pinned stack (constraints.txt), then activate it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
# reinstall only when what the install reads has changed
stamp=$(cat constraints.txt settings.ini setup.py | sha256sum | cut -c1-16)
if [ "$(cat .venv/.mlr-stamp 2>/dev/null)" != "$stamp" ]; then
  echo "setup: installing multilabel_regress and its pinned dependencies (a few minutes the first time)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  echo "$stamp" > .venv/.mlr-stamp
fi
source .venv/bin/activate
# threads that spin while waiting cost a lot on a small or busy machine (measured in 13_distributed)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
