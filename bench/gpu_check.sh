#!/usr/bin/env bash
# The project's GPU check, for a session lent a GPU machine (see BENCHMARKS.md). Run from the repo root there,
# with the wheels of the pinned fastai stack in .whl/ (the machine has torch but no fastai, and no network):
#   bash bench/gpu_check.sh OUT_DIR
set -u
out=${1:-gpu_check_out}; mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD MULTILABEL_REGRESS_DATA=/tmp/mlr-data OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import sys, torch, fastai; print('python', sys.version.split()[0], 'torch', torch.__version__, 'fastai', fastai.__version__)"
echo "== cuda-marked tests and model files"; python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_models.py tests/test_speed_path.py 2>&1 | tail -3
echo "== training step, resnet50 128 px"; python3 bench/gpu_step.py
echo "== the package's pipeline and the chapter on the GPU"; python3 bench/gpu_train.py --report "$out/report"
