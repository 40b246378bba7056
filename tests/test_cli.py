"The `mlr` console script as a user runs it, on generated samples: train, evaluate, predict, and bad input."
import json, shutil, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from multilabel_regress.datasets import make_pascal_sample, make_biwi_sample, pose_text
from multilabel_regress.models import load_model, model_outputs

def mlr(*args, ok=True):
    r = subprocess.run(['mlr', *map(str, args)], capture_output=True, text=True, timeout=600)
    if ok: assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return r

def one_line_error(r, *words):
    "A failure: non-zero exit, one line on stderr that says what and where."
    assert r.returncode != 0
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    for w in words: assert w in lines[0], lines[0]
    assert 'Traceback' not in r.stderr
    return lines[0]

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp('cli')
    return d, make_pascal_sample(d/'pascal', n_images=60, n_test=4), make_biwi_sample(d/'biwi', n_frames=2)

@pytest.fixture(scope='module')
def ml_model(data):
    d,p,_ = data
    mlr('train', 'multilabel', '--path', p, '--out', d/'ml', '--epochs', 1, '--size', 48, '--workers', 0)
    return d/'ml'

@pytest.fixture(scope='module')
def kp_model(data):
    d,_,b = data
    mlr('train', 'keypoint', '--path', b, '--out', d/'kp', '--epochs', 1, '--size', '48,64', '--workers', 0)
    return d/'kp'

def test_help():
    for cmd in ('chapter', 'sample', 'train', 'evaluate', 'predict'):
        r = mlr(cmd, '--help'); assert r.stdout.startswith(f'usage: mlr {cmd}') and len(r.stdout.splitlines()) > 4
    assert 'train' in mlr().stdout

def test_train_writes_safe_model(ml_model):
    assert sorted(p.name for p in ml_model.iterdir()) == ['model.json', 'model.safetensors']
    meta = json.loads((ml_model/'model.json').read_text())
    assert meta['task'] == 'multilabel' and len(meta['vocab']) == len(meta['thresholds']) and meta['size'] == [48,48]

def test_round_trip_identical(data, tmp_path):
    "Predictions of the trained model in memory and of the model folder loaded back are identical."
    from multilabel_regress.cli import train
    d,p,_ = data
    learn,meta = train('multilabel', path=str(p), out=str(tmp_path/'m'), epochs=1, size='48', workers=0)
    files = sorted((p/'train').glob('*.jpg'))[:5]
    learn.model.eval()
    before = model_outputs(learn.model, meta, files)
    model,_ = load_model(tmp_path/'m')
    torch.testing.assert_close(model_outputs(model, meta, files), before, rtol=0, atol=0)

def test_evaluate_and_predict_multilabel(data, ml_model):
    d,p,_ = data
    mlr('evaluate', ml_model, '--path', p, '--json-out', d/'m.json')
    m = json.loads((d/'m.json').read_text())
    assert 0 <= m['mAP'] <= 1 and set(m['accuracy_multi']) == {'0.1','0.2','0.5','0.99'} and m['images'] > 0
    imgs = sorted((p/'train').glob('*.jpg'))[:3]
    res = json.loads(mlr('predict', ml_model, *imgs).stdout)
    meta = json.loads((ml_model/'model.json').read_text())
    for r in res:  # labels are the classes over their tuned thresholds
        assert r['labels'] == [v for v,t in zip(meta['vocab'], meta['thresholds']) if r['probs'][v] > t]
    csv = mlr('predict', ml_model, *imgs, '--format', 'csv', '--out', d/'pred.csv')
    assert pd.read_csv(d/'pred.csv')['file'].tolist() == [str(f) for f in imgs]

def test_keypoint_train_evaluate_predict(data, kp_model):
    d,_,b = data
    mlr('evaluate', kp_model, '--path', b, '--json-out', d/'k.json')
    m = json.loads((d/'k.json').read_text())
    assert m['persons'] == ['13'] and m['images'] == 2 and m['rmse_px'] > 0
    res = json.loads(mlr('predict', kp_model, b/'13'/'frame_00003_rgb.jpg').stdout)
    assert 0 <= res[0]['x'] <= 640 and 0 <= res[0]['y'] <= 480

@pytest.fixture(scope='module')
def pose_model(data):
    d,_,b = data
    mlr('train', 'keypoint', '--path', b, '--out', d/'pose', '--target', 'angles', '--epochs', 1, '--size', 32, '--workers', 0)
    return d/'pose'

