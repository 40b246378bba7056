"""Data-parallel training throughput: the same small training run in 1 and in 2 processes, side by side.

    python bench/distributed.py [--runs 1x2 1x1 2x1] [--n 400] [--size 64] [--bs 16] [--epochs 3] [--device auto]

Each run is `torchrun --standalone --nproc_per_node P` on this file in worker mode: `xresnet_small` from
scratch on the PASCAL sample (fastai DataBlock, squished to `size`, no workers), inside `train_ctx`, with
`bs` per process. A run `PxT` is P processes of T threads each (OMP_NUM_THREADS); the default compares one
process using every core, one process of one thread, and two processes sharing the cores, so that the
hardware is the same and only the way it is split differs. Prints training images/s (all processes
together, best epoch after the first) and the ratio to the best single-process run.

On an idle machine with a few cores expect a ratio at or below 1: one process already uses every core
through its threads, and two processes do the same arithmetic plus a gradient all-reduce every step and
twice the Python and data-loading overhead. On a machine shared with other jobs, two processes can come
out ahead only because the scheduler gives two runnable processes a bigger share of the CPU than one.
The speed-up comes from adding devices (GPUs, machines): `--device cuda` on a machine with enough GPUs.

The machines here are shared and noisy: run it twice and compare the ratios. On a busy machine, a process
of several OpenMP threads can be many times slower than one of one thread (threads spin waiting for each
other while another job holds a core); `OMP_WAIT_POLICY=PASSIVE python bench/distributed.py` shows how much.
Figures from 2026-11-28 are in nbs/13_distributed.ipynb.
"""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

def worker(a):
    "One process of a run: train, time each epoch's training phase, print a JSON line from rank 0."
    import pandas as pd, torch
    from fastai.vision.all import (DataBlock, ImageBlock, MultiCategoryBlock, ColSplitter, ColReader, Resize, Normalize,
                                   imagenet_stats, vision_learner, set_seed, Callback)
    from multilabel_regress.datasets import VOC_CLASSES
    from multilabel_regress.archs import xresnet_small
    from multilabel_regress.distributed import distrib_setup, distrib_teardown, train_ctx, gather_object, world_size, is_main
    distrib_setup()
    path = Path(a.path); df = pd.read_csv(path/'train.csv')
    set_seed(0)
    dblock = DataBlock(blocks=(ImageBlock, MultiCategoryBlock(vocab=VOC_CLASSES)), splitter=ColSplitter('is_valid'),
                       get_x=ColReader('fname', pref=path/'train'), get_y=ColReader('labels', label_delim=' '),
                       item_tfms=Resize(a.size, method='squish'), batch_tfms=Normalize.from_stats(*imagenet_stats))
    learn = vision_learner(dblock.dataloaders(df, bs=a.bs, num_workers=0), xresnet_small, pretrained=False)
    class Timer(Callback):
        order = 100
        def before_fit(self): self.times,self.items = [],[]
        def before_train(self): self.n = 0; self.t = time.perf_counter()
        def after_batch(self):
            if self.training: self.n += len(self.xb[0])
        def after_train(self): self.times.append(time.perf_counter()-self.t); self.items.append(self.n)
    timer = Timer()
    with train_ctx(learn), learn.no_bar(), learn.no_logging(): learn.fit(a.epochs, 1e-3, cbs=timer)
    items = gather_object(timer.items)  # images trained per epoch, per rank
    if is_main():
        rates = [sum(its[e] for its in items)/t for e,t in enumerate(timer.times)]
        print(json.dumps(dict(procs=world_size(), threads=torch.get_num_threads(), device=str(next(learn.model.parameters()).device),
                              images_per_epoch=sum(its[-1] for its in items), epoch_s=[round(t,2) for t in timer.times],
                              images_per_s=round(max(rates[1:] or rates), 1))), flush=True)
    distrib_teardown()

def launch(a, procs, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    if a.device == 'cpu': env['CUDA_VISIBLE_DEVICES'] = ''
    for k in ('RANK','WORLD_SIZE','LOCAL_RANK','MASTER_ADDR','MASTER_PORT'): env.pop(k, None)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(procs), __file__, '--worker',
           '--path', str(a.path), '--size', str(a.size), '--bs', str(a.bs), '--epochs', str(a.epochs)]
    t = time.perf_counter()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode: sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr[-4000:]}")
    res = json.loads([l for l in r.stdout.splitlines() if l.startswith('{')][-1])
    res['wall_s'] = round(time.perf_counter()-t, 1)
    return res

def main():
    cores = os.cpu_count()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--runs', nargs='+', default=None, help=f'PxT: P processes of T threads (default: 1x{cores} 1x1 2x{max(1, cores//2)})')
    p.add_argument('--n', type=int, default=400, help='images in the sample')
    p.add_argument('--size', type=int, default=64); p.add_argument('--bs', type=int, default=16, help='per process')
    p.add_argument('--epochs', type=int, default=3); p.add_argument('--device', default='auto', choices=['auto','cpu','cuda'])
    p.add_argument('--path', default=None, help='a pascal_2007-style folder (default: a generated sample of --n images)')
    p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker: return worker(a)
    runs = [tuple(map(int, r.split('x'))) for r in (a.runs or [f'1x{cores}', '1x1', f'2x{max(1, cores//2)}'])]
    import torch
    if a.device == 'auto': a.device = 'cuda' if torch.cuda.device_count() >= max(p for p,_ in runs) else 'cpu'
    if a.path is None:
        from multilabel_regress.datasets import get_pascal
        a.path = get_pascal(n_images=a.n, n_test=2)
    res = [launch(a, p, t) for p,t in runs]
    base = max(r['images_per_s'] for r in res if r['procs'] == 1) if any(r['procs'] == 1 for r in res) else res[0]['images_per_s']
    print(f"xresnet_small, {a.size} px, bs {a.bs} per process, {a.epochs} epochs, {cores} CPU cores, device {a.device}")
    print(f"{'processes':>9} {'threads/proc':>12} {'images/epoch':>12} {'images/s':>9} {'ratio':>6}   epoch times (s)")
    for r in res:
        print(f"{r['procs']:>9} {r['threads']:>12} {r['images_per_epoch']:>12} {r['images_per_s']:>9.1f} {r['images_per_s']/base:>6.2f}   {r['epoch_s']}")
    print("ratio: images/s over the best single-process run's")
    print(json.dumps(res))

if __name__ == '__main__': main()
