#!/usr/bin/env bash
# The second test leg: the library's test suite in .venv-latest, an environment of the newest
# releases that install here (fastai, fastcore, pandas, numpy, ... with no pins; torch/torchvision as
# in constraints-latest.txt), with the package installed as a learner would (`pip install .`, only
# the floors in settings.ini). No nbdev in this leg: it is what a hosted notebook has, so with
# Jupyter's kernel and client (ipykernel, nbclient) the suite also runs every numbered notebook as
# Run All there (tests/test_hosted.py) and the full-data branches (tests/test_full_data.py).
# Every run upgrades to the newest releases, so a release that breaks learners' installs shows
# the day it lands. A DeprecationWarning or FutureWarning raised from multilabel_regress's own code
# fails the test that raised it. Extra arguments go to pytest (e.g. `-x -k keypoint`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
V=.venv-latest
if [ ! -x $V/bin/python ]; then
  echo "test_latest: creating $V with $($PY --version)"
  "$PY" -m venv $V
fi
echo "test_latest: installing the newest releases and the package without its pins"
$V/bin/python -m pip install -q --upgrade pip
$V/bin/python -m pip install -q --upgrade --upgrade-strategy eager -c constraints-latest.txt . pytest ipykernel nbclient
unset PYTHONPATH   # test the installed package, not a checkout on the path
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
$V/bin/python scripts/versions.py 'newest leg' | tee $V/versions.txt
# the venv's bin first, so tests that run the console script find this environment's `mlr`
MLR_FULL_REHEARSAL=${MLR_FULL_REHEARSAL:-release} PATH="$PWD/$V/bin:$PATH" $V/bin/pytest -p no:cacheprovider \
  -o filterwarnings="error::DeprecationWarning:multilabel_regress
error::FutureWarning:multilabel_regress" "$@"
