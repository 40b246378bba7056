"""Train one epoch of a tiny multi-label model in however many processes launched this script, and record what each rank did.

    torchrun --standalone --nproc_per_node 2 tests/dist_train.py --path PASCAL --out DIR [--cached]

Launched by tests/test_distributed.py (not collected by pytest: no `test_` prefix). Every rank writes
DIR/rank{r}.json: the train items it loaded (df index), its `ShardDL` slice, a checksum of its final
weights and buffers, and the validation predictions `gather_preds` gave it. Rank 0 alone, through
`on_main`, writes the model folder DIR/model and the report DIR/report.json (mAP and predictions);
then it fails to save again (the folder exists), which every rank must see; and `main_first` has
each rank append its rank to DIR/order.txt, rank 0 first. With --cached the loaders are the package's
`pascal_dls` (images decoded once into the image cache under $MULTILABEL_REGRESS_DATA, which the ranks
build at the same time and then share), and each rank also records the pixel file it maps.
"""
import argparse, hashlib, json, os
from pathlib import Path
import pandas as pd, torch
from fastai.vision.all import *
from multilabel_regress.datasets import VOC_CLASSES
from multilabel_regress.archs import xresnet_small
from multilabel_regress.models import save_model
from multilabel_regress.archs import model_cfg
from multilabel_regress.preprocessing import data_spec
from multilabel_regress.distributed import *
from multilabel_regress.pascal_data import pascal_dls

SEEN = []       # df index of each train item this process loaded (get_x runs here: num_workers=0)
RECORD = False  # only while training

def tiny_dls(path, df, size=32, bs=4):
    "fastai's DataBlock on the PASCAL layout, squished to `size`, recording every train item it loads."
    def get_x(r):
        if RECORD: SEEN.append(int(r.name))
        return path/'train'/r['fname']
    dblock = DataBlock(blocks=(ImageBlock, MultiCategoryBlock(vocab=VOC_CLASSES)), splitter=ColSplitter('is_valid'),
                       get_x=get_x, get_y=ColReader('labels', label_delim=' '),
                       item_tfms=Resize(size, method='squish'), batch_tfms=Normalize.from_stats(*imagenet_stats))
    return dblock.dataloaders(df, bs=bs, num_workers=0)

def cached_dls(path, df, size=32, bs=4):
    "The package's `pascal_dls` (the image cache), recording the train items each batch gathers: `get_x` does not run per item there."
    dls = pascal_dls(path, size=size, bs=bs, vocab=VOC_CLASSES, num_workers=0)
    train_idx,orig = df.index[~df.is_valid],dls.train.create_batches
    def create_batches(samps):
        samps = list(samps)
        if RECORD: SEEN.extend(int(train_idx[i]) for i in samps)
        yield from orig(samps)
    dls.train.create_batches = create_batches  # `ShardDL` makes its batches through the wrapped loader's
    return dls

class RecordEpoch(Callback):
    "Turn recording on for the training phase only, and keep the training `DataLoader`'s slice."
    def before_train(self): global RECORD; RECORD = True; SEEN.clear()
    def after_train(self):
        global RECORD; RECORD = False
        self.shard = list(getattr(self.dl, 'shard_idxs', range(len(self.dl.dataset))))

def state_sha(model):
    h = hashlib.sha256()
    for k,v in model.state_dict().items(): h.update(k.encode()); h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()

def mean_ap(preds, targs):
    "Mean over classes (with a positive) of sklearn's average precision."
    from sklearn.metrics import average_precision_score
    keep = targs.sum(0) > 0
    return float(average_precision_score(targs[:,keep].numpy(), preds[:,keep].numpy(), average='macro'))

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--path', required=True); p.add_argument('--out', required=True)
    p.add_argument('--size', type=int, default=32); p.add_argument('--bs', type=int, default=4)
    p.add_argument('--epochs', type=int, default=1); p.add_argument('--seed', type=int, default=0)
    p.add_argument('--cached', action='store_true', help="the package's pascal_dls (image cache) instead of the book's DataBlock")
    a = p.parse_args()
    path,out = Path(a.path),Path(a.out)
    distrib_setup()
    set_seed(a.seed, reproducible=True)
    df = pd.read_csv(path/'train.csv')
    dls = (cached_dls if a.cached else tiny_dls)(path, df, a.size, a.bs)
    learn = vision_learner(dls, xresnet_small, pretrained=False)
    rec = RecordEpoch()
    with train_ctx(learn), learn.no_bar(), learn.no_logging():
        learn.fit(a.epochs, 1e-3, cbs=rec)
        preds,targs = gather_preds(learn)
    train_df = df[~df.is_valid]
    spec = data_spec(learn.dls)   # what its loaders declare, or what their fastai transforms give
    spec.targets = dict(kind='labels', vocab=list(VOC_CLASSES))
    meta = dict(task='multilabel', **model_cfg(xresnet_small, 'vision', len(VOC_CLASSES)), data=spec.to_dict(),
                thresholds=[0.5]*len(VOC_CLASSES))
    def write_all():
        d = save_model(learn.model, out/'model', meta)
        (out/'report.json').write_text(json.dumps(dict(world_size=world_size(), mAP=mean_ap(preds, targs),
                                                        preds=preds.tolist(), targs=targs.tolist())))
        return str(d)
    saved = on_main(write_all)
    # rank 0 failing inside on_main (the folder exists now) must stop every rank, not leave them waiting
    try: on_main(save_model, learn.model, out/'model', meta); again = None
    except Exception as e: again = f'{type(e).__name__}: {e}'
    # main_first: rank 0 appends its line before any other rank starts
    def append_rank():
        with open(out/'order.txt', 'a') as f: f.write(f'{rank()}\n')
        r = rank(); return lambda: r  # not picklable: main_first must hand each rank its own result
    mine = main_first(append_rank)
    cache = next((t.cache for t in dls.train_ds.tls[0].tfms.fs if getattr(t, 'cache', None) is not None), None)
    (out/f'rank{rank()}.json').write_text(json.dumps(dict(
        rank=rank(), world_size=world_size(), seen=SEEN, shard=[int(train_df.index[i]) for i in rec.shard],
        state_sha=state_sha(learn.model), saved=saved, save_again=again, main_first=mine(), preds=preds.tolist(), targs=targs.tolist(),
        cache=cache and dict(path=str(cache.path), built=cache.built, sha=hashlib.sha256(cache.pixels.tobytes()).hexdigest()))))
    distrib_teardown()

if __name__ == '__main__': main()
