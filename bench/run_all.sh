#!/usr/bin/env bash
# Every CPU benchmark of issue 6, in one command, from the repo root (see BENCHMARKS.md):
#   bash bench/run_all.sh              # pipeline, labels, train_step, then quality (minutes to an hour on 2 busy cores)
#   bash bench/run_all.sh --quick      # the first three only, one BIWI pair in 1 (several minutes)
#   WORKERS=4 bash bench/run_all.sh    # DataLoader / decoding processes (default: all cores, at most 8)
# Output goes to the terminal and to bench/results/run_all_<UTC date and time>.log.
# Each script prints ratios measured side by side in the same run: compare ratios, not absolute figures.
# The GPU check is separate (bench/gpu_check.sh, on a machine with a GPU); so is bench/distributed.py.
set -u
cd "$(dirname "$0")/.."
[ -f .venv/bin/activate ] && source .venv/bin/activate
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE} PYTHONWARNINGS=ignore PYTHONUNBUFFERED=1
W=${WORKERS:-$(python -c "import os; print(min(os.cpu_count(), 8))")}
mkdir -p bench/results; log=bench/results/run_all_$(date -u +%Y-%m-%d_%H%M).log
{
  echo "== $(date -u '+%Y-%m-%d %H:%M UTC')  $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg), workers $W, OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
  echo "== 1. input pipeline against the book's, 2 cores, fresh copies, empty cache, 7 epochs (bench/pipeline.py)"
  if [ "${1:-}" = "--quick" ]; then python bench/pipeline.py --biwi-pairs 1; else python bench/pipeline.py; fi
  echo "== 1a. steady-state epochs and the decode-bound loops (bench/pipeline.py --steady)"; python bench/pipeline.py --steady --workers "$W" --epochs 3
  echo "== 1b. where an epoch of pascal_dls goes (bench/profile_pipeline.py)"; python bench/profile_pipeline.py | head -5
  echo "== 2. BIWI labels (bench/labels.py)";       python bench/labels.py --epochs 5
  echo "== 3. training step (bench/train_step.py)"; python bench/train_step.py --workers "$W" --rounds 2 --steps 6
  if [ "${1:-}" != "--quick" ]; then
    echo "== 4. time to quality (bench/quality.py)"; python bench/quality.py
  fi
  echo "== done $(date -u '+%H:%M UTC'), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | grep --line-buffered -v -e 'warnings.warn' -e 'FutureWarning' | tee "$log"
