"Tests for the multi-label half: pascal_data, bce, multilabel. Fast implementations against plain references."
import random, warnings
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from sklearn.metrics import average_precision_score, f1_score
from torch.testing import assert_close

from multilabel_regress.datasets import VOC_CLASSES
from multilabel_regress.pascal_data import pascal_dls, pascal_vocab
from multilabel_regress.fast_images import LazyImage, DraftResizedCrop, BoolColSplitter
from multilabel_regress.bce import binary_cross_entropy
from multilabel_regress.multilabel import (per_class_ap, mean_average_precision, f1_scores, threshold_sweep,
                                           best_threshold, per_class_thresholds, choose_thresholds, voc07_ap, voc07_map,
                                           multilabel_learner,
                                           predict_labels, predict_probs)

@pytest.fixture(scope='module', autouse=True)
def image_cache_here(tmp_path_factory):
    "`pascal_dls` caches decoded images under `data_dir()`: this module's go to a tmp folder, not the user's cache."
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv('MULTILABEL_REGRESS_IMAGES', raising=False); mp.setenv('MULTILABEL_REGRESS_DATA', str(tmp_path_factory.mktemp('multilabel_data'))); yield

@pytest.fixture(autouse=True)
def seed():
    random.seed(0); np.random.seed(0); torch.manual_seed(0)

def _data(n=200, c=20, seed=0):
    "Random multi-label data: targets with at least one positive per row and per class, and noisy predictions."
    g = torch.Generator().manual_seed(seed)
    t = (torch.rand(n, c, generator=g) < 0.1).float()
    t[torch.arange(n), torch.randint(0, c, (n,), generator=g)] = 1.
    t[torch.arange(c) % n, torch.arange(c)] = 1.
    p = (t*0.6 + torch.rand(n, c, generator=g)*0.7).clamp(0, 1)
    return p, t

# ---- binary cross-entropy
@pytest.mark.parametrize('shape', [(64, 20), (1, 20), (5, 1), (3,)])
def test_bce_matches_torch(shape):
    x = torch.randn(shape)*4; y = (torch.rand(shape) < 0.3).float()
    assert_close(binary_cross_entropy(x, y), torch.nn.BCEWithLogitsLoss()(x, y))
    assert_close(binary_cross_entropy(x, y), torch.nn.BCELoss()(x.sigmoid(), y), atol=1e-5, rtol=1e-4)

def test_bce_extremes_and_soft_targets():
    x = torch.tensor([[40., -40., 0.]]); y = torch.tensor([[0., 1., 1.]])
    assert torch.isfinite(binary_cross_entropy(x, y))
    assert_close(binary_cross_entropy(x, y), torch.nn.BCEWithLogitsLoss()(x, y))
    s = torch.rand(8, 20); x = torch.randn(8, 20)
    assert_close(binary_cross_entropy(x, s), torch.nn.BCEWithLogitsLoss()(x, s))

def test_bce_errors():
    with pytest.raises(ValueError, match='empty'): binary_cross_entropy(torch.zeros(0, 20), torch.zeros(0, 20))
    with pytest.raises(ValueError, match='same shape'): binary_cross_entropy(torch.zeros(2, 20), torch.zeros(2, 19))

# ---- average precision
def test_ap_matches_sklearn():
    p, t = _data()
    ref = [average_precision_score(t[:, c].numpy(), p[:, c].numpy()) for c in range(20)]
    assert_close(per_class_ap(p, t), torch.tensor(ref, dtype=torch.float32))
    assert mean_average_precision(p, t) == pytest.approx(np.mean(ref), abs=1e-6)

def _ap_by_definition(p, t):
    """AP from its definition, with no sorting: for each positive, the precision among the items scored at least as high
    (a tie is ranked together, as scikit-learn does), averaged over the positives."""
    p, t = [float(x) for x in p], [int(x) for x in t]
    precs = []
    for i in range(len(p)):
        if t[i] != 1: continue
        above = [j for j in range(len(p)) if p[j] >= p[i]]
        precs.append(sum(t[j] for j in above) / len(above))
    return sum(precs) / len(precs) if precs else float('nan')

