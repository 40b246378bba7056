"""Where a training epoch of the decode-every-epoch `pascal_dls(cache=False)` spends its time, in one process and one thread.

(What bounded b/c in `pipeline.py --steady` before issue 15; `pascal_dls`'s default now decodes each image once, into the
image cache, so there is no decoding left in its epochs to profile.)

Prints, for the training images of the PASCAL sample (or `--path`): microseconds per image for (c) the plain decode
loop of `pipeline.py` and for (b) `pascal_dls` (a whole epoch, and items + `after_item` alone), then a cProfile of one
epoch: the share of JPEG decoding and resizing, and the rest (fastai's per-item transforms, collation, batch transforms).
"""
import argparse, cProfile, pstats, time, warnings
warnings.filterwarnings('ignore', message='.*torch.jit.script.*')
from pathlib import Path
import pandas as pd, torch
from PIL import Image

def _decode(f, size=128):
    im = Image.open(f); im.draft('RGB', (size, size)); return im.convert('RGB').resize((size, size), Image.BILINEAR).size

def best(f, k=3):
    "The fastest of `k` runs of `f`, in seconds."
    r = []
    for _ in range(k): t = time.perf_counter(); f(); r.append(time.perf_counter()-t)
    return min(r)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--path', default=None, help='a pascal_2007-style folder (default: the sample)')
    a = p.parse_args()
    torch.set_num_threads(1)
    from multilabel_regress.datasets import get_pascal
    from multilabel_regress.pascal_data import pascal_dls
    path = Path(a.path) if a.path else get_pascal()
    df = pd.read_csv(path/'train.csv'); files = [path/'train'/f for f in df.fname[~df.is_valid]]
    dl = pascal_dls(path, size=128, bs=64, num_workers=0, seed=0, cache=False).train; ds = dl.dataset; n = len(ds)
    for _ in dl: pass  # warm up
    c = best(lambda: [_decode(f) for f in files])/len(files)
    items = best(lambda: [dl.after_item(ds[i]) for i in range(n)])/n
    seen = sum(len(xb) for xb,_ in dl)  # the training loader drops the last partial batch
    epoch = best(lambda: [None for _ in dl])/seen
    print(f"one process, one thread, {n} training images, 128 px")
    print(f"(c) plain decode loop                        : {c*1e6:7.0f} us/image")
    print(f"(b) pascal_dls(cache=False), items+after_item: {items*1e6:7.0f} us/image")
    print(f"(b) pascal_dls(cache=False), whole epoch     : {epoch*1e6:7.0f} us/image   (b/c in one process: {c/epoch:.2f})")
    pr = cProfile.Profile(); pr.enable()
    for _ in dl: pass
    pr.disable()
    st = pstats.Stats(pr); tot = st.total_tt
    own = {f[2]: v[2] for f,v in st.stats.items()}  # function name -> time spent in it alone
    dec = own.get("<method 'decode' of 'ImagingDecoder' objects>", 0.); rs = own.get("<method 'resize' of 'ImagingCore' objects>", 0.)
    print(f"cProfile of one epoch: {tot:.3f} s; JPEG decoding {dec:.3f} s ({dec/tot:.0%}), resizing {rs:.3f} s ({rs/tot:.0%}), "
          f"everything else {tot-dec-rs:.3f} s ({(tot-dec-rs)/tot:.0%})")
    st.sort_stats('cumtime').print_stats(r'(load\.py.*do_item|create_item|after_item|encodes|__getitem__|collate|after_batch)', 12)

if __name__ == '__main__': main()
