"""What the model gets wrong: `multilabel_confusion` against scikit-learn, and `mlr evaluate --report` / `mlr chapter`'s
interpretation figures and JSON, recomputed independently from the model folder's own predictions (scikit-learn, numpy)."""
import json, os
from pathlib import Path
from types import SimpleNamespace
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from sklearn.metrics import multilabel_confusion_matrix, average_precision_score, f1_score, log_loss
import multilabel_regress.cli as cli, multilabel_regress.recipes as recipes
from multilabel_regress.cli import main
from multilabel_regress.datasets import make_pascal_sample, make_biwi_sample
from multilabel_regress.biwi_data import get_ctr, pose_angles
from multilabel_regress.models import load_model, model_outputs
from multilabel_regress.multilabel import multilabel_confusion, false_positives_given, image_losses, top_loss_images
from multilabel_regress.keypoint import keypoint_report

# --- multilabel_confusion and friends against independent references ------------------------------

def _sk(probs, targs, th):
    "scikit-learn's matrices for the decisions probability > threshold (compared in float32, as predictions are)."
    pred = (np.asarray(probs, np.float32) > np.asarray(th, np.float32)).astype(int)
    return multilabel_confusion_matrix(np.asarray(targs).astype(int), pred, labels=list(range(np.asarray(targs).shape[1])))

@pytest.mark.parametrize('seed', range(6))
def test_confusion_matches_sklearn_with_ties(seed):
    "Random cases on a coarse grid, so many probabilities equal their class's threshold; per-class and scalar thresholds."
    g = np.random.default_rng(seed)
    n,c = int(g.integers(5, 60)), int(g.integers(2, 9))
    probs = torch.tensor(g.integers(0, 11, (n,c))/10, dtype=torch.float32)
    targs = torch.tensor(g.random((n,c)) < .35, dtype=torch.float32)
    th = [float(np.float32(x)) for x in g.integers(0, 11, c)/10]  # python floats, as model.json stores them
    assert ((probs.numpy() == np.float32(th)).sum()) > 0  # ties are in the case
    assert np.array_equal(multilabel_confusion(probs, targs, th), _sk(probs, targs, th))
    for t in (0.3, 0.5, float(probs[0,0])):  # a scalar threshold, one of them a tie
        assert np.array_equal(multilabel_confusion(probs, targs, t), _sk(probs, targs, [t]*c))

def test_confusion_tie_is_a_no():
    "A probability equal to the threshold is not a positive, as in `predict_labels` and `mlr predict` (probs > threshold)."
    cm = multilabel_confusion(torch.tensor([[.5, .7]]), torch.tensor([[1., 0.]]), [.5, .7])
    assert cm.tolist() == [[[0, 0], [1, 0]], [[1, 0], [0, 0]]]  # class 0: a false negative; class 1: a true negative
    with pytest.raises(ValueError, match='one per class'): multilabel_confusion(torch.rand(3, 2), torch.zeros(3, 2), [.5, .5, .5])

def test_losses_and_false_positives_brute_force():
    g = np.random.default_rng(3)
    probs = torch.tensor(g.uniform(.01, .99, (25, 6)), dtype=torch.float32); targs = torch.tensor(g.random((25, 6)) < .4, dtype=torch.float32)
    th = g.uniform(.2, .8, 6).astype(np.float32)
    want = [log_loss(targs[i].numpy(), probs[i].numpy(), labels=[0, 1]) for i in range(25)]  # per image, averaged over classes
    np.testing.assert_allclose(image_losses(probs, targs).numpy(), want, rtol=1e-4)
    l,i = top_loss_images(probs, targs, 5)
    assert i.tolist() == list(np.argsort(want)[::-1][:5])
    m = np.zeros((6, 6), int)
    for r in range(25):
        for a in range(6):
            for b in range(6): m[a,b] += int(targs[r,a] == 1 and targs[r,b] == 0 and probs[r,b] > th[b])
    assert false_positives_given(probs, targs, th).tolist() == m.tolist()

# --- the CLI's report on small models -------------------------------------------------------------

def _train(*args): main(['train', *map(str, args), '--epochs', '1', '--workers', '0'])

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "Small samples and three one-epoch models on them: multi-label (48 px), centre (48x64), head pose (32 px crops)."
    d = tmp_path_factory.mktemp('interp'); p,b = make_pascal_sample(d/'pascal', n_images=60, n_test=4), make_biwi_sample(d/'biwi', n_frames=3)
    _train('multilabel', '--path', p, '--out', d/'ml', '--size', 48)
    _train('keypoint', '--path', b, '--out', d/'kp', '--size', '48,64')
    _train('keypoint', '--path', b, '--out', d/'pose', '--target', 'angles', '--size', 32)
    return d, p, b