@pytest.mark.parametrize('seed', range(6))
def test_ap_matches_its_definition(seed):
    "per_class_ap against AP computed from its definition (not the scikit-learn call it wraps): ties, one positive, all positive, none."
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(2, 40, (1,), generator=g))
    t = (torch.rand(n, 5, generator=g) < 0.3).float()
    t[0, 1] = 1; t[:, 2] = 0; t[int(torch.randint(0, n, (1,), generator=g)), 2] = 1   # class 2: exactly one positive
    t[:, 3] = 1; t[:, 4] = 0                                                         # class 3: all positive; class 4: none
    p = (0.5*t + torch.rand(n, 5, generator=g))
    if seed % 2: p = (p*4).round()/4                                                 # many ties
    ref = torch.tensor([_ap_by_definition(p[:, c], t[:, c]) for c in range(5)], dtype=torch.float32)
    assert_close(per_class_ap(p, t), ref, equal_nan=True)
    assert torch.isnan(per_class_ap(p, t)[4]) and float(per_class_ap(p, t)[3]) == 1.

def test_ap_small_cases_by_hand():
    assert float(per_class_ap(torch.tensor([.9, .8, .7]), torch.tensor([0., 1, 1]))[0]) == pytest.approx((1/2 + 2/3)/2)
    assert float(per_class_ap(torch.tensor([.5, .5, .5, .1]), torch.tensor([1., 0, 1, 0]))[0]) == pytest.approx(2/3)  # one tie: 2/3 for both

def test_map_metric_ranks_logits(learn):
    "The learner's mAP metric sees raw outputs: logits [20, 25, 18, -3] for targets [1, 1, 0, 0] rank perfectly (their float32 sigmoids tie at 1.0)."
    logits, y = torch.tensor([[20.], [25.], [18.], [-3.]]), torch.tensor([[1.], [1.], [0.], [0.]])
    m = next(m for m in learn.metrics if m.name == 'mAP')
    assert (logits.sigmoid()[:3] == 1).all()                                 # the saturation is real
    assert m(logits, y) == 1.
    assert mean_average_precision(logits.sigmoid(), y) == pytest.approx(2/3)  # what ranking the sigmoids gives
    assert float(per_class_ap(logits, y)[0]) == 1.

def test_learner_map_is_ap_of_its_outputs(learn):
    "After an epoch the reported mAP is the AP of the model's raw validation outputs."
    from fastcore.basics import noop
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # classes missing from the small validation set are left out, with a warning
        res = learn.validate()
        out, targs = learn.get_preds(act=noop)
        assert res[-1] == pytest.approx(mean_average_precision(out, targs), abs=1e-6)

def test_ap_perfect_and_reversed():
    p, t = _data()
    assert mean_average_precision(t, t) == pytest.approx(1.0)
    assert mean_average_precision(1-t, t) < mean_average_precision(p, t)

def test_class_absent_is_skipped():
    p, t = _data(); t[:, 3] = 0
    ap = per_class_ap(p, t)
    assert torch.isnan(ap[3]) and not torch.isnan(ap[torch.arange(20) != 3]).any()
    with pytest.warns(UserWarning, match='left out'): m = mean_average_precision(p, t)
    keep = [c for c in range(20) if c != 3]
    assert m == pytest.approx(np.mean([average_precision_score(t[:, c].numpy(), p[:, c].numpy()) for c in keep]), abs=1e-6)