def test_pose_model_crops_around_the_head(data, pose_model, kp_model):
    "A head-pose model is trained on crops; it evaluates on true or predicted centres and predicts through a centre model."
    d,_,b = data
    meta = json.loads((pose_model/'model.json').read_text())
    assert meta['target'] == 'angles' and meta['preprocess'] == 'head_crop' and meta['crop_px'] == 160 and meta['size'] == [32,32]
    mlr('evaluate', pose_model, '--path', b, '--json-out', d/'p.json')
    m = json.loads((d/'p.json').read_text())
    assert m['target'] == 'angles' and m['centres'].startswith('true') and m['images'] == 2 and m['mae_deg'] >= 0
    mlr('evaluate', pose_model, '--path', b, '--centre-model', kp_model, '--json-out', d/'p2.json')
    m2 = json.loads((d/'p2.json').read_text())
    assert m2['centres'].startswith('predicted') and m2['centre_rmse_px'] > 0
    f = b/'13'/'frame_00003_rgb.jpg'
    res = json.loads(mlr('predict', pose_model, f, '--centre-model', kp_model).stdout)
    ctr = json.loads(mlr('predict', kp_model, f).stdout)[0]
    assert (res[0]['x'], res[0]['y']) == (ctr['x'], ctr['y']) and set(res[0]) == {'file','x','y','yaw','pitch','roll'}
    # the same crop, cut by hand, gives the same angles
    from multilabel_regress.biwi_data import head_crop
    from multilabel_regress.models import preprocess, open_rgb
    model,_ = load_model(pose_model)
    x = preprocess(head_crop(open_rgb(f), (ctr['x'], ctr['y']), 160, 32), dict(meta, preprocess='resize'))
    with torch.no_grad(): a = model(x[None])[0]*meta['angle_scale']
    assert abs(float(a[0]) - res[0]['yaw']) < 0.02 and abs(float(a[2]) - res[0]['roll']) < 0.02

def test_pose_model_needs_a_centre_model(data, pose_model, ml_model):
    d,_,b = data
    f = b/'13'/'frame_00003_rgb.jpg'
    one_line_error(mlr('predict', pose_model, f, ok=False), '--centre-model')
    one_line_error(mlr('predict', pose_model, f, '--centre-model', ml_model, ok=False), 'not a centre model')
    one_line_error(mlr('train', 'keypoint', '--path', b, '--out', d/'x', '--target', 'angles', '--size', '32,48', ok=False), 'square')
    assert not (d/'x').exists()

# --- bad input: each works, or stops with one line naming the file and the fix ------------------

@pytest.fixture
def pcopy(data, tmp_path):
    d = tmp_path/'pascal'; shutil.copytree(data[1], d); return d

@pytest.fixture
def bcopy(data, tmp_path):
    d = tmp_path/'biwi'; shutil.copytree(data[2], d); return d

def test_mistyped_option_and_missing_path(tmp_path):
    one_line_error(mlr('train', 'multilabel', '--pth', tmp_path, ok=False), '--pth', 'mlr train --help')
    one_line_error(mlr('train', 'multilabel', '--path', tmp_path/'nowhere', '--out', tmp_path/'m', ok=False), 'nowhere', 'not a folder')
    one_line_error(mlr('trian', ok=False), 'trian')
    assert not (tmp_path/'m').exists()

@pytest.mark.parametrize('damage,words', [
    (lambda f: f.write_bytes(b'not a jpeg at all'), ['not a readable image']),
    (lambda f: f.write_bytes(f.read_bytes()[:300]), ['not a readable image']),
    (lambda f: f.unlink(), ['is missing']),
])
def test_train_bad_image_stops_before_training(pcopy, tmp_path, damage, words):
    f = pcopy/'train'/pd.read_csv(pcopy/'train.csv').fname[3]; damage(f)
    r = mlr('train', 'multilabel', '--path', pcopy, '--out', tmp_path/'m', '--epochs', 1, '--workers', 0, ok=False)
    one_line_error(r, f.name, *words)
    assert not (tmp_path/'m').exists()  # nothing half-written

@pytest.mark.parametrize('col', ['labels', 'is_valid'])
def test_train_csv_missing_column(pcopy, tmp_path, col):
    pd.read_csv(pcopy/'train.csv').drop(columns=col).to_csv(pcopy/'train.csv', index=False)
    one_line_error(mlr('train', 'multilabel', '--path', pcopy, '--out', tmp_path/'m', ok=False), 'train.csv', col)

