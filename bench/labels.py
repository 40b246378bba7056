"""BIWI labels, per-epoch cost, side by side in one run over every frame of the sample:

  (a) the book's `get_ctr`, verbatim: `np.genfromtxt` of the pose file for each item, each epoch, with the
      calibration read once from folder 01 (`np.genfromtxt(path/'01'/'rgb.cal', skip_footer=6)`);
  (b) ours: `BiwiPoses` (what `biwi_dls` uses) parses every pose file and each folder's calibration once per
      dataset; an epoch is then one dictionary look-up per item through its picklable getter.

    python bench/labels.py [--epochs 5] [--path BIWI_FOLDER]

Prints seconds per epoch for each, ours' one-time parse, and the ratio over `--epochs` epochs with the parse
counted (target >= 20x), plus the steady-state per-epoch ratio. Checks that both give the same centres.
Ratios only: the machines are noisy.
"""
import argparse, time, json
from pathlib import Path
import numpy as np, torch
from fastai.vision.all import get_image_files, tensor

def book_labels(path):
    "The book's label function, as chapter 6 writes it."
    cal = np.genfromtxt(path/'01'/'rgb.cal', skip_footer=6)
    def img2pose(x): return Path(f'{str(x)[:-7]}pose.txt')
    def get_ctr(f):
        ctr = np.genfromtxt(img2pose(f), skip_header=3)
        c1 = ctr[0] * cal[0][0]/ctr[2] + cal[0][2]
        c2 = ctr[1] * cal[1][1]/ctr[2] + cal[1][2]
        return tensor([c1,c2])
    return get_ctr

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--epochs', type=int, default=5); p.add_argument('--path', default=None, help='a biwi_head_pose-style folder (default: the sample)')
    a = p.parse_args()
    from multilabel_regress.datasets import get_biwi
    from multilabel_regress.biwi_data import BiwiPoses, read_cal
    path = Path(a.path) if a.path else get_biwi()
    files = get_image_files(path)
    book = book_labels(path)

    # (a) the book: every item parsed every epoch
    book_s = []
    for _ in range(a.epochs):
        t = time.perf_counter(); ya = [book(f) for f in files]; book_s.append(time.perf_counter()-t)
    # (b) ours: parse once (a fresh `BiwiPoses`, the calibration cache cleared so it is read again), then look up
    from multilabel_regress import biwi_data
    biwi_data._read_cal_cached.cache_clear()
    t = time.perf_counter(); poses = BiwiPoses(files); get_y = poses.getter('ctr'); build_s = time.perf_counter()-t
    ours_s = []
    for _ in range(a.epochs):
        t = time.perf_counter(); yb = [get_y(f) for f in files]; ours_s.append(time.perf_counter()-t)

    # same values? The book uses folder 01's calibration for everyone; ours reads each folder's.
    A,B = torch.stack(ya).float(), torch.stack(yb).float()
    same_cal = all(np.allclose(read_cal(f.parent), read_cal(path/'01')) for f in {f.parent: f for f in files}.values())
    diff = float((A-B).abs().max())
    print(f"{len(files)} frames in {len({f.parent for f in files})} folders, {a.epochs} epochs; every folder's rgb.cal equals folder 01's: {same_cal}")
    print(f"max |book - ours| = {diff:.2e} px  ->  {'same values' if diff < 1e-3 else 'DIFFERENT'}")
    bk, ou = float(np.median(book_s)), float(np.median(ours_s))
    print(f"(a) book get_ctr : {bk*1e3:9.2f} ms/epoch  ({bk/len(files)*1e6:.1f} us/item)")
    print(f"(b) ours         : {ou*1e3:9.3f} ms/epoch  ({ou/len(files)*1e6:.2f} us/item) + {build_s*1e3:.1f} ms once (BiwiPoses: parse every pose file and calibration)")
    tot = sum(book_s)/(build_s+sum(ours_s))
    print(f"ratio over {a.epochs} epochs, the one-time parse counted: {tot:.1f}x (target >= 20x)   steady-state per epoch: {bk/ou:.0f}x")
    need = build_s/(bk/20-ou) if bk/20 > ou else float('inf')  # epochs E with E*bk >= 20*(build + E*ou)
    print(f"with the parse counted, 20x needs >= {need:.0f} epochs" if need != float('inf') else "20x is out of reach even per epoch")
    print(json.dumps(dict(frames=len(files), epochs=a.epochs, book_ms_epoch=round(bk*1e3,2), ours_ms_epoch=round(ou*1e3,3),
                          ours_build_ms=round(build_s*1e3,1), ratio_total=round(tot,1), ratio_epoch=round(bk/ou,1), max_abs_diff_px=diff)))

if __name__ == '__main__': main()