@pytest.mark.parametrize('n_labels', [1, 20])
def test_one_label_and_all_labels(n_labels):
    "An image with one label, and one with all 20, among ordinary ones."
    p, t = _data(50)
    t[0] = 0; t[0, :n_labels] = 1; p[0] = torch.rand(20)
    ref = [average_precision_score(t[:, c].numpy(), p[:, c].numpy()) for c in range(20)]
    assert_close(per_class_ap(p, t), torch.tensor(ref, dtype=torch.float32))
    f = f1_scores(p, t, 0.5); yp = (p > 0.5).numpy()
    assert f['micro'] == pytest.approx(f1_score(t.numpy(), yp, average='micro'), abs=1e-6)

def test_single_image_all_classes():
    t = torch.ones(1, 20); p = torch.rand(1, 20)
    assert mean_average_precision(p, t) == pytest.approx(1.0)  # every item is positive: precision 1 everywhere
    assert f1_scores(p, t, 0.0)['micro'] == pytest.approx(1.0)

@pytest.mark.parametrize('fn', [per_class_ap, mean_average_precision, f1_scores, threshold_sweep, best_threshold, per_class_thresholds])
def test_empty_input_raises(fn):
    with pytest.raises(ValueError, match='empty'): fn(torch.zeros(0, 20), torch.zeros(0, 20))

def test_bad_input_raises():
    with pytest.raises(ValueError, match='same shape'): per_class_ap(torch.zeros(4, 20), torch.zeros(4, 19))
    with pytest.raises(ValueError, match='0 or 1'): per_class_ap(torch.rand(4, 20), torch.rand(4, 20))
    with pytest.raises(ValueError, match='no class has a positive'): mean_average_precision(torch.rand(4, 20), torch.zeros(4, 20))

# ---- F1 and thresholds
@pytest.mark.parametrize('thresh', [0.2, 0.5, 0.8])
def test_f1_matches_sklearn(thresh):
    p, t = _data(); yt, yp = t.numpy(), (p > thresh).numpy()
    f = f1_scores(p, t, thresh)
    assert f['micro'] == pytest.approx(f1_score(yt, yp, average='micro'), abs=1e-6)
    assert f['macro'] == pytest.approx(f1_score(yt, yp, average='macro', zero_division=np.nan), abs=1e-6)
    assert_close(f['per_class'], torch.tensor(f1_score(yt, yp, average=None, zero_division=np.nan), dtype=torch.float32))

def test_sweep_matches_loop():
    p, t = _data(); ths = torch.linspace(0.05, 0.95, 29)
    acc = torch.stack([((p > th) == t.bool()).float().mean() for th in ths])
    assert_close(threshold_sweep(p, t, ths, 'accuracy'), acc)
    f1 = torch.tensor([f1_score(t.numpy(), (p > th).numpy(), average='micro') for th in ths], dtype=torch.float32)
    assert_close(threshold_sweep(p, t, ths, 'f1'), f1)
    pc = threshold_sweep(p, t, ths, 'f1', per_class=True)
    assert pc.shape == (29, 20)
    assert_close(pc[10], torch.tensor(f1_score(t.numpy(), (p > ths[10]).numpy(), average=None, zero_division=1.0), dtype=torch.float32))
    with pytest.raises(ValueError, match='metric'): threshold_sweep(p, t, ths, 'auc')

def _brute(p, t, metric='f1'):
    "Reference: `metric` of the decisions `p > th` for every distinct cut of the 1-d scores `p` (each distinct score, and below all)."
    p, t = np.asarray(p, np.float32), np.asarray(t)
    cuts = np.concatenate([np.unique(p), [p.min() - 1]])
    return [_score(p > np.float32(th), t, metric) for th in cuts]

def _score(yp, t, metric):
    if metric == 'accuracy': return float((yp == t.astype(bool)).mean())
    return f1_score(t, yp, zero_division=1.0)  # nothing to find and nothing found: 1, as `threshold_sweep`

