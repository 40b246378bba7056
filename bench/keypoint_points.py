"""Time to quality of `mlr train points` (issue 32): the heat-map head (the default) against the chapter's pooling head.

Two sets, both generated: the faces sample (`make_points_sample(n_images=60)`, 68 landmarks, its COCO file: every face
a crop of its box; NME over the box diagonal) and a DeepLabCut-layout sample (`make_dlc_sample(n_frames=100)`: 640x480
frames, one animal, four named body parts, read from its `CollectedData_mlr.csv`; mean error in pixels of the frame).
Each run is `train_points` with the defaults (500 optimiser steps, the input from the items, bs 16, lr 5e-3,
`fine_tune` from the shipped body with `lr_mult=1`) and `head='heatmap'` or `head='pool'` (`--starts scratch`: from
random weights with `fit_one_cycle`, the default before); the baseline is the average position (each point at its
mean training position).
Prints one line per run: set, head, seed, the model's figure, the baseline's, their ratio, seconds.

    python bench/keypoint_points.py [--sets faces dlc] [--heads heatmap pool] [--seeds 42 0 1] [--starts body scratch]
        [--threads 2] [--steps 500]
"""
import argparse, contextlib, io, json, time, tempfile
from pathlib import Path

def run(which, head, seed, steps, data, start):
    "Train on `which` ('faces' or 'dlc') with `head` from `start`; the figures of the held-out items and the seconds."
    from multilabel_regress.recipes import train_points
    path,coco = (data/'faces'/'images', str(data/'faces'/'faces_coco.json')) if which == 'faces' else (data/'dlc', None)
    t = time.time()
    with contextlib.redirect_stdout(io.StringIO()):   # its line per epoch
        learn,meta,m = train_points(path, coco, seed=seed, steps=steps, head=head, pretrained=start == 'body')
    secs = time.time() - t
    key = 'nme' if which == 'faces' else 'mean_px'
    return dict(set=which, head=head, start=start, seed=seed, metric=key, model=round(m[key], 4),
                baseline=round(m['baseline'][key], 4), ratio=round(m[key]/m['baseline'][key], 3), seconds=round(secs),
                steps=meta['steps'], size=meta['data']['size'])

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--sets', nargs='+', default=['faces', 'dlc'])
    p.add_argument('--heads', nargs='+', default=['heatmap', 'pool'])
    p.add_argument('--seeds', nargs='+', type=int, default=[42, 0, 1])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--steps', type=int, default=500)
    p.add_argument('--starts', nargs='+', default=['body'], choices=['body', 'scratch'],
                   help="'body': fine_tune from the shipped body (the default); "
                        "'scratch': random weights, fit_one_cycle")
    p.add_argument('--data', default=None, help='where to generate the samples (default: a temporary folder)')
    a = p.parse_args()
    import torch
    from multilabel_regress.points_sample import make_points_sample, make_dlc_sample
    torch.set_num_threads(a.threads)
    data = Path(a.data or tempfile.mkdtemp())
    if not (data/'faces').exists(): make_points_sample(data/'faces', n_images=60)
    if not (data/'dlc').exists(): make_dlc_sample(data/'dlc', n_frames=100)
    print(f"torch threads {torch.get_num_threads()}", flush=True)
    for s in a.sets:
        for seed in a.seeds:
            for st in a.starts:
                for h in a.heads: print(json.dumps(run(s, h, seed, a.steps, data, st)), flush=True)

if __name__ == '__main__': main()
