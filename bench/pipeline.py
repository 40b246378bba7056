"""Input pipelines against the book's, side by side in one run (issue 15's target, and the older steady-state figures).

Default (the target of issue 15): on `--cores` CPU cores (2), each side at its own default settings, each turn on
FRESH copies of the sample's files (copied into a new temporary folder) with an EMPTY image cache
(`MULTILABEL_REGRESS_DATA` pointing at a new temporary folder), the clock running from the call that builds the
`DataLoaders` to the end of the last of `--epochs` (7, the chapter's `fine_tune(3, freeze_epochs=4)`) passes over the
training loader:

  PASCAL, 128 px:  book: the book's DataBlock verbatim (ImageBlock, MultiCategoryBlock, get_x/get_y, a splitter on
                   `is_valid`, item_tfms=RandomResizedCrop(128, min_scale=0.35), `dblock.dataloaders(df)`: bs 64 and
                   fastai's default workers);
                   ours: `pascal_dls(path)` (the image cache is built inside that call, so its first build is counted);
                   ours, cache=False: `pascal_dls(path, cache=False)`, the decode-every-epoch pipeline.
  BIWI, 240x320:   book: the book's BIWI DataBlock verbatim (ImageBlock, PointBlock, get_image_files, the book's
                   `get_ctr`, person 13 held out by a lambda, batch_tfms=[*aug_transforms(size=(240,320)),
                   Normalize.from_stats(*imagenet_stats)], `biwi.dataloaders(path)`);
                   ours: `biwi_dls(path)` (since issue 25 augmented by `point_aug_transforms`, one pass); ours, cache=False: `biwi_dls(path, cache=False)` where `biwi_dls` takes
                   that option (without it, its default is the decode-every-epoch pipeline and the turn is skipped).

The sides run in alternating turns, `--pairs` pairs (book then ours; ours with cache=False in the first
`--nocache-pairs` pairs), and the figure to read is the median of the per-pair ratios ours/book (target >= 3).
Each turn prints images/s over the whole run (construction counted), the construction time (for ours: the cache's
first build), and images/s from epoch 2 on (steady state). Then the bound of each side: its own batch transforms
(`dl.after_batch`: for BIWI `IntToFloatTensor`, `aug_transforms(size=(240,320))` and `Normalize`) applied over and over
to one batch already in memory (for the book the collated 64x3x480x640 uint8 frames, for ours its cached, presized
uint8 batch; the fastest of 5 runs), in images/s, and how close each side's steady state comes to it. For BIWI, last, the
augmentation alone (issue 25's second target): fastai's `aug_transforms(size=(240,320))` against `point_aug_transforms(size=(240,320))`
(what `biwi_dls` uses by default since issue 25) on the same batch of ours in memory (converted to floats) with its points,
alternating, fastest of 5 in each of 3 rounds (target >= 3).

    python bench/pipeline.py [--only pascal|biwi] [--pairs 3] [--biwi-pairs 3] [--epochs 7] [--cores 2]

`--steady` runs the older measurement instead (BENCHMARKS.md sections 1 before issue 15): steady-state images/s of
(a) the book's DataBlock, (b) `pascal_dls` (its default: cached), (b0) `pascal_dls(cache=False)`, (c) a plain PIL loop
that decodes (draft mode) and resizes each JPEG to 128x128 in the same number of processes, (d) the same loop at full
size; in turns, best of `--epochs` rounds, after construction (so without the cache's build).

    python bench/pipeline.py --steady [--workers 2] [--epochs 2] [--bs 64]

The machines here are shared and noisy: compare the ratios measured in one run, not absolute figures between runs.
"""
import argparse, time, os, json, sys, shutil, tempfile, statistics, inspect, gc
from pathlib import Path

def restrict_cores(n):
    "Run this process and its children on `n` of the CPU cores it may use (as `taskset` does); must precede importing torch."
    cores = sorted(os.sched_getaffinity(0))
    if n and len(cores) > n: os.sched_setaffinity(0, cores[:n])
    return sorted(os.sched_getaffinity(0))