def _cases():
    "Seeded random cases: continuous and heavily tied scores, rare classes, a class with no positive, one all positive."
    for seed in range(40):
        g = torch.Generator().manual_seed(seed)
        n, c = int(torch.randint(2, 40, (1,), generator=g)), int(torch.randint(1, 6, (1,), generator=g))
        t = (torch.rand(n, c, generator=g) < torch.rand(1, c, generator=g)).float()
        p = (t*torch.rand(1, c, generator=g) + torch.rand(n, c, generator=g)).clamp(0, 1)
        if seed % 3 == 0: p = (p*10).round()/10   # many ties
        if seed % 5 == 1: t[:, 0] = 0             # a class with no positive
        if seed % 5 == 2: t[:, -1] = 1            # a class that is always present
        if seed % 7 == 3: p[:, 0] = 0.            # a class the model never scores
        yield seed, p, t

@pytest.mark.parametrize('metric', ['f1', 'accuracy'])
def test_best_threshold_matches_brute_force(metric):
    for seed, p, t in _cases():
        th = best_threshold(p, t, metric=metric)
        got = _score((p.numpy() > np.float32(th)).ravel(), t.numpy().ravel(), metric)
        assert got == pytest.approx(max(_brute(p.flatten(), t.flatten(), metric)), abs=1e-12), seed
        if metric == 'f1' and t.any():
            assert f1_scores(p, t, th)['micro'] == pytest.approx(got, abs=1e-6)

@pytest.mark.parametrize('metric', ['f1', 'accuracy'])
def test_per_class_thresholds_match_brute_force(metric):
    for seed, p, t in _cases():
        th = per_class_thresholds(p, t, metric=metric)
        for c in range(p.shape[1]):
            if not t[:, c].any():   # nothing to tune on: the single threshold
                assert th[c] == pytest.approx(best_threshold(p, t, metric=metric)); continue
            got = _score(p[:, c].numpy() > th[c].numpy(), t[:, c].numpy(), metric)
            assert got == pytest.approx(max(_brute(p[:, c], t[:, c], metric)), abs=1e-12), (seed, c)

def test_best_threshold_counterexample():
    "Two separate runs of best F1 (3 or 6 items predicted); the middle of both together fell in the dip between them."
    p = torch.tensor([.37, .55, .59, .85, .15, .41, .91])[:, None]; t = torch.tensor([1., 0, 1, 1, 0, 0, 0])[:, None]
    th = best_threshold(p, t)
    assert f1_scores(p, t, th)['micro'] == pytest.approx(2/3)   # the old code chose 0.37, F1 0.5
    assert th == pytest.approx((0.15 + 0.37)/2)                   # the middle of the wider run, [0.15, 0.37)
    assert per_class_thresholds(p, t)[0] == pytest.approx(th)
    assert f1_scores(p, t, best_threshold(p, t, torch.linspace(0.01, 0.99, 99)))['micro'] == pytest.approx(2/3)  # on a grid too

def test_best_threshold_is_best():
    p, t = _data(); ths = torch.linspace(0.01, 0.99, 99)
    b = best_threshold(p, t)
    assert 0 < b < 1
    assert f1_scores(p, t, b)['micro'] >= float(threshold_sweep(p, t, ths).max()) - 1e-6  # exact cuts beat any grid
    assert f1_scores(p, t, best_threshold(p, t, ths))['micro'] == pytest.approx(float(threshold_sweep(p, t, ths).max()), abs=1e-6)

def test_best_threshold_takes_middle_of_ties():
    t = torch.tensor([[1., 0.], [0., 1.]]); p = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    # every threshold in [0.1, 0.9) separates perfectly; the middle of that run is chosen
    assert best_threshold(p, t) == pytest.approx(0.5)
    assert best_threshold(p, t, torch.linspace(0.01, 0.99, 99)) == pytest.approx(0.5, abs=0.011)

def test_best_threshold_close_scores():
    "Scores closer than 1e-4: the threshold keeps the digits it needs to fall between them."
    p = torch.tensor([[0.50001], [0.50002], [0.50003]]); t = torch.tensor([[0.], [1.], [1.]])
    th = best_threshold(p, t)
    assert f1_scores(p, t, th)['micro'] == 1.0 and 0.50001 <= th < 0.50002

