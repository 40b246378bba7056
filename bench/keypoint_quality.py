"""The chapter's key-point figures (steps 3 and 4 of `mlr chapter` on the sample) with each batch augmentation, side by side.

Steps 3 and 4 of `mlr chapter`, unchanged: `train_keypoint(sample, 'ctr', 'xresnet_small', (96,128), 4, 3e-3, 32)` (the
head centre: RMSE on person 13 in pixels and in % of the width, as the chapter prints it) and `train_keypoint(sample,
'angles', 'xresnet_small', (64,64), 30, 1e-2, 32, crop_px=160)` (the head pose on crops: MAE in degrees), seed 42, once
with the loaders' default augmentation (`point_aug_transforms` for the centre, the one-pass lighting for the crops:
`aug=True`) and once with the book's (`aug='fastai'`: `aug_transforms`, fastai's `Brightness` and `Contrast`), in turns.
The chapter's figures before issue 25 (nbs/12_cli.ipynb, fastai's augmentation): centre 9.52 px (1.49%), pose 1.69 deg.

    python bench/keypoint_quality.py [--only ctr|angles] [--augs ours fastai] [--pose-epochs 30] [--seeds 42 0 1]
"""
import argparse, time, functools, json, os
from pathlib import Path

def run(target, aug, pose_epochs, seed=42):
    "Train the chapter's model for `target` with the loaders' augmentation `aug`, from `seed`; (figures, seconds)."
    import multilabel_regress.recipes as recipes  # the chapter's recipes (`mlr chapter` runs these)
    from multilabel_regress.predictions import centre_errors
    from multilabel_regress.images import image_sizes
    from multilabel_regress.biwi_data import biwi_dls, pose_dls, ANGLE_SCALE
    from multilabel_regress.datasets import get_biwi
    real = dict(biwi_dls=biwi_dls, pose_dls=pose_dls)
    for k,f in real.items(): setattr(recipes, k, functools.partial(f, aug=True if aug == 'ours' else 'fastai'))
    try:
        t0 = time.time(); biwi = get_biwi('sample')
        if target == 'ctr':
            learn,meta,preds,targs = recipes.train_keypoint(biwi, 'ctr', 'xresnet_small', (96,128), 4, 3e-3, 32, False, seed=seed)
            files = list(learn.dls.valid.items); _,_,rmse = centre_errors(preds, targs, files)
            res = dict(rmse_px=round(rmse, 2), rmse_pct_width=round(rmse/float(image_sizes(files)[:,0].mean())*100, 2))
        else:
            learn,meta,preds,targs = recipes.train_keypoint(biwi, 'angles', 'xresnet_small', (64,64), pose_epochs, 1e-2, 32, False, crop_px=160, seed=seed)
            e = (preds.view(-1,3)-targs.view(-1,3)).abs()*ANGLE_SCALE
            res = dict(mae_deg=round(float(e.mean()), 2), yaw=round(float(e[:,0].mean()), 2), pitch=round(float(e[:,1].mean()), 2), roll=round(float(e[:,2].mean()), 2))
        aug_tfms = [type(t).__name__ for t in learn.dls.train.after_batch.fs]
        return dict(res, after_batch=aug_tfms), time.time()-t0
    finally:
        for k,f in real.items(): setattr(recipes, k, f)

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--only', choices=['ctr','angles'], default=None)
    p.add_argument('--augs', nargs='+', default=['ours','fastai'], choices=['ours','fastai'])
    p.add_argument('--pose-epochs', type=int, default=30, help="the chapter's 30; fewer only to check the script runs")
    p.add_argument('--seeds', type=int, nargs='+', default=[42], help="the chapter's 42; several to see the spread between seeds")
    a = p.parse_args()
    load = lambda: ' '.join(open('/proc/loadavg').read().split()[:3]) if os.path.exists('/proc/loadavg') else '?'
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: load average {load()}", flush=True)
    out = []
    for target in ('ctr','angles'):
        if a.only not in (None, target): continue
        for seed in a.seeds:
            for aug in a.augs:
                r,s = run(target, aug, a.pose_epochs, seed)
                out.append(dict(target=target, aug=aug, seed=seed, seconds=round(s, 1), load=load(), **r))
                print(f"{target:6} seed {seed:3} aug={aug:6}: {json.dumps(r)}  ({s:.0f} s, load average {load()})", flush=True)
    print(json.dumps(out))

if __name__ == '__main__': main()