# ---------------------------------------------------------------------------------------------- the sides
def book_pascal(path, bs=None, workers=None):
    "The book's multi-label DataBlock, as chapter 6 writes it (named functions instead of lambdas)."
    import pandas as pd
    from fastai.vision.all import DataBlock, ImageBlock, MultiCategoryBlock, RandomResizedCrop
    df = pd.read_csv(path/'train.csv')
    def get_x(r): return path/'train'/r['fname']
    def get_y(r): return r['labels'].split(' ')
    def splitter(df):
        train = df.index[~df['is_valid']].tolist()
        valid = df.index[df['is_valid']].tolist()
        return train,valid
    dblock = DataBlock(blocks=(ImageBlock, MultiCategoryBlock), splitter=splitter, get_x=get_x, get_y=get_y,
                       item_tfms=RandomResizedCrop(128, min_scale=0.35))
    kw = {k:v for k,v in dict(bs=bs, num_workers=workers).items() if v is not None}
    return dblock.dataloaders(df, **kw)

def book_dls(path, df, bs, workers):
    "The book's multi-label `DataLoaders` with `bs` and `workers` set (`bench/train_step.py`); `df` is read again from `path`."
    return book_pascal(path, bs, workers)

def our_dls(path, df, bs, workers):
    "`pascal_dls` with `bs` and `workers` set (`bench/train_step.py`), otherwise its defaults."
    from multilabel_regress.pascal_data import pascal_dls
    return pascal_dls(path, size=128, bs=bs, num_workers=workers)

def book_biwi(path):
    "The book's BIWI DataBlock, as chapter 6 writes it."
    import numpy as np
    from fastai.vision.all import (DataBlock, ImageBlock, PointBlock, get_image_files, FuncSplitter, aug_transforms,
                                   Normalize, imagenet_stats, tensor)
    img2pose = lambda x: Path(f'{str(x)[:-7]}pose.txt')
    cal = np.genfromtxt(path/'01'/'rgb.cal', skip_footer=6)
    def get_ctr(f):
        ctr = np.genfromtxt(img2pose(f), skip_header=3)
        c1 = ctr[0] * cal[0][0]/ctr[2] + cal[0][2]
        c2 = ctr[1] * cal[1][1]/ctr[2] + cal[1][2]
        return tensor([c1,c2])
    biwi = DataBlock(
        blocks=(ImageBlock, PointBlock),
        get_items=get_image_files,
        get_y=get_ctr,
        splitter=FuncSplitter(lambda o: o.parent.name=='13'),
        batch_tfms=[*aug_transforms(size=(240,320)),
                    Normalize.from_stats(*imagenet_stats)]
    )
    return biwi.dataloaders(path)

def has_cache_option(f): return 'cache' in inspect.signature(f).parameters

def sides(task):
    "[(name, make(path) -> DataLoaders, nocache)] for `task`; a side is `None` where it does not exist."
    from multilabel_regress.pascal_data import pascal_dls
    from multilabel_regress.biwi_data import biwi_dls
    if task == 'pascal': return [('book', book_pascal, False), ('ours', pascal_dls, False),
                                 ('ours, cache=False', lambda p: pascal_dls(p, cache=False), True)]
    return [('book', book_biwi, False), ('ours', biwi_dls, False),
            ('ours, cache=False', (lambda p: biwi_dls(p, cache=False)) if has_cache_option(biwi_dls) else None, True)]

# ---------------------------------------------------------------------------------------------- measuring
def cache_of(dls):
    "The `ImageCache` behind `dls`'s training items, if any."
    from multilabel_regress.image_cache import ImageCache
    for tl in getattr(dls.train.dataset, 'tls', []):
        for t in tl.tfms.fs:
            if isinstance(getattr(t, 'cache', None), ImageCache): return t.cache
    return None

