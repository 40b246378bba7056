"""Time to quality on the samples: seconds of training until the validation metric reaches a bar.

  multilabel: `train_multilabel`'s recipe (pascal_dls 128 px, bs 32, `multilabel_learner('xresnet_small')`,
              fit_one_cycle(28, 1e-2), seed 42) until valid mAP >= 0.90;
  keypoint:   `train_keypoint`'s recipe (biwi_dls 96x128, bs 32, person 13 held out, xresnet_small with the
              soft-argmax head, fit_one_cycle(4, 3e-3), seed 42) until centre RMSE <= 2% of the width (12.8 px of 640).

    python bench/quality.py [--task multilabel|keypoint|both] [--workers N] [--full-schedule] [--no-cache]

Both loaders run at the package's defaults (since issue 15: each image decoded once into the image cache, the crop
done on whole batches); `--no-cache` passes `cache=False`, the decode-every-epoch pipeline, to compare (for
`biwi_dls` only where it takes that option). Each task prints which pipeline it used. `--epochs N` replaces the
recipe's schedule by an N-epoch one cycle: for checking that the script runs, not for figures.

A callback records, at each epoch end, the seconds since the fit began (training and validation passes) and
the seconds spent in training passes only, with the metric. Prints every epoch, then the first epoch that
reaches the bar (or that it was not reached). The one-cycle schedule is the recipe's (28 or 4 epochs); by
default the fit stops once the bar is reached, which does not change the figure (`--full-schedule` runs on).
Absolute seconds depend on the machine and its load: say which when quoting them.
"""
import argparse, time, json, os, inspect
from fastai.vision.all import Callback, CancelFitException, set_seed

class TimeToMetric(Callback):
    "Record (epoch, seconds since fit began, seconds of training passes, metric) at each epoch end; optionally stop at the bar."
    order = 60  # after `Recorder` (50), whose `after_epoch` computes the metrics
    def __init__(self, metric, bar, higher=True, stop=True): self.metric,self.bar,self.higher,self.stop,self.rows = metric,bar,higher,stop,[]
    def before_fit(self): self.t0 = time.perf_counter(); self.train_s = 0.; self.n_epochs = self.n_epoch
    def before_train(self): self.tt = time.perf_counter()
    def after_train(self): self.train_s += time.perf_counter() - self.tt
    def reached(self, v): return v is not None and (v >= self.bar if self.higher else v <= self.bar)
    def after_epoch(self):
        names = self.recorder.metric_names[1:-1]  # drop 'epoch' and 'time'
        v = dict(zip(names, self.recorder.values[-1]))[self.metric]
        row = dict(epoch=self.epoch+1, elapsed_s=round(time.perf_counter()-self.t0, 1), train_s=round(self.train_s, 1), **{self.metric: round(float(v), 4)})
        self.rows.append(row); print(f"  epoch {row['epoch']:2d}/{self.n_epochs}: {self.metric} {v:.4f} at {row['elapsed_s']:7.1f} s ({row['train_s']:.1f} s in training passes)", flush=True)
        if self.stop and self.reached(v): raise CancelFitException()
    def first(self): return next((r for r in self.rows if self.reached(r[self.metric])), None)

def report(task, cb, what):
    r = cb.first()
    if r: print(f"{task}: {what} reached at epoch {r['epoch']}/{cb.n_epochs} after {r['elapsed_s']:.1f} s ({r['train_s']:.1f} s in training passes)")
    else: print(f"{task}: {what} NOT reached in {len(cb.rows)} epochs ({cb.rows[-1]['elapsed_s'] if cb.rows else 0:.1f} s); best {cb.metric} "
                f"{(max if cb.higher else min)(x[cb.metric] for x in cb.rows):.4f}")
    return dict(task=task, bar=what, reached=r, epochs=cb.rows)

def cache_kwargs(f, cache):
    "`dict(cache=False)` to ask `f` (a loader factory) for the decode-every-epoch pipeline; `{}` for its default, or where it has no such option."
    return {} if cache or 'cache' not in inspect.signature(f).parameters else dict(cache=False)

def workers_kwargs(workers): return {} if workers is None else dict(num_workers=workers)

