"""GPU: an epoch of `pascal_dls` (cached, the batch crop on the device) against compute-only throughput at the same batch size.

The training step is `gpu_step.py`'s: resnet50 at 128 px, bf16 autocast + channels_last, AdamW, BCE. For each `--bs`:
  compute only:  the step on one batch held in GPU memory (`--steps` steps after 5 warm-up ones);
  loader only:   passes over `pascal_dls(path, bs=bs).train` at its defaults, nothing trained (images/s it delivers);
  epoch:         the same step fed by that loader: `--epochs` timed passes after one warm-up pass.
The loader is the package's default: every image decoded once into the uint8 image cache (built before the first
measurement, timed and printed separately), batches gathered from it in the main process, moved to the GPU, then
`IntToFloatTensor`, `RandomResizedCropBatch` and `Normalize` run there. Prints images/s of each and epoch / compute only
(issue 15's target: >= 0.8). Batches reach the model as plain tensors in both cases (fastai's tensor subclasses add
Python work to every operation, which is not the loader's doing).

    python bench/gpu_pipeline.py [--bs 64 256] [--epochs 3] [--cores 2] [--cpu-smoke]

`--cores N` runs this process (loader included) on N CPU cores, as `taskset` does, with N torch threads.
The data is the VOC-sized generated sample of `gpu_train.py` (5011 images, 2572 for training), made if missing.
Needs a CUDA GPU (`--cpu-smoke`: a tiny run on the CPU, to check the script before spending GPU time).
"""
import argparse, os, time, json, datetime
from pathlib import Path

def restrict_cores(n):
    "Run this process and its children on `n` of the CPU cores it may use (as `taskset` does); must precede importing torch."
    cores = sorted(os.sched_getaffinity(0))
    if n and len(cores) > n: os.sched_setaffinity(0, cores[:n])
    return sorted(os.sched_getaffinity(0))

def voc_sample(smoke=False):
    "The VOC-sized generated PASCAL sample (5011 images; `smoke`: 60), made in `data_dir()/'samples'` if missing."
    from multilabel_regress.datasets import make_pascal_sample, data_dir
    dest = data_dir()/'samples'/('pascal_2007_smoke' if smoke else 'pascal_2007_voc_sized')
    if dest.exists(): return dest
    t = time.time(); p = make_pascal_sample(dest, n_images=60 if smoke else 5011, n_test=10, n_jobs=os.cpu_count())
    print(f'generated the PASCAL sample in {time.time()-t:.0f} s', flush=True)
    return p

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--bs', type=int, nargs='+', default=[64, 256]); p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--steps', type=int, default=30, help='compute-only steps timed')
    p.add_argument('--cores', type=int, default=0, help='CPU cores for this process (0: all it may use)')
    p.add_argument('--cpu-smoke', action='store_true', help='a tiny run on the CPU, to check this script before spending GPU time')
    a = p.parse_args()
    cores = restrict_cores(a.cores)
    import torch, torch.nn as nn, torchvision
    if a.cores: torch.set_num_threads(len(cores))
    cuda = torch.cuda.is_available()
    if not cuda and not a.cpu_smoke: print('gpu_pipeline: no CUDA GPU here; nothing measured (--cpu-smoke checks the script on the CPU)'); return
    smoke = a.cpu_smoke
    if smoke: a.bs,a.epochs,a.steps = [8],1,2
    dev = torch.device('cuda' if cuda else 'cpu')
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.backends.cudnn.benchmark = True
    from multilabel_regress.pascal_data import pascal_dls
    path = voc_sample(smoke)
    res = dict(date=datetime.date.today().isoformat(), gpu=torch.cuda.get_device_name() if cuda else 'cpu smoke test', torch=torch.__version__,
               cores=len(cores), torch_threads=torch.get_num_threads(), runs={})
    print(f"{res['gpu']}, torch {torch.__version__}, CPU cores {cores} of {os.cpu_count()}, torch threads {torch.get_num_threads()}", flush=True)

    def model_and_step(n_out):
        torch.manual_seed(0)
        m = (torchvision.models.resnet18 if smoke else torchvision.models.resnet50)(num_classes=n_out).to(dev).to(memory_format=torch.channels_last)
        opt = torch.optim.AdamW(m.parameters(), 1e-3); lf = nn.BCEWithLogitsLoss()
        def step(x, y):
            x = x.as_subclass(torch.Tensor).contiguous(memory_format=torch.channels_last); y = y.as_subclass(torch.Tensor).float()
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
                loss = lf(m(x).float(), y)
            opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        return step

    def timed_passes(dl, n, f):
        "Images/s over `n` passes of `dl`, each batch given to `f`, the GPU's queue drained at both ends."
        sync(); t = time.perf_counter(); k = 0
        for _ in range(n):
            for xb,yb in dl: f(xb, yb); k += len(xb)
        sync(); return k/(time.perf_counter()-t)

    for bs in a.bs:
        t = time.perf_counter(); dls = pascal_dls(path, bs=bs); build = time.perf_counter()-t
        dl = dls.train; c = next((f.cache for f in dl.dataset.tls[0].tfms.fs if getattr(f, 'cache', None) is not None), None)
        what = (f"cached at {c.presize[0]}x{c.presize[1]} ({c.built} of {len(c)} images decoded in this call)" if c is not None else 'NOT cached')
        print(f"bs {bs}: pascal_dls(path, bs={bs}) in {build:.1f} s, {len(dl.dataset)} training images {what}, "
              f"{dl.fake_l.num_workers} workers, device {dls.device}; batch transforms: {' + '.join(type(f).__name__ for f in dl.after_batch.fs)}", flush=True)
        step = model_and_step(len(dls.vocab))
        xb,yb = dl.one_batch()
        for _ in range(5): step(xb, yb)
        sync(); t = time.perf_counter()
        for _ in range(a.steps): step(xb, yb)
        sync(); compute = bs*a.steps/(time.perf_counter()-t)
        loader = timed_passes(dl, a.epochs, lambda x,y: None)
        timed_passes(dl, 1, step)  # warm-up epoch (cudnn's autotuning is done; this one settles the allocator)
        epoch = timed_passes(dl, a.epochs, step)
        r = dict(build_s=round(build, 2), compute=round(compute, 1), loader=round(loader, 1), epoch=round(epoch, 1), ratio=round(epoch/compute, 3))
        res['runs'][f'bs{bs}'] = r
        print(f"bs {bs}: compute only {compute:7.0f} images/s | loader only {loader:7.0f} | epoch {epoch:7.0f}  ->  epoch / compute only = "
              f"{epoch/compute:.2f} (target >= 0.8) on {len(cores)} CPU cores", flush=True)
    print(json.dumps(res))

if __name__ == '__main__': main()