def turn(make, src, epochs, root):
    "Time `make(copy)` and `epochs` passes over its training loader, on a fresh copy of `src` with an empty cache."
    d = Path(tempfile.mkdtemp(prefix='turn-', dir=root)); copy = d/src.name
    shutil.copytree(src, copy)
    os.environ['MULTILABEL_REGRESS_DATA'] = str(d/'cache')  # empty: `data_dir()/'images'` is built from scratch
    gc.collect()
    t0 = time.perf_counter(); dls = make(copy); build = time.perf_counter()-t0
    n,ends = [],[]
    for _ in range(epochs):
        k = 0
        for b in dls.train: k += len(b[0])
        n.append(k); ends.append(time.perf_counter()-t0)
    c = cache_of(dls)
    r = dict(construct_s=build, total_s=ends[-1], images=sum(n), rate=sum(n)/ends[-1],
             steady=sum(n[1:])/(ends[-1]-ends[0]) if epochs > 1 else None, workers=dls.train.fake_l.num_workers, bs=dls.train.bs,
             cache=(dict(n=len(c), decoded=c.built, presize=c.presize, mib=round(c.pixels.nbytes/2**20, 1)) if c is not None else None))
    return r, dls, d

def raw_batch(dl):
    "One training batch of `dl` as its loader collates it, before the batch transforms (in this process)."
    from fastai.vision.all import Pipeline
    return dl.new(num_workers=0, after_batch=Pipeline([]), shuffle=True, drop_last=True).one_batch()

def bound(dl, reps=5, at=None):
    "Images/s of `dl`'s own batch transforms (training mode) on one batch already in memory, fastest of `reps`: the rate with free loading; `at`: the batch resized to (h, w) first."
    b = raw_batch(dl); x = b[0]
    if at is not None and tuple(x.shape[-2:]) != tuple(at):
        import torch.nn.functional as F
        x = type(x)(F.interpolate(x.float(), size=at, mode='bilinear').round().clamp(0, 255).to(x.dtype)); b = (x, *b[1:])
    pipe = dl.after_batch; pipe.split_idx = 0
    pipe(b); ts = []  # warm-up
    for _ in range(reps): t = time.perf_counter(); pipe(b); ts.append(time.perf_counter()-t)
    each = [float('inf')]*len(pipe.fs)  # ms per batch of each transform, fastest of 3
    for _ in range(3):
        o = b
        for i,f in enumerate(pipe.fs): t = time.perf_counter(); o = f(o, split_idx=0); each[i] = min(each[i], (time.perf_counter()-t)*1e3)
    return dict(rate=len(x)/min(ts), shape=list(x.shape), dtype=str(x.dtype).replace('torch.', ''),
                tfms=[type(f).__name__ for f in pipe.fs], ms=[round(v, 1) for v in each])

def aug_alone(dl, reps=5, rounds=3):
    "The augmentation alone on one of `dl`'s batches already in memory (converted to float, training mode): fastai's `aug_transforms(size)` against `point_aug_transforms(size)` on the same batch and points, alternating, fastest of `reps` in each of `rounds`; ms per batch."
    from fastai.vision.all import aug_transforms, IntToFloatTensor
    from multilabel_regress.biwi_data import point_aug_transforms
    x,y = raw_batch(dl)[:2]; size = tuple(x.shape[-2:]); b = (IntToFloatTensor()(x), y)
    sides = dict(fastai=aug_transforms(size=size), ours=point_aug_transforms(size=size))
    def run(tfms):
        o = b
        for t in tfms: o = t(o, split_idx=0)
        return o
    ms = {k:[] for k in sides}
    for _ in range(rounds):
        for k,tfms in sides.items():
            run(tfms); ts = []
            for _ in range(reps): t = time.perf_counter(); run(tfms); ts.append(time.perf_counter()-t)
            ms[k].append(min(ts)*1e3)
    return dict(shape=list(x.shape), ms={k:round(min(v), 1) for k,v in ms.items()}, rounds={k:[round(t, 1) for t in v] for k,v in ms.items()},
                tfms={k:[type(t).__name__ for t in v] for k,v in sides.items()})

