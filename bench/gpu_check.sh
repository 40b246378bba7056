#!/usr/bin/env bash
# The project's GPU check, for a session lent a GPU machine (see BENCHMARKS.md). Run from the repo root there:
#   bash bench/gpu_check.sh [OUT_DIR]
# The device machine has torch but no fastai and no network: carry the wheels of the pinned fastai stack in .whl/
# (they are installed into /tmp/site). Where no CUDA GPU is found it says so and exits 0, measuring nothing
# (`python bench/gpu_pipeline.py --cpu-smoke` and `python bench/gpu_train.py --cpu-smoke` check the scripts on a CPU).
# Output: the terminal and OUT_DIR/gpu_check.log (copy it to bench/results/gpu_check_<date>_<gpu>.log).
set -u
cd "$(dirname "$0")/.."
out=${1:-gpu_check_out}
py=${PYTHON:-python3}
if ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "gpu_check: no CUDA GPU here ($("$py" -c 'import torch; print("torch", torch.__version__, "sees none")' 2>/dev/null || echo "no torch in $py")); nothing measured."
  echo "gpu_check: run it on a machine with a GPU (BENCHMARKS.md says how); on a CPU, 'python bench/gpu_pipeline.py --cpu-smoke' checks the scripts."
  exit 0
fi
mkdir -p "$out"
if ls .whl/*.whl >/dev/null 2>&1; then
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export MULTILABEL_REGRESS_DATA=${MULTILABEL_REGRESS_DATA:-/tmp/mlr-data} OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1 PYTHONWARNINGS=ignore
pin=$(sed -n 's/^torch==\([0-9.]*\).*/\1/p' constraints.txt)
{
  echo "== $(date -u '+%Y-%m-%d %H:%M UTC')  $(nproc) CPU cores"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  have=$("$py" -c "import torch; print(torch.__version__.split('+')[0])")
  "$py" -c "import sys, torch, fastai; print('python', sys.version.split()[0], 'torch', torch.__version__, 'fastai', fastai.__version__)"
  if [ "$have" = "$pin" ]; then echo "torch $have is the pinned one (constraints.txt: torch==$pin)"
  else echo "NOTE: torch $have here, NOT the pinned torch==$pin of constraints.txt: the tests below ran with torch $have" \
            "(to test the pin, put its wheel for this python, and its nvidia-* wheels if they differ, in .whl/)"; fi
  echo "== cuda-marked tests and model files (tests/test_cuda.py first)"
  "$py" -m pytest -q -p no:cacheprovider tests/test_cuda.py 2>&1 | tail -4
  "$py" -m pytest -q -p no:cacheprovider tests/test_models.py tests/test_speed_path.py 2>&1 | tail -2
  echo "== training step, resnet50 128 px, compute only"; "$py" bench/gpu_step.py
  echo "== issue 15: a PASCAL epoch of pascal_dls (cached, the batch crop on the GPU) against compute only, all CPU cores"
  "$py" bench/gpu_pipeline.py
  echo "== the same, loader and training on 2 CPU cores (taskset -c 0,1, 2 torch threads)"
  if command -v taskset >/dev/null; then taskset -c 0,1 "$py" bench/gpu_pipeline.py --cores 2
  else "$py" bench/gpu_pipeline.py --cores 2; fi   # --cores sets the same affinity from inside
  echo "== the package's pipeline in a fastai Learner, and the chapter on the GPU"; "$py" bench/gpu_train.py --report "$out/report"
  echo "== done $(date -u '+%H:%M UTC')"
} 2>&1 | grep --line-buffered -v -e 'warnings.warn' -e 'FutureWarning' | tee "$out/gpu_check.log"
