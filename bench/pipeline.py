"""Input pipeline on the PASCAL layout at 128 px, side by side on the same files in one run:

  (a) the book's DataBlock, verbatim (lambdas aside: named get_x/get_y, the is_valid splitter,
      RandomResizedCrop(128, min_scale=0.35));
  (b) ours, `pascal_dls` (JPEG draft-mode decoding, one resize per item);
  (c) the decode-bound limit: a plain loop over the same files that only decodes each JPEG
      (draft mode allowed) and resizes it to 128x128 with PIL, in the same number of processes;
  (d) for reference, the same plain loop decoding at full size (no draft mode): c/d is how much
      draft mode alone saves on these files, which bounds what b/a can get from decoding less.

    python bench/pipeline.py [--workers 2] [--epochs 2] [--bs 64] [--path PASCAL_FOLDER]

The four are measured in turns, one pass each per round, `--epochs` rounds, best pass kept for each, so
that a change in the machine's load hits all of them alike. Prints images/s for each and the ratios b/a
and b/c (targets: >= 3 and >= 0.8), and c/d. The machines here are noisy: compare the ratios, not
absolute figures, between runs.
"""
import argparse, time, os, json
from multiprocessing import Pool
from pathlib import Path
import pandas as pd
from PIL import Image

def book_dls(path, df, bs, workers):
    from fastai.vision.all import DataBlock, ImageBlock, MultiCategoryBlock, RandomResizedCrop
    def get_x(r): return path/'train'/r['fname']
    def get_y(r): return r['labels'].split(' ')
    def splitter(df):
        train = df.index[~df['is_valid']].tolist()
        valid = df.index[df['is_valid']].tolist()
        return train,valid
    dblock = DataBlock(blocks=(ImageBlock, MultiCategoryBlock), splitter=splitter, get_x=get_x, get_y=get_y,
                       item_tfms=RandomResizedCrop(128, min_scale=0.35))
    return dblock.dataloaders(df, bs=bs, num_workers=workers)

def our_dls(path, df, bs, workers):
    from multilabel_regress.pascal_data import pascal_dls
    return pascal_dls(path, size=128, bs=bs, num_workers=workers)

def epoch_rate(dl):
    "Images/s over one full pass of a training DataLoader (the first batch, with the workers' start-up, excluded)."
    it = iter(dl); next(it); n = 0; t = time.perf_counter()
    for xb,yb in it: n += len(xb)
    return n/(time.perf_counter()-t)

def _decode(f, size=128):
    im = Image.open(f); im.draft('RGB', (size, size)); return im.convert('RGB').resize((size, size), Image.BILINEAR).size

def _decode_full(f, size=128):
    return Image.open(f).convert('RGB').resize((size, size), Image.BILINEAR).size

def decode_rate(pool, fn, files):
    "Images/s of one pass of `fn` over `files` in `pool`'s processes."
    t = time.perf_counter(); pool.map(fn, files, chunksize=16)
    return len(files)/(time.perf_counter()-t)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--workers', type=int, default=min(os.cpu_count(), 8)); p.add_argument('--epochs', type=int, default=2)
    p.add_argument('--bs', type=int, default=64); p.add_argument('--path', default=None, help='a pascal_2007-style folder (default: the sample)')
    a = p.parse_args()
    from multilabel_regress.datasets import get_pascal
    path = Path(a.path) if a.path else get_pascal()
    df = pd.read_csv(path/'train.csv')
    files = [path/'train'/f for f in df.fname[~df.is_valid]]
    res = dict(images=len(files), workers=a.workers)
    dla, dlb = book_dls(path, df, a.bs, a.workers).train, our_dls(path, df, a.bs, a.workers).train
    keys = ('a_book','b_ours','c_decode','d_full_decode')
    runs = {k:[] for k in keys}
    with Pool(a.workers) as pool:
        pool.map(_decode, files[:a.workers*2])  # start the processes
        for r in range(a.epochs):
            runs['a_book'].append(epoch_rate(dla)); runs['b_ours'].append(epoch_rate(dlb))
            runs['c_decode'].append(decode_rate(pool, _decode, files)); runs['d_full_decode'].append(decode_rate(pool, _decode_full, files))
            print(f"round {r+1}: " + '  '.join(f'{k} {v[-1]:.0f}' for k,v in runs.items()), flush=True)
    for k in keys: res[k] = max(runs[k])
    for k in keys: print(f'{k:13}: {res[k]:7.0f} images/s')
    print(f"b/a = {res['b_ours']/res['a_book']:.2f} (target >= 3)   b/c = {res['b_ours']/res['c_decode']:.2f} (target >= 0.8)   "
          f"c/d = {res['c_decode']/res['d_full_decode']:.2f}   ({len(files)} train images, {a.workers} processes, bs {a.bs})")
    print(json.dumps({k:(round(v,1) if isinstance(v,float) else v) for k,v in res.items()}))

if __name__ == '__main__': main()
