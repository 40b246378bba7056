"""What BIWI's batch augmentation costs on a CPU, transform by transform, against leaner ways to do the same work.

On one batch of random uint8 frames already in memory (default 64x3x240x320, what a cache at the output size hands
the batch transforms), training mode, output 240x320, fastest of `--reps`:
  fastai:  `IntToFloatTensor`, `aug_transforms(size=(240,320))` (`Flip`, which carries the whole affine warp, and
           `Brightness`) and `Normalize`, each alone: what bounds the book's pipeline and `biwi_dls` on a CPU
           (`bench/pipeline.py` prints the same bound on real batches);
  lean:    the same kinds of work done plainly: the float conversion, ONE `grid_sample` (bilinear, reflection padding)
           with a random rotation/zoom/flip per image and its grid built by broadcasting (no `F.affine_grid`), and
           brightness and normalisation folded into one multiply-add per channel.
The lean column is not a drop-in replacement (fastai's `Brightness` works in logit space, the warp draws its parameters
differently, the points are not moved): it measures how much of fastai's cost is the work itself.

    python bench/batch_aug.py [--bs 64] [--size 240 320] [--reps 5] [--cores 2]
"""
import argparse, time, math, os

def restrict_cores(n):
    "Run on `n` of the CPU cores this process may use (as `taskset` does); before importing torch."
    cores = sorted(os.sched_getaffinity(0))
    if n and len(cores) > n: os.sched_setaffinity(0, cores[:n])
    return sorted(os.sched_getaffinity(0))

def fastest(f, reps):
    f(); ts = []
    for _ in range(reps): t = time.perf_counter(); f(); ts.append(time.perf_counter()-t)
    return min(ts)*1e3

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--bs', type=int, default=64); p.add_argument('--size', type=int, nargs=2, default=[240, 320])
    p.add_argument('--reps', type=int, default=5); p.add_argument('--cores', type=int, default=2)
    a = p.parse_args()
    cores = restrict_cores(a.cores)
    import torch, torch.nn.functional as F
    from fastai.vision.all import TensorImage, TensorPoint, IntToFloatTensor, aug_transforms, Normalize, imagenet_stats
    if a.cores: torch.set_num_threads(len(cores))
    torch.manual_seed(0); h,w = a.size; n = a.bs
    x8 = TensorImage(torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8)); pts = TensorPoint(torch.rand(n, 1, 2)*2-1)
    tfms = [IntToFloatTensor(), *aug_transforms(size=(h, w)), Normalize.from_stats(*imagenet_stats)]
    load = ' '.join(open('/proc/loadavg').read().split()[:3])
    print(f"batch {n}x3x{h}x{w} uint8, output {h}x{w}, {len(cores)} cores, {torch.get_num_threads()} torch threads, load average {load}")
    fa, b = {}, (x8, pts)
    for t in tfms:
        fa[type(t).__name__] = fastest(lambda: t(b, split_idx=0), a.reps); b = t(b, split_idx=0)
    # lean: the same kinds of work, plainly
    xf = x8.as_subclass(torch.Tensor)
    conv = fastest(lambda: xf.float().div_(255), a.reps); xs = xf.float().div_(255)
    def grid():
        ang = (torch.rand(n)*2-1)*math.radians(10); s = 1/torch.empty(n).uniform_(1, 1.1); fl = torch.where(torch.rand(n) < .5, -1., 1.)
        c,si = torch.cos(ang)*s, torch.sin(ang)*s
        gx_ = torch.linspace(-1+1/w, 1-1/w, w); gy_ = torch.linspace(-1+1/h, 1-1/h, h)
        gx = (c*fl)[:,None,None]*gx_[None,None,:] - si[:,None,None]*gy_[None,:,None]
        gy = (si*fl)[:,None,None]*gx_[None,None,:] + c[:,None,None]*gy_[None,:,None]
        return torch.stack((gx, gy), -1)
    warp = fastest(lambda: F.grid_sample(xs, grid(), mode='bilinear', padding_mode='reflection', align_corners=False), a.reps)
    mean,std = torch.tensor(imagenet_stats[0])[:,None,None], torch.tensor(imagenet_stats[1])[:,None,None]
    def bright_norm():
        k = torch.empty(n, 1, 1, 1).uniform_(0.8, 1.2)/std; return torch.addcmul(-mean/std, xs, k)
    bn = fastest(bright_norm, a.reps)
    lean = dict(float=conv, warp=warp, brightness_and_normalize=bn)
    tf, tl = sum(fa.values()), sum(lean.values())
    print("fastai, ms per batch: " + ', '.join(f'{k} {v:.1f}' for k,v in fa.items()) + f"  = {tf:.0f} ms, {n/tf*1e3:.0f} images/s")
    print("lean,   ms per batch: " + ', '.join(f'{k} {v:.1f}' for k,v in lean.items()) + f"  = {tl:.0f} ms, {n/tl*1e3:.0f} images/s")
    print(f"fastai / lean = {tf/tl:.1f}x")

if __name__ == '__main__': main()