def test_per_class_thresholds():
    p, t = _data()
    th = per_class_thresholds(p, t)
    assert th.shape == (20,)
    # per-class thresholds fit the tuning data at least as well as one threshold
    assert f1_scores(p, t, th)['macro'] >= f1_scores(p, t, best_threshold(p, t))['macro'] - 1e-6
    with pytest.raises(ValueError, match='metric'): best_threshold(p, t, metric='auc')

def test_per_class_thresholds_absent_class_gets_single():
    p, t = _data(); t[:, 5] = 0
    th = per_class_thresholds(p, t)
    assert th[5] == pytest.approx(best_threshold(p, t))

# ---- choosing between one threshold and one per class
def _halves(n, seed):
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[:n//2], perm[n//2:]

def _scales(n=200, seed=0):
    "Two classes, each separable but on its own scale: no single threshold separates both."
    g = torch.Generator().manual_seed(seed)
    t = (torch.rand(n, 2, generator=g) < 0.4).float()
    base = torch.tensor([[0.6, 0.05]]); gap = torch.tensor([[0.3, 0.1]])
    return base + t*gap + torch.rand(n, 2, generator=g)*0.05, t

@pytest.mark.parametrize('seed', [0, 1])
def test_choose_thresholds_picks_per_class_when_better(seed):
    import json
    p, t = _scales(seed=seed)
    r = choose_thresholds(p, t, seed=seed)
    assert json.loads(json.dumps(r)) == r
    assert r['kind'] == 'per_class' and r['evidence']['f1_per_class'] == 1.0 > r['evidence']['f1_single']
    a, b = _halves(len(p), seed)
    ev = r['evidence']
    assert (ev['tuned_on'], ev['scored_on']) == (len(a), len(b))
    assert ev['f1_single'] == round(f1_scores(p[b], t[b], best_threshold(p[a], t[a]))['micro'], 4)
    assert ev['f1_per_class'] == round(f1_scores(p[b], t[b], per_class_thresholds(p[a], t[a]))['micro'], 4)
    assert ev['f1_at_0.5'] == round(f1_scores(p[b], t[b], 0.5)['micro'], 4)
    assert f1_scores(p, t, r['thresholds'])['micro'] == 1.0         # tuned on all rows
    assert r['threshold'] == best_threshold(p, t)

def test_choose_thresholds_single_unless_strictly_better():
    g = torch.Generator().manual_seed(0)
    t = (torch.rand(100, 4, generator=g) < 0.3).float()
    p = 0.2 + 0.5*t + 0.1*torch.rand(100, 4, generator=g)            # one scale: 0.5 separates every class
    r = choose_thresholds(p, t)
    assert r['evidence']['f1_single'] == r['evidence']['f1_per_class'] == 1.0
    assert r['kind'] == 'single' and r['thresholds'] == [r['threshold']]*4
    assert f1_scores(p, t, r['thresholds'])['micro'] == 1.0
    # noisy scores on one scale: per-class thresholds fit noise, and the held-out half says so
    p, t = _data(400)
    r = choose_thresholds(p, t)
    ev = r['evidence']
    assert r['kind'] == ('per_class' if ev['f1_per_class'] > ev['f1_single'] else 'single')
    tuned = [r['threshold']]*20 if r['kind'] == 'single' else per_class_thresholds(p, t).tolist()
    assert r['thresholds'] == pytest.approx(tuned, abs=1e-7)

def test_choose_thresholds_is_seeded_and_leaves_global_state():
    p, t = _data()
    torch.manual_seed(3); before = torch.rand(1)
    torch.manual_seed(3); r1 = choose_thresholds(p, t, seed=1); after = torch.rand(1)
    assert before == after
    assert choose_thresholds(p, t, seed=1) == r1
    assert choose_thresholds(p, t, seed=2)['evidence'] != r1['evidence']
    with pytest.raises(ValueError, match='at least 2'): choose_thresholds(p[:1], t[:1])

# ---- data
def test_vocab_covers_all_labels():
    df = pd.DataFrame(dict(fname=['a.jpg', 'b.jpg'], labels=['dog cat', 'zebra'], is_valid=[False, True]))
    assert pascal_vocab(df) == ['cat', 'dog', 'zebra']
    with pytest.raises(ValueError, match='no rows'): pascal_vocab(df.iloc[:0])

def test_splitter_matches_colsplitter():
    from fastai.data.transforms import ColSplitter
    df = pd.DataFrame(dict(is_valid=[True, False, False, True, False]))
    assert [list(o) for o in BoolColSplitter()(df)] == [list(o) for o in ColSplitter('is_valid')(df)]

def test_draft_decode_close_to_full(pascal):
    from fastai.vision.all import PILImage, RandomResizedCrop
    fns = sorted((pascal/'train').iterdir())[:10]
    for split in (0, 1):
        for i, f in enumerate(fns):
            random.seed(i); a = DraftResizedCrop(128, min_scale=0.35)(LazyImage.create(f), split_idx=split)
            random.seed(i); b = RandomResizedCrop(128, min_scale=0.35)(PILImage.create(f), split_idx=split)
            assert a.size == b.size == (128, 128)
            assert np.abs(np.asarray(a, float) - np.asarray(b, float)).mean() < 3

def test_lazy_image_reads_header_only(pascal):
    f = sorted((pascal/'train').iterdir())[0]
    li = LazyImage.create(f)
    assert li.size == Image.open(f).size
    assert li.open(need=(50, 50)).size[0] < li.size[0]  # decoded at a draft scale

def test_pascal_dls(pascal):
    dls = pascal_dls(pascal, size=64, bs=8, seed=0)
    df = pd.read_csv(pascal/'train.csv')
    x, y = dls.one_batch()
    assert x.shape == (8, 3, 64, 64) and y.shape == (8, len(dls.vocab))
    assert list(dls.vocab) == pascal_vocab(df)
    assert len(dls.valid_ds) == df['is_valid'].sum()

def test_pascal_dls_label_only_in_valid(pascal, tmp_path):
    "A label that occurs only in validation rows still gets a column."
    df = pd.read_csv(pascal/'train.csv')
    i = df.index[df.is_valid][0]; df.loc[i, 'labels'] = df.loc[i, 'labels'] + ' unicorn'
    df.to_csv(tmp_path/'train.csv', index=False)
    dls = pascal_dls(pascal, csv=tmp_path/'train.csv', size=64, bs=4)
    assert 'unicorn' in dls.vocab

@pytest.mark.parametrize('change,words', [
    (lambda df: df.assign(labels=df['labels'].where(df.index != 3, '')), ['row 5', 'empty labels']),
    (lambda df: df.assign(labels=df['labels'].where(df.index != 3, 'bottle,bird')), ['row 5', 'hold a comma', 'separated by single spaces']),
    (lambda df: df.assign(is_valid=False), ['has no validation rows', 'is_valid=True']),
])
def test_pascal_dls_bad_csv(pascal, tmp_path, change, words):
    "pascal_dls reads the CSV as check_pascal does: one clear DatasetError, not a TypeError from inside fastai, a class 'bottle,bird', or no batches."
    from multilabel_regress.datasets import DatasetError
    f = tmp_path/'train.csv'; change(pd.read_csv(pascal/'train.csv')).to_csv(f, index=False)
    with pytest.raises(DatasetError) as e: pascal_dls(pascal, csv=f, size=32, bs=4)
    for w in words: assert w in str(e.value), str(e.value)
    assert str(f) in str(e.value)

# ---- learner and predictions
@pytest.fixture(scope='module')
def learn(pascal):
    from fastai.vision.all import set_seed
    set_seed(0)
    dls = pascal_dls(pascal, size=64, bs=8, seed=0)
    learn = multilabel_learner(dls, 'xresnet_small', pretrained=False)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-3)
    return learn

