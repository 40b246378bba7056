"""`mlr chapter` on the sample: the recipe from scratch (the old one) against fine-tuning the shipped body, one run.

    python bench/chapter_time.py                        # new recipe at seeds 42, 0, 1; the old one at seed 42
    python bench/chapter_time.py --seeds 42 --old 42 0  # which seeds run which recipe
    python bench/chapter_time.py --old                  # the new recipe only

Both recipes run in this one process on the same generated samples, the image cache filled before the first timed
run (one pass of each loader), so the ratio of the two times is fair on a busy machine; absolute seconds are the
machine's and its load's (printed at the start and the end). Each chapter writes its report to a temporary folder.
Prints, for each run: the seconds of `chapter()` (datasets to report), each model's training seconds, mAP,
accuracy_multi at 0.2, the centre's RMSE (px and % of the width) and the pose's MAE (deg), then a summary.
"""
import argparse, json, os, tempfile, time, warnings
from pathlib import Path
from multilabel_regress import recipes as R
from multilabel_regress.recipes import Recipe, chapter, RECIPES

# the sample's recipes before the pretrained body: every model from scratch with `fit_one_cycle`
OLD = dict(multilabel=Recipe(size=(128,128), epochs=28, lr=1e-2),
           ctr=Recipe(size=(96,128), epochs=4, lr=3e-3),
           angles=Recipe(size=(64,64), epochs=30, lr=1e-2, crop_px=160),
           points=RECIPES['sample']['points'])
NEW = dict(RECIPES['sample'])


def load(): return f"load average {' '.join(open('/proc/loadavg').read().split()[:3])}"


def prime():
    "Fill the image cache for both samples at the sizes both recipes use: one pass of each loader, untimed."
    from multilabel_regress.datasets import get_pascal, get_biwi
    from multilabel_regress.pascal_data import pascal_dls
    from multilabel_regress.biwi_data import biwi_dls, pose_dls
    pascal, biwi = get_pascal('sample'), get_biwi('sample')
    t = time.time()
    for rs in (OLD, NEW):
        m, c, a = rs['multilabel'], rs['ctr'], rs['angles']
        for dls in (pascal_dls(pascal, size=m.size[0], bs=m.bs, seed=0),
                    biwi_dls(biwi, size=c.size, presize=c.size, bs=c.bs, valid_person='13', seed=0),
                    pose_dls(biwi, px=a.crop_px, size=a.size[0], bs=a.bs, valid_person='13', seed=0)):
            for dl in (dls.train, dls.valid):
                for _ in dl: pass
    print(f'image cache filled in {time.time()-t:.0f} s', flush=True)


def run(name, rs, seed):
    RECIPES['sample'] = rs
    with tempfile.TemporaryDirectory() as d:
        t = time.time()
        m = chapter('sample', report=str(Path(d)/'report'), seed=seed)
        secs = time.time() - t
    row = dict(recipe=name, seed=seed, seconds=round(secs, 1), ml_s=m['multilabel']['train_seconds'],
               ctr_s=m['keypoint']['train_seconds'], pose_s=m['pose']['train_seconds'], mAP=m['multilabel']['mAP'],
               acc_02=m['multilabel']['accuracy_multi']['0.2'], ctr_px=m['keypoint']['rmse_px'],
               ctr_pct=m['keypoint']['rmse_pct_width'], pose_deg=m['pose']['mae_deg'])
    print('RESULT ' + json.dumps(row), f'({load()})', flush=True)
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--seeds', type=int, nargs='*', default=[42, 0, 1], help='seeds of the new recipe')
    p.add_argument('--old', type=int, nargs='*', default=[42], help='seeds of the old recipe (none: skip it)')
    a = p.parse_args()
    warnings.filterwarnings('ignore')
    print(f'== {time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, {os.cpu_count()} cores, {load()}, '
          f'torch threads {__import__("torch").get_num_threads()}', flush=True)
    for k in ('multilabel', 'ctr', 'angles'): print(f'  old {k}: {OLD[k]}\n  new {k}: {NEW[k]}')
    prime()
    rows = []
    for s in a.seeds:   # the two recipes alternate at a shared seed, so that both see the same load
        rows.append(run('new', NEW, s))
        if s in a.old: rows.append(run('old', OLD, s))
    for s in a.old:
        if s not in a.seeds: rows.append(run('old', OLD, s))
    R.RECIPES['sample'] = NEW
    print(f'\n== summary ({load()})')
    print(f"{'recipe':6} {'seed':>4} {'chapter s':>9} {'ml s':>6} {'ctr s':>6} {'pose s':>6} {'mAP':>7} {'acc@0.2':>7} "
          f"{'ctr px':>7} {'ctr %':>6} {'pose deg':>8}")
    for r in rows:
        print(f"{r['recipe']:6} {r['seed']:>4} {r['seconds']:>9.1f} {r['ml_s']:>6.1f} {r['ctr_s']:>6.1f} {r['pose_s']:>6.1f} "
              f"{r['mAP']:>7.4f} {r['acc_02']:>7.4f} {r['ctr_px']:>7.2f} {r['ctr_pct']:>6.2f} {r['pose_deg']:>8.2f}")
    old = [r['seconds'] for r in rows if r['recipe'] == 'old']
    new = [r['seconds'] for r in rows if r['recipe'] == 'new']
    if old and new: print(f'new/old time: {sum(new)/len(new)/(sum(old)/len(old)):.2f} (means over their seeds)')


if __name__ == '__main__': main()