def pipeline_of(dls):
    "Which input pipeline `dls` is: the image cache (its presize) or decoding every epoch, and the batch transforms."
    c = next((t.cache for tl in getattr(dls.train.dataset, 'tls', []) for t in tl.tfms.fs if getattr(t, 'cache', None) is not None), None)
    src = f"image cache at {c.presize[0]}x{c.presize[1]} (decoded once)" if c is not None else "decoded every epoch"
    return f"{src}; item transforms: {' + '.join(type(t).__name__ for t in dls.train.after_item.fs)}; batch transforms: {' + '.join(type(t).__name__ for t in dls.train.after_batch.fs)}; {dls.train.fake_l.num_workers} workers"

def multilabel(workers, stop, cache=True, epochs=None):
    from multilabel_regress.datasets import get_pascal
    from multilabel_regress.pascal_data import pascal_dls
    from multilabel_regress.multilabel import multilabel_learner
    set_seed(42, reproducible=True)
    dls = pascal_dls(get_pascal(), size=128, bs=32, seed=42, **workers_kwargs(workers), **cache_kwargs(pascal_dls, cache))
    learn = multilabel_learner(dls, 'xresnet_small')
    cb = TimeToMetric('mAP', 0.90, higher=True, stop=stop); n = epochs or 28
    print(f"multilabel: {len(dls.train_ds)} train / {len(dls.valid_ds)} valid images, fit_one_cycle({n}, 1e-2), bar mAP >= 0.90", flush=True)
    print(f"multilabel pipeline: pascal_dls{'' if cache else '(cache=False)'}: {pipeline_of(dls)}", flush=True)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(n, 1e-2, cbs=cb)
    return report('multilabel', cb, 'mAP >= 0.90')

def keypoint(workers, stop, cache=True, epochs=None):
    from multilabel_regress.datasets import get_biwi
    from multilabel_regress.biwi_data import biwi_dls
    from multilabel_regress.keypoint import keypoint_learner, _size
    set_seed(42, reproducible=True)
    size = (96,128)
    kw = cache_kwargs(biwi_dls, cache)
    dls = biwi_dls(get_biwi(), size=size, presize=size, valid_person='13', bs=32, target='ctr', seed=42, **workers_kwargs(workers), **kw)
    learn = keypoint_learner(dls, arch='xresnet_small', pretrained=False, head='softargmax')
    W = _size(dls.valid.items[0])[0]  # PixelRMSE reports pixels of each frame's own size: the bar is 2% of the frames' width
    bar = 0.02*W
    cb = TimeToMetric('rmse_px', bar, higher=False, stop=stop); n = epochs or 4
    print(f"keypoint: {len(dls.train_ds)} train / {len(dls.valid_ds)} valid frames, fit_one_cycle({n}, 3e-3), bar centre RMSE <= {bar:.1f} px", flush=True)
    print(f"keypoint pipeline: biwi_dls{'(cache=False)' if kw else ''}: {pipeline_of(dls)}"
          + ('' if cache or kw else ' (biwi_dls has no cache option: --no-cache changes nothing here)'), flush=True)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(n, 3e-3, cbs=cb)
    return report('keypoint', cb, f'centre RMSE <= {bar:.1f} px (2% of {W})')

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--task', default='both', choices=['multilabel','keypoint','both'])
    p.add_argument('--workers', type=int, default=None, help="data loader processes (default: each loader's own default)")
    p.add_argument('--full-schedule', action='store_true', help='run every epoch of the schedule, not stopping at the bar')
    p.add_argument('--no-cache', action='store_true', help='cache=False: the decode-every-epoch pipeline, to compare')
    p.add_argument('--epochs', type=int, default=None, help="replace the recipe's schedule (28 / 4 epochs): only to check the script runs")
    a = p.parse_args()
    res = []
    if a.task in ('keypoint','both'): res.append(keypoint(a.workers, not a.full_schedule, not a.no_cache, a.epochs))
    if a.task in ('multilabel','both'): res.append(multilabel(a.workers, not a.full_schedule, not a.no_cache, a.epochs))
    print(json.dumps([dict(task=r['task'], bar=r['bar'], reached=r['reached'], cache=not a.no_cache) for r in res]))

if __name__ == '__main__': main()