def test_learner_metrics(learn):
    res = learn.validate()
    assert len(res) == 3 and all(np.isfinite(res))

def test_predict_uses_given_thresholds(learn, pascal):
    files = sorted((pascal/'test').iterdir())[:4]
    probs = predict_probs(learn, files)
    assert probs.shape == (4, len(learn.dls.vocab))
    for th in (0.3, 0.5, 0.7):
        assert predict_labels(learn, files, th) == [[learn.dls.vocab[i] for i in range(probs.shape[1]) if p[i] > th] for p in probs]
    # per-class thresholds: exactly class 0 allowed through
    th = torch.ones(len(learn.dls.vocab)); th[0] = 0.0
    assert predict_labels(learn, files, th) == [[learn.dls.vocab[0]]]*4
    assert predict_labels(learn, files[0], 0.0) == list(learn.dls.vocab)
    assert predict_labels(learn, files[0], 0.5) == list(learn.predict(files[0])[0])

def test_predict_errors(learn, pascal):
    f = sorted((pascal/'test').iterdir())[0]
    with pytest.raises(ValueError, match='no items'): predict_labels(learn, [], 0.5)
    with pytest.raises(ValueError, match='one per class'): predict_labels(learn, f, [0.5, 0.5])

# ---- VOC2007 11-point AP
def _voc_ap_07(rec, prec):
    "py-faster-rcnn's `voc_ap(rec, prec, use_07_metric=True)` (lib/datasets/voc_eval.py), transcribed as it is written there."
    ap = 0.
    for t in np.arange(0., 1.1, 0.1):
        if np.sum(rec >= t) == 0:
            p = 0
        else:
            p = np.max(prec[rec >= t])
        ap = ap + p / 11.
    return ap

