#!/usr/bin/env bash
# Every test: set up (or reuse) .venv, check that notebooks and library agree and that the
# notebooks are clean, then run the notebooks as a reader's Run All does in a hosted notebook (every
# cell, nbdev's flags being comments there; nbdev and execnb unimportable from the notebooks) with
# the network blocked, and the test suite (pytest; tests/test_hosted.py skips its own run of them).
source "$(dirname "$0")/setup.sh"
snap() { { find nbs multilabel_regress -name '*.ipynb' -o -name '*.py'; echo README.md; } | sort | xargs sha256sum; }
before=$(snap)
nbdev_export
nbdev_clean
python tools/make_readme.py
after=$(snap)
if [ "$before" != "$after" ]; then
  echo "FAIL: nbdev_export, nbdev_clean or tools/make_readme.py changed these files: export/clean the notebooks, remake README.md, and commit the result"
  diff <(echo "$before") <(echo "$after") | grep '^[<>]' || true
  exit 1
fi
echo "notebooks and library in sync, notebooks clean"
python scripts/versions.py "pinned leg"
python tools/run_nbs.py --run-all --offline --hosted --check --workers ${NBDEV_WORKERS:-2} nbs/*.ipynb
MLR_NOTEBOOKS_RAN=hosted MLR_FULL_REHEARSAL=minimal pytest "$@"   # the real path rehearsed on the smallest subsets here; on release-like folders in the newest leg