def test_train_empty_labels(pcopy, tmp_path):
    df = pd.read_csv(pcopy/'train.csv'); df.loc[4,'labels'] = '  '; df.to_csv(pcopy/'train.csv', index=False)
    one_line_error(mlr('train', 'multilabel', '--path', pcopy, '--out', tmp_path/'m', ok=False), 'row 6', 'empty labels')

def test_train_extra_spaces_and_odd_modes_work(pcopy, tmp_path):
    "Labels with extra spaces train as the clean labels; grayscale, RGBA, CMYK and 16-bit images are converted."
    df = pd.read_csv(pcopy/'train.csv')
    df.loc[0,'labels'] = '  ' + df.loc[0,'labels'].replace(' ', '   ') + ' '
    df.to_csv(pcopy/'train.csv', index=False)
    for i,mode in zip(range(1,5), ['L','RGBA','CMYK','I;16']):
        f = pcopy/'train'/df.fname[i]; im = Image.open(f)
        if mode == 'I;16': Image.fromarray(np.asarray(im.convert('L')).astype(np.uint16)*257).save(f, format='PNG')
        else: im.convert(mode).save(f, format='JPEG' if mode in ('L','CMYK') else 'PNG')
    mlr('train', 'multilabel', '--path', pcopy, '--out', tmp_path/'m', '--epochs', 1, '--size', 48, '--workers', 0)
    vocab = json.loads((tmp_path/'m'/'model.json').read_text())['vocab']
    assert '' not in vocab and all(v == v.strip() for v in vocab)
    res = json.loads(mlr('predict', tmp_path/'m', *[pcopy/'train'/df.fname[i] for i in range(1,5)]).stdout)
    assert len(res) == 4

def test_evaluate_unknown_label(ml_model, pcopy):
    df = pd.read_csv(pcopy/'train.csv'); i = df.index[df.is_valid][0]; df.loc[i,'labels'] = 'zebra'; df.to_csv(pcopy/'train.csv', index=False)
    one_line_error(mlr('evaluate', ml_model, '--path', pcopy, ok=False), "'zebra'", df.fname[i], '--ignore-unknown')
    r = mlr('evaluate', ml_model, '--path', pcopy, '--ignore-unknown')
    assert "unknown_labels: ['zebra']" in r.stdout

def test_predict_bad_images(ml_model, pcopy, tmp_path):
    good = sorted((pcopy/'train').glob('*.jpg'))[:2]
    bad = tmp_path/'bad.jpg'; bad.write_bytes(good[0].read_bytes()[:200])
    one_line_error(mlr('predict', ml_model, good[0], bad, ok=False), 'bad.jpg', '--skip-bad')
    r = mlr('predict', ml_model, good[0], bad, good[1], '--skip-bad')
    assert len(json.loads(r.stdout)) == 2 and 'skipped 1 unreadable image' in r.stderr
    one_line_error(mlr('predict', ml_model, ok=False), 'images')  # an empty image list
    assert not (tmp_path/'out.json').exists()

@pytest.mark.parametrize('text,words', [
    (None, ['frame_00003_pose.txt', 'is missing']),
    ('1 0 0 \n0 1 0 \n', ['frame_00003_pose.txt', 'malformed']),
    ('1 0 0 \n0 1 0 \n0 0 1 \n\nnan 3 900 \n', ['frame_00003_pose.txt', 'NaN']),
])
def test_train_keypoint_bad_pose(bcopy, tmp_path, text, words):
    f = bcopy/'07'/'frame_00003_pose.txt'
    if text is None: f.unlink()
    else: f.write_text(text)
    one_line_error(mlr('train', 'keypoint', '--path', bcopy, '--out', tmp_path/'k', ok=False), *words)
    assert not (tmp_path/'k').exists()

def test_train_keypoint_bad_cal(bcopy, tmp_path):
    (bcopy/'04'/'rgb.cal').write_text('640 480\n')
    one_line_error(mlr('train', 'keypoint', '--path', bcopy, '--out', tmp_path/'k', ok=False), '04/rgb.cal', 'intrinsics')

def test_existing_model_not_overwritten(ml_model, data):
    before = (ml_model/'model.safetensors').read_bytes()
    one_line_error(mlr('train', 'multilabel', '--path', data[1], '--out', ml_model, ok=False), '--force')
    assert (ml_model/'model.safetensors').read_bytes() == before
