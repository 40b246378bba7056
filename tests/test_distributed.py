"""Data-parallel training for real: two CPU processes (gloo) launched by torchrun and by `accelerate launch`,
each training one epoch of a tiny model on its own shard (tests/dist_train.py), with the book's DataBlock and
(torchrun-cached) with the package's `pascal_dls`, whose image cache both ranks build at once and then share;
and the single-process path, which `train_ctx` must leave exactly as it is."""
import importlib.util, json, os, socket, subprocess, sys
from contextlib import nullcontext
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from fastai.vision.all import set_seed, vision_learner
from multilabel_regress.datasets import make_pascal_sample, VOC_CLASSES
from multilabel_regress.archs import xresnet_small
from multilabel_regress.models import load_model, model_outputs
from multilabel_regress import distributed as D

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location('dist_train', HERE/'dist_train.py')
dist_train = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(dist_train)

@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    "41 images: 24 train (12 per rank: the shards are disjoint) and 17 valid (odd: one padded copy to drop)."
    p = make_pascal_sample(tmp_path_factory.mktemp('dist')/'pascal_2007', n_images=41, n_test=2)
    df = pd.read_csv(p/'train.csv')
    assert ((~df.is_valid).sum(), df.is_valid.sum()) == (24, 17)
    return p

def _free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return str(s.getsockname()[1])

def _launcher(name):
    if name.startswith('torchrun'): return [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2']
    # `accelerate launch --cpu --num_processes 2` starts one process unless MPI is installed; its torchrun-based
    # launcher (named --multi_gpu) starts two, and `train_ctx` passes cpu=True to accelerate where there is no GPU
    return [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1',
            '--mixed_precision', 'no', '--dynamo_backend', 'no', '--main_process_port', _free_port()]

@pytest.fixture(scope='module', params=['torchrun', 'accelerate', 'torchrun-cached'])
def run2(request, sample, tmp_path_factory):
    "Launch tests/dist_train.py in two CPU processes; its output folder and the records it left."
    out = tmp_path_factory.mktemp(f'out_{request.param}')
    cached = request.param.endswith('-cached')
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1',  # a cold image cache of this run's own
               MULTILABEL_REGRESS_DATA=str(tmp_path_factory.mktemp(f'data_{request.param}')))
    for k in ('RANK','WORLD_SIZE','LOCAL_RANK','MASTER_ADDR','MASTER_PORT','MULTILABEL_REGRESS_IMAGES'): env.pop(k, None)  # the image cache under this run's data folder
    cmd = _launcher(request.param) + [str(HERE/'dist_train.py'), '--path', str(sample), '--out', str(out)] + ['--cached']*cached
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    recs = [json.loads((out/f'rank{i}.json').read_text()) for i in (0,1)]
    assert all((r['cache'] is not None) == cached for r in recs)
    return out, recs, json.loads((out/'report.json').read_text())

def test_ranks_see_disjoint_shards_covering_the_epoch(run2, sample):
    out,(r0,r1),_ = run2
    assert (r0['rank'], r0['world_size'], r1['rank'], r1['world_size']) == (0, 2, 1, 2)
    for r in (r0, r1):
        assert len(r['seen']) == 12            # half of the 24 train items each
        assert r['seen'] == r['shard']         # what it loaded is its ShardDL slice, in order
    df = pd.read_csv(sample/'train.csv')
    assert not set(r0['seen']) & set(r1['seen'])
    assert sorted(r0['seen'] + r1['seen']) == df.index[~df.is_valid].tolist()

def test_ranks_share_one_image_cache(run2, sample):
    "Both ranks asked for the cold cache at once: one decoded every training image, the other waited and mapped the same pixel file, the only one beside its index."
    out,(r0,r1),_ = run2
    if r0['cache'] is None: pytest.skip("the book's DataBlock: no image cache")
    c0,c1 = r0['cache'],r1['cache']
    df = pd.read_csv(sample/'train.csv'); train = df.fname[~df.is_valid.astype(str).str.lower().eq('true')]
    assert c0['path'] == c1['path'] and c0['sha'] == c1['sha'] and sorted([c0['built'], c1['built']]) == [0, len(train)]
    d = Path(c0['path']).parent
    assert sorted(o.name for o in d.iterdir()) == sorted(['index.json', Path(c0['path']).name])
    idx = json.loads((d/'index.json').read_text())
    assert sorted(idx['files']) == sorted(df.fname)  # every image by its name in the folder: the training split's, then the validation split's (fit's validation)