@pytest.fixture(scope='module')
def models(data):
    d = data[0]; return SimpleNamespace(ml=d/'ml', kp=d/'kp', pose=d/'pose')

def _pngs(d, names):
    "Each figure is a real PNG a person can read: it opens, and it is at least 400 x 300 pixels."
    for n in names:
        f = Path(d)/n; assert f.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', n
        with Image.open(f) as im: im.verify()
        with Image.open(f) as im: assert im.width >= 400 and im.height >= 300, (n, im.size)
        if 'worst' in n or 'top_losses' in n:  # the frames are drawn: a blank grid of axes has a handful of colours
            with Image.open(f) as im: assert len(np.unique(np.asarray(im.convert('RGB')).reshape(-1, 3), axis=0)) > 2000, n

def _valid_rows(p):
    df = pd.read_csv(p/'train.csv'); return df[df.is_valid]

def _check_multilabel(rep, model_dir, p):
    "The JSON's numbers, recomputed from the model folder: its outputs on the validation rows, scored with scikit-learn and numpy."
    model,meta = load_model(model_dir); vocab = meta['data']['targets']['vocab']; df = _valid_rows(p)
    files = [p/'train'/f for f in df.fname]
    probs = model_outputs(model, meta, files).sigmoid().numpy()
    targs = np.array([[int(v in l.split()) for v in vocab] for l in df.labels])
    th = np.asarray(meta['thresholds'], np.float32); pred = (probs > th).astype(int)
    assert rep['images'] == len(files)
    cms = multilabel_confusion_matrix(targs, pred, labels=list(range(len(vocab))))
    f1s = f1_score(targs, pred, average=None, zero_division=np.nan)
    for j,v in enumerate(vocab):
        pc = rep['per_class'][v]
        assert [pc['tn'], pc['fp'], pc['fn'], pc['tp']] == cms[j].ravel().tolist(), v
        assert pc['positives'] == targs[:,j].sum() and pc['threshold'] == pytest.approx(float(th[j]))
        if targs[:,j].any(): assert pc['ap'] == pytest.approx(average_precision_score(targs[:,j], probs[:,j]), abs=1e-4), v
        else: assert pc['ap'] is None
        if np.isnan(f1s[j]): assert pc['f1'] is None
        else: assert pc['f1'] == pytest.approx(f1s[j], abs=1e-4), v
    losses = np.array([log_loss(targs[i], probs[i], labels=[0, 1]) for i in range(len(files))])
    order = np.argsort(-losses, kind='stable')[:len(rep['top_losses'])]
    assert [t['file'] for t in rep['top_losses']] == [files[i].name for i in order]
    for t,i in zip(rep['top_losses'], order):
        assert t['loss'] == pytest.approx(losses[i], rel=1e-3)
        assert t['true'] == [v for v,x in zip(vocab, targs[i]) if x] and t['predicted'] == [v for v,x in zip(vocab, pred[i]) if x]
    fp = (pred == 1) & (targs == 0)
    assert rep['false_positives_given']['counts'] == (targs.T @ fp.astype(int)).tolist()

def test_evaluate_report_multilabel(data, models, tmp_path, capsys):
    d,p,_ = data; out = tmp_path/'rep'
    main(['evaluate', str(models.ml), '--path', str(p), '--report', str(out), '--json-out', str(tmp_path/'m.json')])
    rep = json.loads((out/'multilabel_report.json').read_text())
    assert len(rep['figures']) >= 4 and sorted(rep['figures']) == sorted(f.name for f in out.glob('*.png'))
    _pngs(out, rep['figures'])
    _check_multilabel(rep, models.ml, p)
    m = json.loads((tmp_path/'m.json').read_text())  # the report and the metrics agree
    assert {v: c['ap'] for v,c in rep['per_class'].items()} == pytest.approx({v: c['ap'] for v,c in m['per_class'].items()}, abs=1e-4)

