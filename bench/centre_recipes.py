"""The head-centre model of `mlr chapter` on the sample: from scratch against `fine_tune` from the shipped body.

Each configuration is step 3 of the chapter (`train_keypoint(..., 'ctr')`, 96x128 frames, the soft-argmax head at
stride 8, person 13 held out) with the recipe changed; prints one JSON line per run: the configuration, the seed,
the centre's RMSE in pixels and in % of the 640-px width, and the seconds of `train_keypoint`.

    python bench/centre_recipes.py                                 # every configuration at seeds 42, 0, 1
    python bench/centre_recipes.py --configs scratch ft_1e-2 --seeds 42
"""
import argparse, json, time, warnings
from multilabel_regress.recipes import Recipe, RECIPES, train_keypoint
from multilabel_regress.datasets import get_biwi
from multilabel_regress.predictions import centre_errors

FT = dict(size=(96,128), pretrained=True, freeze_epochs=1, lr_mult=1, head='softargmax')
CONFIGS = {
    'scratch': Recipe(size=(96,128), epochs=4, lr=3e-3),              # the recipe before: fit_one_cycle(4, 3e-3)
    'ft_3e-3': Recipe(epochs=4, lr=3e-3, **FT),                       # fine_tune(4, 3e-3, freeze_epochs=1, lr_mult=1)
    'ft_1e-2': Recipe(epochs=4, lr=1e-2, **FT),                       # the recipe since: fine_tune(4, 1e-2, ...)
    'ft_1e-2_3': Recipe(epochs=3, lr=1e-2, **FT),                     # the book's fine_tune(3, 1e-2), lr_mult=1
}

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--configs', nargs='+', default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument('--seeds', nargs='+', type=int, default=[42, 0, 1])
    a = p.parse_args()
    warnings.filterwarnings('ignore')
    biwi = get_biwi('sample')
    for name in a.configs:
        for seed in a.seeds:
            RECIPES['sample']['ctr'] = CONFIGS[name]
            t = time.time()
            learn,_,preds,targs = train_keypoint(biwi, 'ctr', seed=seed)
            _,_,rmse = centre_errors(preds, targs, list(learn.dls.valid.items))
            print(json.dumps(dict(config=name, seed=seed, rmse_px=round(rmse, 2), pct_width=round(rmse/640*100, 2),
                                  seconds=round(time.time()-t, 1))), flush=True)

if __name__ == '__main__': main()
