"""The chapter's head-pose model (step 4 of `mlr chapter` on the sample) trained by the code of any commit, at given seeds.

To compare a commit's figures with main's on the same machine, check the commit out beside this repository and put it first
on the path (the same environment, its own generated sample):

    git worktree add /tmp/old f3d7c5a
    MULTILABEL_REGRESS_DATA=/tmp/old_data PYTHONPATH=/tmp/old python bench/pose_at_commit.py 42 0 1
    python bench/pose_at_commit.py 42 0 1        # main

Each seed prints one JSON line: the package that ran, the seed, the MAE on person 13 (degrees), yaw/pitch/roll, the
batch transforms the loaders used, and the seconds. The recipe lives in `recipes` since issue 21, in `cli` before it.
"""
import sys, json, time, importlib

def main(seeds):
    try: rec = importlib.import_module('multilabel_regress.recipes')
    except ImportError: rec = importlib.import_module('multilabel_regress.cli')
    import multilabel_regress
    from multilabel_regress.datasets import get_biwi
    from multilabel_regress.biwi_data import ANGLE_SCALE
    biwi = get_biwi('sample')
    for seed in seeds:
        t0 = time.time()
        learn,meta,preds,targs = rec.train_keypoint(biwi, 'angles', 'xresnet_small', (64,64), 30, 1e-2, 32, False, crop_px=160, seed=seed)
        e = (preds.view(-1,3)-targs.view(-1,3)).abs()*ANGLE_SCALE
        print(json.dumps(dict(code=multilabel_regress.__file__, seed=seed, mae=round(float(e.mean()), 3), ypr=[round(float(x), 2) for x in e.mean(0)],
                              tfms=[type(t).__name__ for t in learn.dls.train.after_batch.fs], s=round(time.time()-t0))), flush=True)

if __name__ == '__main__': main([int(s) for s in sys.argv[1:]] or [42])