def fmt_turn(name, r):
    s = f"{name:17}: {r['rate']:6.0f} images/s ({r['images']} images in {r['total_s']:6.1f} s; construction {r['construct_s']:5.2f} s"
    if r['cache']: c = r['cache']; s += f", of it the cache's build: {c['decoded']} of {c['n']} images decoded at {c['presize'][0]}x{c['presize'][1]}, {c['mib']} MiB"
    s += f"; from epoch 2 on {r['steady']:.0f} images/s; bs {r['bs']}, {r['workers']} workers)" if r['steady'] else ')'
    return s

def target(task, src, pairs, nocache_pairs, epochs, root):
    "Alternate the book's and our loaders `pairs` times on fresh copies with empty caches; print each turn, the ratios and the bounds."
    sd = sides(task); res = {n:[] for n,_,_ in sd}; bounds = {}; last_ours = None
    label = dict(pascal='PASCAL 128 px', biwi='BIWI frames 240x320')[task]
    print(f"== {label}: {src.name}, {epochs} epochs per turn, each side's defaults, fresh copies and an empty cache each turn", flush=True)
    if sd[2][1] is None: print("   (biwi_dls takes no `cache` option here: its default is the decode-every-epoch pipeline; no cache=False turn)")
    for p in range(pairs):
        for name,make,nocache in sd:
            if make is None or (nocache and p >= nocache_pairs): continue
            r,dls,d = turn(make, src, epochs, root)
            res[name].append(r); print(f"pair {p+1} {fmt_turn(name, r)}", flush=True)
            if p == pairs-1 and not nocache:
                bounds[name] = bound(dls.train)
                if name == 'ours': last_ours = dls
                if task == 'biwi' and name == 'book': bounds['book, frames presized to 240x320'] = bound(dls.train, at=(240,320))
            if dls is not last_ours: del dls; gc.collect(); shutil.rmtree(d, ignore_errors=True)  # ours' last: its batch is augmented alone below
        print(f"pair {p+1} ours/book = {res['ours'][-1]['rate']/res['book'][-1]['rate']:.2f}", flush=True)
    ratios = [o['rate']/b['rate'] for o,b in zip(res['ours'], res['book'])]
    steady = [o['steady']/b['steady'] for o,b in zip(res['ours'], res['book'])] if epochs > 1 else []
    print(f"{label}: ours/book over {epochs} epochs, construction and the cache's first build counted: "
          f"median {statistics.median(ratios):.2f} (target >= 3); pairs: {', '.join(f'{x:.2f}' for x in ratios)}")
    for n,rs in res.items():
        if rs: print(f"   {n:17}: median {statistics.median(r['rate'] for r in rs):6.0f} images/s, construction median {statistics.median(r['construct_s'] for r in rs):5.1f} s"
                     + (f", from epoch 2 on {statistics.median(r['steady'] for r in rs):.0f} images/s" if epochs > 1 else ''))
    if steady: print(f"   steady state (epochs 2-{epochs}) ours/book: median {statistics.median(steady):.2f}")
    if res['ours, cache=False']:
        nc = [o['rate']/b['rate'] for o,b in zip(res['ours, cache=False'], res['book'])]
        print(f"   ours with cache=False / book: {', '.join(f'{x:.2f}' for x in nc)}")
    for n,b in bounds.items():
        if set(b['tfms']) <= {'IntToFloatTensor', 'Normalize'}:
            print(f"bound, {label}, {n:4}: its batch transforms only convert ({' + '.join(b['tfms'])}: {b['rate']:.0f} images/s on a batch in memory); "
                  f"its augmentation is an item transform, in its loader's workers"); continue
        if n not in res:
            print(f"bound, {label}, {n}: the same transforms on the same batch squished to 240x320 uint8 first (what they cost at the output size): "
                  f"{b['rate']:.0f} images/s; ms per batch: " + ', '.join(f'{t} {v}' for t,v in zip(b['tfms'], b['ms']))); continue
        st = res[n][-1]['steady'] or res[n][-1]['rate']  # the last pair's turn: the bound was measured right after it
        print(f"bound, {label}, {n:4}: its batch transforms alone on a {'x'.join(map(str, b['shape']))} {b['dtype']} batch in memory "
              f"({' + '.join(b['tfms'])}): {b['rate']:.0f} images/s; its steady state in pair {pairs} ({st:.0f} images/s) is {st/b['rate']:.2f} of it")
        print(f"   ms per batch of {b['shape'][0]}, each transform alone: " + ', '.join(f'{t} {v}' for t,v in zip(b['tfms'], b['ms'])))
    alone = None
    if task == 'biwi' and last_ours is not None:
        alone = aug_alone(last_ours.train)
        fa,ou = alone['ms']['fastai'],alone['ms']['ours']
        print(f"augmentation alone, {label}: on one {'x'.join(map(str, alone['shape']))} batch of ours in memory (as floats), training mode, the same batch "
              f"and points, alternating, fastest of 5 in each of 3 rounds: fastai's aug_transforms ({' + '.join(alone['tfms']['fastai'])}) {fa:.1f} ms "
              f"({alone['shape'][0]/fa*1e3:.0f} images/s), point_aug_transforms ({' + '.join(alone['tfms']['ours'])}) {ou:.1f} ms ({alone['shape'][0]/ou*1e3:.0f} images/s): "
              f"**{fa/ou:.2f}x** (target >= 3); rounds: fastai {alone['rounds']['fastai']}, ours {alone['rounds']['ours']}")
    return dict(task=task, ratios=[round(x, 3) for x in ratios], median=round(statistics.median(ratios), 3), aug_alone=alone,
                turns={k:[{kk:(round(vv, 2) if isinstance(vv, float) else vv) for kk,vv in r.items()} for r in v] for k,v in res.items()},
                bounds={k:dict(rate=round(v['rate'], 1), shape=v['shape'], ms=dict(zip(v['tfms'], v['ms']))) for k,v in bounds.items()})