def test_evaluate_report_keypoint(data, models, tmp_path):
    _,_,b = data; out = tmp_path/'rep'
    main(['evaluate', str(models.kp), '--path', str(b), '--report', str(out)])
    rep = json.loads((out/'keypoint_report.json').read_text())
    _pngs(out, rep['figures']); assert set(rep['figures']) == {'keypoint_worst_frames.png', 'keypoint_error_by_position.png'}
    model,meta = load_model(models.kp); files = sorted((b/'13').glob('frame_*_rgb.jpg'))
    wh = np.array([Image.open(f).size for f in files], float)
    pred = (model_outputs(model, meta, files).view(len(files), -1, 2)[:,0].numpy() + 1)/2*wh  # [-1, 1] units to pixels
    true = np.array([get_ctr(f).tolist() for f in files])
    err = np.linalg.norm(pred-true, axis=1)
    assert rep['frames'] == len(files) and [r['file'] for r in rep['per_frame']] == [f'13/{f.name}' for f in files]
    np.testing.assert_allclose([r['error_px'] for r in rep['per_frame']], err, atol=1e-2)
    np.testing.assert_allclose([r['true'] for r in rep['per_frame']], true, atol=1e-2)
    assert rep['rmse_px'] == pytest.approx(np.sqrt((err**2).mean()), abs=1e-3) and rep['max_px'] == pytest.approx(err.max(), abs=1e-3)
    assert rep['worst'][0] == f'13/{files[int(err.argmax())].name}'

def test_evaluate_report_pose(data, models, tmp_path):
    _,_,b = data; out = tmp_path/'rep'
    main(['evaluate', str(models.pose), '--path', str(b), '--report', str(out)])
    rep = json.loads((out/'pose_report.json').read_text())
    _pngs(out, rep['figures']); assert len(rep['figures']) == 3
    model,meta = load_model(models.pose); files = sorted((b/'13').glob('frame_*_rgb.jpg'))
    ctrs = torch.stack([get_ctr(f) for f in files]).float()
    pred = model_outputs(model, meta, files, ctrs=ctrs).view(-1, 3).numpy()*meta['data']['targets']['scale']  # crops around the true centres
    true = np.array([list(pose_angles(f)) for f in files])
    e = np.abs(pred-true)
    assert rep['mae_deg'] == pytest.approx(e.mean(), abs=1e-3)
    for j,a in enumerate(('yaw', 'pitch', 'roll')): assert rep[f'mae_{a}'] == pytest.approx(e[:,j].mean(), abs=1e-3)
    np.testing.assert_allclose([r['abs_error_deg'] for r in rep['per_frame']], e, atol=1e-2)

def test_keypoint_report_checks_its_input(tmp_path):
    f = [tmp_path/'13'/'frame_00001_rgb.jpg']
    with pytest.raises(ValueError, match='must be'): keypoint_report(f, torch.zeros(1, 3), torch.zeros(1, 3), tmp_path/'r')
    with pytest.raises(ValueError, match='ctrs'): keypoint_report(f, torch.zeros(1, 3), torch.zeros(1, 3), tmp_path/'r', target='angles')
    assert not (tmp_path/'r').exists()  # nothing written

def test_chapter_writes_the_interpretation(data, tmp_path, monkeypatch, capsys):
    "`mlr chapter` puts all three models' figures and JSON into its report folder, with the numbers of its saved models."
    _,p,b = data
    monkeypatch.setattr(recipes, 'get_pascal', lambda source: p); monkeypatch.setattr(recipes, 'get_biwi', lambda source: b)
    rep = tmp_path/'report'
    main(['chapter', '--report', str(rep), '--ml-epochs', '1', '--kp-epochs', '1', '--pose-epochs', '1'])
    it = rep/'interpretation'
    for name in ('multilabel', 'keypoint', 'pose'):
        r = json.loads((it/f'{name}_report.json').read_text()); _pngs(it, r['figures'])
    ml = json.loads((it/'multilabel_report.json').read_text())
    assert len(ml['figures']) >= 4
    _check_multilabel(ml, rep/'models'/'multilabel', p)
    m = json.loads((rep/'metrics.json').read_text())
    assert json.loads((it/'keypoint_report.json').read_text())['rmse_px'] == pytest.approx(m['keypoint']['rmse_px'], abs=0.01)
    assert json.loads((it/'pose_report.json').read_text())['mae_deg'] == pytest.approx(m['pose']['mae_deg'], abs=0.01)

def test_report_into_a_file_is_one_line(data, models, tmp_path, capsys):
    "`--report` naming a file: exit 1, one line saying so; the file is untouched."
    _,p,_ = data; f = tmp_path/'notes.txt'; f.write_text('mine')
    with pytest.raises(SystemExit) as e: main(['evaluate', str(models.ml), '--path', str(p), '--report', str(f)])
    assert e.value.code == 1 and f.read_text() == 'mine'
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'is a file, not a folder' in err[0] and 'Traceback' not in err[0]
