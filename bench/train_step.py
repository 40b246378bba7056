"""Training throughput (images/s) of the same model on the book's pipeline and on ours, side by side in one run:

  (a) the book's DataBlock verbatim (as in bench/pipeline.py), with the ImageNet `Normalize` that the book's
      `vision_learner` adds;
  (b) ours, `pascal_dls` at its defaults (since issue 15: the image cache, the crop on whole batches);
  (c) for reference, compute only: the same training step on one batch held in memory (no data loading).

Same model (`xresnet_small`, 20 outputs, the same initial weights for each), 128 px, bs 32, BCE on logits,
Adam (fastai's `opt_func`), the same number of DataLoader worker processes for (a) and (b).

    OMP_WAIT_POLICY=PASSIVE python bench/train_step.py [--workers 2] [--rounds 2] [--bs 32] [--steps 8]

On a CPU shared with other jobs, OpenMP threads that spin while waiting can make a step many times slower
(see nbs/13_distributed.ipynb); OMP_WAIT_POLICY=PASSIVE makes them sleep instead (bench/run_all.sh sets it).

The three are measured in turns, one pass over the training images each per round, best pass kept; prints
images/s, b/a and b/c. Ratios only: the machines here are noisy.
"""
import argparse, time, os, json, copy, sys
from pathlib import Path
import pandas as pd, torch
sys.path.insert(0, str(Path(__file__).parent))
from pipeline import book_dls, our_dls

def train_pass(model, opt, loss_func, batches, steps=None):
    "Images/s of training steps over `batches` (an iterable of (x, y)), at most `steps`+1, the first excluded (worker start-up, warm-up)."
    model.train(); n = 0; t = None
    for i,(xb,yb) in enumerate(batches):
        if steps is not None and i > steps: break
        loss = loss_func(model(xb), yb); loss.backward(); opt.step(); opt.zero_grad()
        if t is None: t = time.perf_counter(); continue
        n += len(xb)
    return n/(time.perf_counter()-t)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--workers', type=int, default=min(os.cpu_count(), 8)); p.add_argument('--rounds', type=int, default=2)
    p.add_argument('--steps', type=int, default=None, help='timed steps per pass (default: a whole pass over the training images)')
    p.add_argument('--bs', type=int, default=32); p.add_argument('--path', default=None, help='a pascal_2007-style folder (default: the sample)')
    a = p.parse_args()
    from fastai.vision.all import Normalize, imagenet_stats, BCEWithLogitsLossFlat, Adam, set_seed
    from multilabel_regress.datasets import get_pascal
    from multilabel_regress.archs import get_arch
    path = Path(a.path) if a.path else get_pascal()
    df = pd.read_csv(path/'train.csv')
    dla = book_dls(path, df, a.bs, a.workers); dla.add_tfms([Normalize.from_stats(*imagenet_stats)], 'after_batch')
    dlb = our_dls(path, df, a.bs, a.workers)
    assert list(dla.vocab) == list(dlb.vocab), (dla.vocab, dlb.vocab)
    set_seed(42)
    m0 = get_arch('xresnet_small')(n_out=len(dlb.vocab)); loss_func = BCEWithLogitsLossFlat()
    held = [dlb.one_batch()]*len(dlb.train)  # (c): as many steps as a pass, on one batch in memory
    runs = dict(a_book=[], b_ours=[], c_compute=[])
    for r in range(a.rounds):
        for k,batches in (('a_book', dla.train), ('b_ours', dlb.train), ('c_compute', held)):
            m = copy.deepcopy(m0); opt = Adam(m.parameters(), lr=1e-3)
            runs[k].append(train_pass(m, opt, loss_func, batches, a.steps))
        print(f"round {r+1}: " + '  '.join(f'{k} {v[-1]:.1f}' for k,v in runs.items()), flush=True)
    res = {k:max(v) for k,v in runs.items()}
    for k,v in res.items(): print(f'{k:10}: {v:7.1f} images/s')
    print(f"b/a = {res['b_ours']/res['a_book']:.2f}   b/c = {res['b_ours']/res['c_compute']:.2f}   "
          f"(xresnet_small, 128 px, bs {a.bs}, {a.steps or len(dlb.train)-1} timed steps a pass, {a.workers} loader processes, {torch.get_num_threads()} torch threads)")
    print(json.dumps(dict(workers=a.workers, bs=a.bs, **{k:round(v,1) for k,v in res.items()})))

if __name__ == '__main__': main()