# ---------------------------------------------------------------------------------------------- the older measurement
def _decode(f, size=128):
    from PIL import Image
    im = Image.open(f); im.draft('RGB', (size, size)); return im.convert('RGB').resize((size, size), Image.BILINEAR).size

def _decode_full(f, size=128):
    from PIL import Image
    return Image.open(f).convert('RGB').resize((size, size), Image.BILINEAR).size

def epoch_rate(dl):
    "Images/s over one full pass of a training DataLoader (the first batch, with the workers' start-up, excluded)."
    it = iter(dl); next(it); n = 0; t = time.perf_counter()
    for xb,yb in it: n += len(xb)
    return n/(time.perf_counter()-t)

def decode_rate(pool, fn, files):
    "Images/s of one pass of `fn` over `files` in `pool`'s processes."
    t = time.perf_counter(); pool.map(fn, files, chunksize=16)
    return len(files)/(time.perf_counter()-t)

def steady_main(a):
    "Steady-state images/s of the book's loader, ours (cached, and cache=False) and the plain decode loops, in turns, best of rounds."
    from multiprocessing import Pool
    import pandas as pd
    from multilabel_regress.datasets import get_pascal
    from multilabel_regress.pascal_data import pascal_dls
    path = Path(a.path) if a.path else get_pascal()
    df = pd.read_csv(path/'train.csv')
    files = [path/'train'/f for f in df.fname[~df.is_valid]]
    res = dict(images=len(files), workers=a.workers)
    dls = dict(a_book=book_pascal(path, a.bs, a.workers).train, b_ours=pascal_dls(path, bs=a.bs, num_workers=a.workers).train,
               b0_ours_nocache=pascal_dls(path, bs=a.bs, num_workers=a.workers, cache=False).train)
    keys = (*dls, 'c_decode', 'd_full_decode')
    runs = {k:[] for k in keys}
    with Pool(a.workers) as pool:
        pool.map(_decode, files[:a.workers*2])  # start the processes
        for r in range(a.epochs):
            for k,dl in dls.items(): runs[k].append(epoch_rate(dl))
            runs['c_decode'].append(decode_rate(pool, _decode, files)); runs['d_full_decode'].append(decode_rate(pool, _decode_full, files))
            print(f"round {r+1}: " + '  '.join(f'{k} {v[-1]:.0f}' for k,v in runs.items()), flush=True)
    for k in keys: res[k] = max(runs[k])
    for k in keys: print(f'{k:15}: {res[k]:7.0f} images/s')
    print(f"b/a = {res['b_ours']/res['a_book']:.2f}   b0/a = {res['b0_ours_nocache']/res['a_book']:.2f}   b/c = {res['b_ours']/res['c_decode']:.2f}   "
          f"b0/c = {res['b0_ours_nocache']/res['c_decode']:.2f}   c/d = {res['c_decode']/res['d_full_decode']:.2f}   "
          f"({len(files)} train images, {a.workers} processes, bs {a.bs}; steady state, the cache already built)")
    print(json.dumps({k:(round(v,1) if isinstance(v,float) else v) for k,v in res.items()}))

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--only', choices=['pascal','biwi'], default=None, help='one dataset only (default: both)')
    p.add_argument('--pairs', type=int, default=3, help='PASCAL: turns of (book, ours), alternating')
    p.add_argument('--biwi-pairs', type=int, default=3, help='BIWI: turns of (book, ours), alternating')
    p.add_argument('--nocache-pairs', type=int, default=1, help='in how many pairs ours with cache=False runs too')
    p.add_argument('--epochs', type=int, default=None, help='passes per turn (default 7); with --steady: rounds (default 2)')
    p.add_argument('--cores', type=int, default=2, help='CPU cores to run on (0: all); the target is for 2')
    p.add_argument('--pascal', default=None, help='a pascal_2007-style folder (default: the sample)')
    p.add_argument('--biwi', default=None, help='a biwi_head_pose-style folder (default: the sample)')
    p.add_argument('--steady', action='store_true', help='the older steady-state measurement instead (see above)')
    p.add_argument('--workers', type=int, default=min(os.cpu_count(), 8), help='--steady: loader/decoder processes')
    p.add_argument('--bs', type=int, default=64, help='--steady: batch size')
    p.add_argument('--path', default=None, help='--steady: a pascal_2007-style folder (default: the sample)')
    p.add_argument('--json', default=None, help='also write the figures to this file')
    a = p.parse_args()
    cores = restrict_cores(a.cores)
    import torch
    if a.cores: torch.set_num_threads(len(cores))
    load = ' '.join(open('/proc/loadavg').read().split()[:3]) if os.path.exists('/proc/loadavg') else '?'
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: cores {cores} of {os.cpu_count()}, torch threads {torch.get_num_threads()}, "
          f"load average {load}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}", flush=True)
    if a.steady: a.epochs = a.epochs or 2; return steady_main(a)
    a.epochs = a.epochs or 7
    from multilabel_regress.datasets import get_pascal, get_biwi
    srcs = dict(pascal=Path(a.pascal) if a.pascal else get_pascal('sample'), biwi=Path(a.biwi) if a.biwi else get_biwi('sample'))
    out = []
    with tempfile.TemporaryDirectory(prefix='mlr-bench-') as root:
        for task,pairs in (('pascal', a.pairs), ('biwi', a.biwi_pairs)):
            if a.only in (None, task) and pairs > 0: out.append(target(task, srcs[task], pairs, a.nocache_pairs, a.epochs, root))
    load = ' '.join(open('/proc/loadavg').read().split()[:3]) if os.path.exists('/proc/loadavg') else '?'
    print(f"{time.strftime('%H:%M UTC', time.gmtime())}: done, load average {load}")
    print(json.dumps([dict(task=o['task'], median=o['median'], ratios=o['ratios'], bounds=o['bounds'], aug_alone=o.get('aug_alone')) for o in out]))
    if a.json: Path(a.json).write_text(json.dumps(out, indent=1))

if __name__ == '__main__': main()