def test_rank0_alone_writes_one_model_folder(run2):
    out,(r0,r1),_ = run2
    assert sorted(o.name for o in out.iterdir()) == ['model', 'order.txt', 'rank0.json', 'rank1.json', 'report.json']
    assert sorted(o.name for o in (out/'model').iterdir()) == ['model.json', 'model.safetensors']
    assert r0['saved'] == r1['saved'] == str(out/'model')   # every rank got on_main's result
    # the second save fails on rank 0 (the folder exists) and every rank raises instead of waiting
    assert r0['save_again'].startswith('FolderExistsError')   # the package's error for a taken folder (a FileExistsError)
    assert r1['save_again'].startswith('RuntimeError: rank 0 failed') and 'already exists' in r1['save_again']
    assert (out/'order.txt').read_text() == '0\n1\n'      # main_first: rank 0 before the others
    assert (r0['main_first'], r1['main_first']) == (0, 1)  # each rank's own result

def test_every_rank_ends_with_the_saved_model(run2):
    out,(r0,r1),_ = run2
    model,meta = load_model(out/'model')
    assert r0['state_sha'] == r1['state_sha'] == dist_train.state_sha(model)

def test_gathered_predictions_match_the_saved_model(run2, sample):
    out,(r0,r1),rep = run2
    df = pd.read_csv(sample/'train.csv'); valid = df[df.is_valid]
    assert r0['preds'] == r1['preds'] == rep['preds'] and rep['world_size'] == 2
    targs = torch.tensor(rep['targs'])
    expected = torch.tensor([[float(c in ls.split()) for c in VOC_CLASSES] for ls in valid['labels']])
    assert torch.equal(targs, expected)   # all 17 valid items, once each, in dataset order
    model,meta = load_model(out/'model')
    preds = torch.sigmoid(model_outputs(model, meta, [sample/'train'/f for f in valid.fname]))
    torch.testing.assert_close(preds, torch.tensor(rep['preds']), atol=1e-4, rtol=1e-4)
    assert rep['mAP'] == pytest.approx(dist_train.mean_ap(preds, targs), abs=1e-4)

@pytest.fixture
def one_process(monkeypatch):
    for k in ('RANK','WORLD_SIZE','LOCAL_RANK'): monkeypatch.delenv(k, raising=False)

def test_single_process_unchanged(sample, one_process):
    "Same seed, same weights and predictions, bit for bit, with and without `train_ctx`; and it adds no callback."
    df = pd.read_csv(sample/'train.csv')
    def train(ctx):
        set_seed(0, reproducible=True)
        learn = vision_learner(dist_train.tiny_dls(sample, df), xresnet_small, pretrained=False)
        cbs = list(learn.cbs)
        with (D.train_ctx(learn) if ctx else nullcontext()):
            assert list(learn.cbs) == cbs
            with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
        return learn
    a,b = train(False),train(True)
    sa,sb = a.model.state_dict(),b.model.state_dict()
    assert list(sa) == list(sb)
    for k in sa: assert torch.equal(sa[k], sb[k]), k
    (pa,ta),(pb,tb) = a.get_preds(),D.gather_preds(b)
    assert torch.equal(pa, pb) and torch.equal(ta, tb)

def test_single_process_helpers(one_process):
    assert (D.rank(), D.local_rank(), D.world_size(), D.is_main(), D.is_distributed()) == (0, 0, 1, True, False)
    assert D.on_main(lambda a, b=0: a+b, 1, b=2) == 3 and D.main_first(str.upper, 'x') == 'X'
    with pytest.raises(ValueError): D.on_main(int, 'nope')

@pytest.mark.skipif(torch.cuda.is_available(), reason='SyncBatchNorm works on GPUs')
def test_sync_bn_needs_cuda(one_process):
    with pytest.raises(ValueError, match='needs CUDA'):
        with D.train_ctx(object(), sync_bn=True): pass  # checked before the learner is touched