def _voc_eval_curve(confidence, t):
    """`voc_eval`'s rec and prec for one class, each image a detection that is a true positive if the image has the class:
    sort by confidence, cumulative tp and fp, `rec = tp / npos`, `prec = tp / max(tp + fp, eps)`. One change: of a run of tied
    scores only its last point is kept (the precision and recall after the whole tie), where `voc_eval`'s argsort keeps them in
    an arbitrary order."""
    sorted_ind = np.argsort(-confidence, kind='stable')
    tp, fp = t[sorted_ind].astype(np.float64), 1 - t[sorted_ind].astype(np.float64)
    npos = t.sum()
    fp = np.cumsum(fp)
    tp = np.cumsum(tp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    s = confidence[sorted_ind]
    last = np.append(s[1:] != s[:-1], True)
    return rec[last], prec[last]

def _ref_voc07(p, t):
    return _voc_ap_07(*_voc_eval_curve(p.numpy().astype(np.float64), t.numpy())) if t.any() else float('nan')

def _on_exact_tenths(p, t):
    "The same loop on exact tenths k/10 (what `voc07_ap` used to compare with): it differs only where a class's positives are a multiple of 10 (or 5)."
    rec, prec = _voc_eval_curve(p.numpy().astype(np.float64), t.numpy())
    return sum(prec[rec >= k/10].max() if (rec >= k/10).any() else 0 for k in range(11)) / 11

def _voc07_cases():
    for seed in range(30):
        g = torch.Generator().manual_seed(seed)
        n = int(torch.randint(20, 80, (1,), generator=g))
        n_pos = [10, 20, 5, int(torch.randint(1, n, (1,), generator=g))]   # multiples of 10 and 5, where the grids differ; and any
        t = torch.zeros(n, 4)
        for c,k in enumerate(n_pos): t[torch.randperm(n, generator=g)[:k], c] = 1
        p = (0.4*t + torch.rand(n, 4, generator=g)).clamp(0, 1)
        if seed % 2: p = (p*8).round()/8                # many ties, positives and negatives in the same tie
        if seed % 5 == 1: t[:, 3] = 0                   # a class with no positive
        yield seed, p, t

def test_voc07_ap_matches_py_faster_rcnn():
    differs = 0
    for seed, p, t in _voc07_cases():
        ref = torch.tensor([_ref_voc07(p[:, c], t[:, c]) for c in range(p.shape[1])], dtype=torch.float32)
        assert_close(voc07_ap(p, t), ref, equal_nan=True), seed
        differs += sum(abs(float(ref[c]) - _on_exact_tenths(p[:, c], t[:, c])) > 1e-9 for c in range(3))
    assert differs > 10  # the cases exercise the grid: on exact tenths these classes would score otherwise

def test_voc07_grid_case_by_hand():
    "10 positives: recall 6/10 is reached at the 6th item with precision 1, but 6/10 < 0.6000000000000001, np.arange's level 0.6."
    t = torch.tensor([1., 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1]); p = torch.linspace(1, 0, 14)
    assert float(voc07_ap(p, t)[0]) == pytest.approx((6 + 5*10/14)/11, abs=1e-6)
    assert float(voc07_ap(p, t)[0]) == pytest.approx(_ref_voc07(p, t), abs=1e-6)
    assert _on_exact_tenths(p, t) == pytest.approx((7 + 4*10/14)/11)  # exact tenths would read precision 1 at 0.6

def test_voc07_without_ties_is_voc_eval_per_item():
    "No tie here, so `voc_eval`'s per-item curve, unchanged, gives the same; and the value differs from the area (sklearn)."
    p, t = _data()
    ref = [_voc_ap_07(*[a for a in _voc_eval_curve(p[:, c].numpy().astype(np.float64), t[:, c].numpy())]) for c in range(20)]
    per_item = []
    for c in range(20):
        o = np.argsort(-p[:, c].numpy()); tc = t[:, c].numpy()[o].astype(np.float64)
        tp = np.cumsum(tc); per_item.append(_voc_ap_07(tp/tc.sum(), tp/np.arange(1, len(tc)+1)))
    assert_close(torch.tensor(ref), torch.tensor(per_item))
    assert_close(voc07_ap(p, t), torch.tensor(per_item, dtype=torch.float32))
    assert voc07_map(p, t) == pytest.approx(np.mean(per_item), abs=1e-6)
    assert abs(voc07_map(p, t) - mean_average_precision(p, t)) > 1e-3

@pytest.mark.parametrize('p, t, ap', [
    ([.9, .8, .7], [0., 0, 1], 1/3),                  # one positive, ranked last: precision 1/3 at every level
    ([.9, .7, .6], [1., 0, 1], (6 + 5*2/3)/11),        # precision 1 up to recall 0.5, 2/3 after
    ([.5, .5, .5, .1], [1., 0, 1, 0], 2/3),            # one tie holding both positives: one step, whatever the row order
    ([.5, .5, .5, .1], [0., 1, 1, 0], 2/3),
    ([.2, .2], [1., 1], 1.),                           # all positive
])
def test_voc07_small_cases(p, t, ap):
    assert float(voc07_ap(torch.tensor(p), torch.tensor(t))[0]) == pytest.approx(ap, abs=1e-6)

def test_voc07_map_skips_absent_classes():
    p, t = _data(); t[:, 3] = 0
    ap = voc07_ap(p, t)
    assert ap[3].isnan() and not ap[torch.arange(20) != 3].isnan().any()
    with pytest.warns(UserWarning, match='left out'): m = voc07_map(p, t)
    assert m == pytest.approx(float(ap[torch.arange(20) != 3].mean()), abs=1e-6)
    with pytest.raises(ValueError, match='no class has a positive'): voc07_map(p, torch.zeros_like(t))
    with pytest.raises(ValueError, match='empty'): voc07_ap(torch.zeros(0, 20), torch.zeros(0, 20))
