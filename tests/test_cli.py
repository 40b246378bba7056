"""The `mlr` console script on generated samples: train, evaluate, predict, chapter, and bad input.

Most runs call `main([...])` in this process (each subprocess would import torch again); a few run the real
console script, as `python -m multilabel_regress.cli` of the environment running the tests (not whatever `mlr` is on PATH)."""
import inspect, json, os, re, shutil, struct, subprocess, sys, zlib
from pathlib import Path
from types import SimpleNamespace
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from sklearn.metrics import f1_score
import multilabel_regress, multilabel_regress.cli as cli, multilabel_regress.recipes as recipes, multilabel_regress.predictions as predictions
from multilabel_regress.cli import main
from multilabel_regress.datasets import make_pascal_sample, make_biwi_sample, read_cal_file
from multilabel_regress.models import load_model, model_outputs

def run(capsys, *args, code=0):
    "`mlr ARGS` in this process: its exit code (checked against `code`), stdout and stderr."
    capsys.readouterr()
    try: main([str(a) for a in args]); rc = 0
    except SystemExit as e: rc = e.code
    out,err = capsys.readouterr()
    assert rc == code, f"exit {rc}, expected {code}\nstdout: {out[-2000:]}\nstderr: {err[-2000:]}"
    return SimpleNamespace(returncode=rc, stdout=out, stderr=err)

def console(*args):
    "A real console-script run: `python -m multilabel_regress.cli ARGS`."
    return subprocess.run([sys.executable, '-m', 'multilabel_regress.cli', *map(str, args)], capture_output=True, text=True, timeout=600)

def one_line_error(r, *words):
    "A user's mistake: exit 1, one line on stderr that says what and where, no traceback."
    assert r.returncode == 1, (r.returncode, r.stderr)
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    for w in words: assert w in lines[0], lines[0]
    assert 'Traceback' not in r.stderr
    return lines[0]

def usage_error(r, *words):
    "A command line argparse refuses: exit 2, the usage, then the error with a pointer to --help."
    assert r.returncode == 2 and r.stderr.startswith('usage: mlr'), r.stderr
    last = r.stderr.strip().splitlines()[-1]
    for w in words: assert w in last, last
    assert '--help' in last and 'Traceback' not in r.stderr
    return last

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp('cli')
    return d, make_pascal_sample(d/'pascal', n_images=60, n_test=4), make_biwi_sample(d/'biwi', n_frames=2)

@pytest.fixture(scope='module')
def ml_model(data):
    d,p,_ = data
    main(['train', 'multilabel', '--path', str(p), '--out', str(d/'ml'), '--epochs', '1', '--size', '48', '--workers', '0'])
    return d/'ml'

@pytest.fixture(scope='module')
def kp_model(data):
    "A centre model, trained with the default --out (models/keypoint) in the data folder."
    d,_,b = data
    cwd = os.getcwd(); os.chdir(d)
    try: main(['train', 'keypoint', '--path', str(b), '--epochs', '1', '--size', '48,64', '--workers', '0'])
    finally: os.chdir(cwd)
    return d/'models'/'keypoint'

@pytest.fixture(scope='module')
def pose_model(data, kp_model):
    "A head-pose model, trained with the default --out after the centre model, in the same folder."
    d,_,b = data
    before = (kp_model/'model.safetensors').read_bytes()
    cwd = os.getcwd(); os.chdir(d)
    try: main(['train', 'keypoint', '--path', str(b), '--target', 'angles', '--epochs', '1', '--size', '32', '--workers', '0'])
    finally: os.chdir(cwd)
    assert (kp_model/'model.safetensors').read_bytes() == before  # the centre model the head-pose model needs is still there
    return d/'models'/'pose'

@pytest.fixture
def pcopy(data, tmp_path):
    d = tmp_path/'pascal'; shutil.copytree(data[1], d); return d

@pytest.fixture
def bcopy(data, tmp_path):
    d = tmp_path/'biwi'; shutil.copytree(data[2], d); return d

def bomb_png(f, w=30000, h=30000):
    "A small PNG whose header claims `w` x `h` pixels: more than PIL opens (a possible decompression bomb)."
    def chunk(t, b): return struct.pack('>I', len(b)) + t + b + struct.pack('>I', zlib.crc32(t+b) & 0xffffffff)
    f.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
                  + chunk(b'IDAT', zlib.compress(b'\0'*16)) + chunk(b'IEND', b''))
    return f

# --- conventions ---------------------------------------------------------------------------------

def test_help(capsys):
    for cmd in ('chapter', 'sample', 'train', 'evaluate', 'predict'):
        r = run(capsys, cmd, '--help'); assert r.stdout.startswith(f'usage: mlr {cmd}') and len(r.stdout.splitlines()) > 4
    r = run(capsys, '--help'); assert all(c in r.stdout for c in cli._COMMANDS)

def test_version(capsys):
    assert run(capsys, '--version').stdout.strip() == f'mlr {multilabel_regress.__version__}'

@pytest.mark.parametrize('args,words', [
    ((), ['required: COMMAND']),
    (('trian',), ["invalid choice: 'trian'"]),
    (('train', 'multilabel'), ['required: --path']),
    (('train', 'regression', '--path', '.'), ["invalid choice: 'regression'"]),
    (('train', 'keypoint', '--path', '.', '--target', 'nose'), ['--target', "invalid choice: 'nose'"]),
    (('train', 'multilabel', '--path', '.', '--arch', 'resnet9'), ['--arch', "invalid choice"]),
    (('predict', 'm', 'a.jpg', '--format', 'xml'), ['--format', "invalid choice: 'xml'"]),
    (('sample', 'zebra', 'd'), ["invalid choice: 'zebra'"]),
    (('evaluate', 'm'), ['required: --path']),
    (('train', 'multilabel', '--path', '.', '--pth', '.'), ['unrecognized arguments: --pth']),
])
def test_usage_errors_exit_2(capsys, args, words):
    usage_error(run(capsys, *args, code=2), *words)

@pytest.mark.parametrize('args,words', [
    (('train', 'multilabel', '--path', '.', '--epochs', '0'), ['--epochs', 'at least 1, not 0']),
    (('train', 'multilabel', '--path', '.', '--lr', '0'), ['--lr', 'above 0, not 0']),
    (('train', 'multilabel', '--path', '.', '--lr', 'nan'), ['--lr', 'finite']),
    (('train', 'multilabel', '--path', '.', '--bs', '0'), ['--bs', 'at least 1']),
    (('train', 'keypoint', '--path', '.', '--crop-px', '0'), ['--crop-px', 'above 0']),
    (('sample', 'pascal', 'd', '--n', '0'), ['--n', 'at least 1, not 0']),
    (('chapter', '--ml-epochs', '0'), ['--ml-epochs', 'at least 1']),
    (('train', 'multilabel', '--path', '.', '--epochs', 'two'), ['--epochs', 'whole number']),
])
def test_explicit_zeros_refused(capsys, tmp_path, args, words):
    "A zero is refused by name, not silently replaced by the default."
    usage_error(run(capsys, *args, code=2), *words)

def test_flag_defaults_are_the_functions(capsys):
    "Every --flag/--no-flag pair defaults to its function's default (plain argparse: no library version decides)."
    for name,f in cli._COMMANDS.items():
        p = cli._parser(name)
        for k,prm in inspect.signature(f).parameters.items():
            a = next(a for a in p._actions if a.dest == k)
            if isinstance(prm.default, bool):
                assert a.default is prm.default and f'--no-{k.replace("_","-")}' in a.option_strings, (name, k)
    args = lambda *a: vars(cli._parser('train').parse_args(['keypoint', '--path', 'd', *a]))
    assert args()['speedups'] is True and args('--no-speedups')['speedups'] is False and args()['force'] is False

def test_package_bug_keeps_its_traceback(ml_model, data, monkeypatch, capsys):
    "Only the user's mistakes become one line: a ValueError from inside the package (or torch) is raised as it is."
    def broken(*a, **k): raise ValueError('a bug deep inside')
    monkeypatch.setattr(predictions, 'model_outputs', broken)
    with pytest.raises(ValueError, match='a bug deep inside'): main(['predict', str(ml_model), str(sorted((data[1]/'train').glob('*.jpg'))[0])])

# --- real console-script runs --------------------------------------------------------------------

def test_console_script_runs(ml_model, data, tmp_path):
    "`python -m multilabel_regress.cli` is the console script: its version, a one-line user error, clean JSON on stdout."
    r = console('--version'); assert r.returncode == 0 and r.stdout.strip() == f'mlr {multilabel_regress.__version__}'
    one_line_error(console('train', 'multilabel', '--path', tmp_path/'nowhere', '--out', tmp_path/'m'), 'nowhere', 'not a folder')
    imgs = sorted((data[1]/'train').glob('*.jpg'))[:2]
    r = console('predict', ml_model, *imgs)
    assert r.returncode == 0 and [x['file'] for x in json.loads(r.stdout)] == list(map(str, imgs))

# --- train, evaluate, predict --------------------------------------------------------------------

def test_train_writes_safe_model(ml_model, data):
    assert sorted(p.name for p in ml_model.iterdir()) == ['model.json', 'model.safetensors']
    meta = json.loads((ml_model/'model.json').read_text())
    vocab = meta['data']['targets']['vocab']
    assert meta['task'] == 'multilabel' and len(vocab) == len(meta['thresholds']) and meta['data']['size'] == [48,48]
    n_valid = int((pd.read_csv(data[1]/'train.csv').is_valid.astype(str) == 'True').sum())
    assert meta['thresholds_tuned_on'] == dict(data=str(data[1].resolve()), csv='train.csv', rows='is_valid=True', images=n_valid)
    # single or per-class thresholds, chosen on held-out evidence, stored with it; prediction uses `thresholds`
    ch = meta['threshold_choice']; ev = ch['evidence']
    assert ch['kind'] == ('per_class' if ev['f1_per_class'] > ev['f1_single'] else 'single') and ev['tuned_on'] + ev['scored_on'] == n_valid
    if ch['kind'] == 'single': assert meta['thresholds'] == [meta['threshold']]*len(vocab)

def test_train_and_evaluate_print_the_same_map(data, tmp_path, capsys):
    "`mlr train` and `mlr evaluate` rank the same logits: one mAP for the same model and folder (probabilities tie)."
    d,p,_ = data
    out = run(capsys, 'train', 'multilabel', '--path', p, '--out', tmp_path/'m', '--epochs', '1', '--size', '32',
              '--workers', '0').stdout
    trained = re.search(r'valid mAP (\d\.\d{4})', out).group(1)
    evaluated = re.search(r'^mAP: (\d\.\d{4})$', run(capsys, 'evaluate', tmp_path/'m', '--path', p).stdout, re.M).group(1)
    assert trained == evaluated

def test_scored_map_ranks_logits():
    "On logits [20, 25, 18, -3] for targets [1, 1, 0, 0] the ranking is perfect; float32 sigmoids tie at 1.0 and lose it."
    logits,targs = torch.tensor([[20.], [25.], [18.], [-3.]]),torch.tensor([[1.], [1.], [0.], [0.]])
    assert predictions.scored_map(logits, targs) == (1.0, 1)
    assert predictions.scored_map(logits.sigmoid(), targs)[0] == pytest.approx(2/3, abs=1e-3)

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

def test_evaluate_and_predict_multilabel(data, ml_model, capsys):
    d,p,_ = data
    run(capsys, 'evaluate', ml_model, '--path', p, '--json-out', d/'m.json')
    m = json.loads((d/'m.json').read_text())
    assert 0 <= m['mAP'] <= 1 and set(m['accuracy_multi']) == {'0.1','0.2','0.5','0.99'} and m['images'] > 0
    imgs = sorted((p/'train').glob('*.jpg'))[:3]
    res = json.loads(run(capsys, 'predict', ml_model, *imgs).stdout)
    meta = json.loads((ml_model/'model.json').read_text())
    model,_ = load_model(ml_model); probs = model_outputs(model, meta, imgs).sigmoid()
    for r,q in zip(res, probs):  # labels: the classes over their thresholds, compared unrounded (a validation image can sit on one)
        vocab = meta['data']['targets']['vocab']
        assert r['labels'] == [v for v,over in zip(vocab, (q > torch.tensor(meta['thresholds'])).tolist()) if over]
        assert all(abs(r['probs'][v] - float(x)) <= 5e-5 for v,x in zip(vocab, q))
    run(capsys, 'predict', ml_model, *imgs, '--format', 'csv', '--out', d/'pred.csv')
    assert pd.read_csv(d/'pred.csv')['file'].tolist() == [str(f) for f in imgs]

def _sk_f1(res, df, vocab):
    "Micro F1 of predicted labels against the CSV's, by scikit-learn."
    true = {r.fname: r.labels.split() for r in df.itertuples()}
    Y = np.array([[v in true[Path(r['file']).name] for v in vocab] for r in res])
    P = np.array([[v in r['labels'] for v in vocab] for r in res])
    return f1_score(Y, P, average='micro', zero_division=0)

def test_evaluate_says_where_thresholds_were_tuned(data, ml_model, capsys):
    "On the tuning rows the F1 is labelled optimistic, with a held-out figure beside it; on another CSV it is not."
    d,p,_ = data
    run(capsys, 'evaluate', ml_model, '--path', p, '--json-out', d/'t.json')
    m = json.loads((d/'t.json').read_text())
    assert m['f1_on_tuning_rows'] is True and 'optimistic' in m['f1_note'] and m['rows'] == 'is_valid=True'
    assert m['thresholds_tuned_on']['csv'] == 'train.csv'
    assert set(m['f1_micro_held_out']) == {'single', 'per_class'} and all(0 <= v <= 1 for v in m['f1_micro_held_out'].values())
    # the F1 reported is the F1 of the labels `mlr predict` gives, by scikit-learn
    df = pd.read_csv(p/'train.csv'); df = df[df.is_valid]
    res = json.loads(run(capsys, 'predict', ml_model, *[p/'train'/f for f in df.fname]).stdout)
    assert m['f1_micro'] == pytest.approx(_sk_f1(res, df, json.loads((ml_model/'model.json').read_text())['data']['targets']['vocab']), abs=1e-6)

def test_evaluate_any_csv_and_folder(data, ml_model, capsys):
    "The sample's test split (no is_valid column: every row) is scored with --csv test.csv --folder test."
    d,p,_ = data  # (this small sample's test split has a class its 60 training images lack: --ignore-unknown)
    run(capsys, 'evaluate', ml_model, '--path', p, '--csv', 'test.csv', '--folder', 'test', '--ignore-unknown', '--json-out', d/'test.json')
    m = json.loads((d/'test.json').read_text())
    df = pd.read_csv(p/'test.csv')
    assert m['images'] == len(df) == 4 and m['rows'] == 'all' and m['f1_on_tuning_rows'] is False and m['csv'].endswith('test.csv')
    res = json.loads(run(capsys, 'predict', ml_model, *[p/'test'/f for f in df.fname]).stdout)
    assert m['f1_micro'] == pytest.approx(_sk_f1(res, df, json.loads((ml_model/'model.json').read_text())['data']['targets']['vocab']), abs=1e-6)
    one_line_error(run(capsys, 'evaluate', ml_model, '--path', p, '--csv', 'nope.csv', code=1), 'nope.csv', '--csv')

def test_keypoint_train_evaluate_predict(data, kp_model, capsys):
    d,_,b = data
    meta = json.loads((kp_model/'model.json').read_text())  # frames cached at the batch size, resampled as `aug_transforms` does
    spec = meta['data']
    assert spec['kind'] == 'frame' and spec['presize'] == spec['size'] == [48,64] and spec['params']['resample']['align_corners']
    run(capsys, 'evaluate', kp_model, '--path', b, '--json-out', d/'k.json')
    m = json.loads((d/'k.json').read_text())
    assert m['persons'] == ['13'] and m['images'] == 2 and m['rmse_px'] > 0
    res = json.loads(run(capsys, 'predict', kp_model, b/'13'/'frame_00003_rgb.jpg').stdout)
    assert 0 <= res[0]['x'] <= 640 and 0 <= res[0]['y'] <= 480
    one_line_error(run(capsys, 'evaluate', kp_model, '--path', b, '--csv', 'test.csv', code=1), '--csv', 'multi-label')

def test_default_model_folders_per_target(data, kp_model, pose_model):
    "The centre and head-pose models get distinct default folders: training one never replaces the other."
    assert kp_model != pose_model
    assert json.loads((kp_model/'model.json').read_text())['data']['targets']['kind'] == 'point'
    assert json.loads((pose_model/'model.json').read_text())['data']['targets']['kind'] == 'angles'

def test_train_summary_uses_real_frame_sizes(bcopy, tmp_path, capsys):
    "Frames of 320x240 (intrinsics scaled to match): the summary's centre RMSE is the one `mlr evaluate` measures."
    d = bcopy/'13'
    K = read_cal_file(d/'rgb.cal'); K[:2] /= 2
    (d/'rgb.cal').write_text('\n'.join(' '.join(f'{v:g}' for v in row) + ' ' for row in K) + '\n\n0 0 0 0 \n\n1 0 0 \n0 1 0 \n0 0 1 \n\n0 0 0 \n\n320 240\n')
    for f in d.glob('*_rgb.jpg'): Image.open(f).resize((320,240)).save(f, quality=95)
    r = run(capsys, 'train', 'keypoint', '--path', bcopy, '--out', tmp_path/'k', '--epochs', 1, '--size', '48,64', '--workers', 0)
    said = float(re.search(r'valid centre RMSE ([\d.]+) px', r.stdout).group(1))
    run(capsys, 'evaluate', tmp_path/'k', '--path', bcopy, '--json-out', tmp_path/'k.json')
    measured = json.loads((tmp_path/'k.json').read_text())['rmse_px']
    assert said == pytest.approx(measured, rel=0.1), (said, measured)  # at 640x480 it would say twice as much

def test_progress_bar_only_on_a_terminal(data, ml_model, monkeypatch, capsys):
    "Over several chunks, a progress bar on stderr when it is a terminal; stdout stays clean JSON either way."
    imgs = sorted((data[1]/'train').glob('*.jpg'))[:5]
    monkeypatch.setattr(predictions, '_CHUNK', 2)
    r = run(capsys, 'predict', ml_model, *imgs)
    assert r.stderr == '' and len(json.loads(r.stdout)) == 5
    capsys.readouterr(); monkeypatch.setattr(sys.stderr, 'isatty', lambda: True)
    r = run(capsys, 'predict', ml_model, *imgs)
    assert len(json.loads(r.stdout)) == 5 and '3/3' in r.stderr

def test_pose_model_crops_around_the_head(data, pose_model, kp_model, capsys):
    "A head-pose model is trained on crops; it evaluates on true or predicted centres and predicts through a centre model."
    d,_,b = data
    meta = json.loads((pose_model/'model.json').read_text())
    spec = meta['data']
    assert spec['targets']['kind'] == 'angles' and spec['kind'] == 'head_crop' and spec['params']['crop_px'] == 160
    assert spec['size'] == [32,32] and spec['presize'] == [120,160]  # a quarter of the frame: 32 px crops need no more
    run(capsys, 'evaluate', pose_model, '--path', b, '--json-out', d/'p.json')
    m = json.loads((d/'p.json').read_text())
    assert m['target'] == 'angles' and m['centres'].startswith('true') and m['images'] == 2 and m['mae_deg'] >= 0
    run(capsys, 'evaluate', pose_model, '--path', b, '--centre-model', kp_model, '--json-out', d/'p2.json')
    m2 = json.loads((d/'p2.json').read_text())
    assert m2['centres'].startswith('predicted') and m2['centre_rmse_px'] > 0
    f = b/'13'/'frame_00003_rgb.jpg'
    res = json.loads(run(capsys, 'predict', pose_model, f, '--centre-model', kp_model).stdout)
    ctr = json.loads(run(capsys, 'predict', kp_model, f).stdout)[0]
    assert (res[0]['x'], res[0]['y']) == (ctr['x'], ctr['y']) and set(res[0]) == {'file','x','y','yaw','pitch','roll'}
    # the same crop, cut by hand, gives the same angles
    from multilabel_regress.biwi_data import HeadCrop, RandomHeadCrop
    from multilabel_regress.preprocessing import DataSpec, preprocess
    model,_ = load_model(pose_model)
    crop = RandomHeadCrop(32, 160)(HeadCrop.create(f, (ctr['x'], ctr['y'])), split_idx=1)  # the validation crop, at draft scale
    x = preprocess(crop, DataSpec('fastai', (32,32)))   # the crop as it is, normalised
    with torch.no_grad(): a = model(x[None])[0]*spec['targets']['scale']
    assert abs(float(a[0]) - res[0]['yaw']) < 0.02 and abs(float(a[2]) - res[0]['roll']) < 0.02

def test_pose_model_needs_a_centre_model(data, pose_model, ml_model, capsys):
    d,_,b = data
    f = b/'13'/'frame_00003_rgb.jpg'
    one_line_error(run(capsys, 'predict', pose_model, f, code=1), '--centre-model')
    one_line_error(run(capsys, 'predict', pose_model, f, '--centre-model', ml_model, code=1), 'not a centre model')

# --- bad input: each works, or stops with one line naming the file and the fix ------------------

@pytest.mark.parametrize('args,words', [
    (('keypoint', '--size', '64'), ['--size 64', 'HEIGHT,WIDTH']),
    (('keypoint', '--size', '48,x'), ['--size 48,x', 'HEIGHT,WIDTH']),
    (('keypoint', '--target', 'angles', '--size', '32,48'), ['square']),
    (('keypoint', '--size', '16,24'), ['at least 32']),
    (('multilabel', '--size', '96,128'), ['square']),
])
def test_sizes_checked_before_training(data, tmp_path, capsys, args, words):
    path = data[1] if args[0] == 'multilabel' else data[2]
    one_line_error(run(capsys, 'train', *args, '--path', path, '--out', tmp_path/'x', code=1), *words)
    assert not (tmp_path/'x').exists()

def test_mistyped_option_and_missing_path(tmp_path, capsys):
    one_line_error(run(capsys, 'train', 'multilabel', '--path', tmp_path/'nowhere', '--out', tmp_path/'m', code=1), 'nowhere', 'not a folder')
    assert not (tmp_path/'m').exists()

@pytest.mark.parametrize('damage,words', [
    (lambda f: f.write_bytes(b'not a jpeg at all'), ['not a readable image']),
    (lambda f: f.write_bytes(f.read_bytes()[:300]), ['not a readable image']),
    (lambda f: f.unlink(), ['is missing']),
    (lambda f: bomb_png(f), ['too large to decode safely']),
])
def test_train_bad_image_stops_before_training(pcopy, tmp_path, capsys, damage, words):
    f = pcopy/'train'/pd.read_csv(pcopy/'train.csv').fname[3]; damage(f)
    r = run(capsys, 'train', 'multilabel', '--path', pcopy, '--out', tmp_path/'m', '--epochs', 1, '--workers', 0, code=1)
    one_line_error(r, f.name, *words)
    assert not (tmp_path/'m').exists()  # nothing half-written

def test_train_keypoint_bad_image_stops_before_training(bcopy, tmp_path, capsys):
    "Key-point training decodes every frame first (it used to check pose files only)."
    f = bcopy/'05'/'frame_00003_rgb.jpg'; f.write_bytes(f.read_bytes()[:300])
    one_line_error(run(capsys, 'train', 'keypoint', '--path', bcopy, '--out', tmp_path/'k', '--workers', 0, code=1), f.name, 'not a readable image')
    assert not (tmp_path/'k').exists()

@pytest.mark.parametrize('col', ['labels', 'is_valid'])
def test_train_csv_missing_column(pcopy, tmp_path, capsys, col):
    pd.read_csv(pcopy/'train.csv').drop(columns=col).to_csv(pcopy/'train.csv', index=False)
    one_line_error(run(capsys, 'train', 'multilabel', '--path', pcopy, '--out', tmp_path/'m', code=1), 'train.csv', col)

@pytest.mark.parametrize('valid,words', [(True, ['no training rows', 'is_valid=False']), (False, ['no validation rows', 'is_valid=True'])])
def test_train_csv_needs_both_splits(pcopy, tmp_path, capsys, valid, words):
    df = pd.read_csv(pcopy/'train.csv'); df['is_valid'] = valid; df.to_csv(pcopy/'train.csv', index=False)
    one_line_error(run(capsys, 'train', 'multilabel', '--path', pcopy, '--out', tmp_path/'m', code=1), 'train.csv', *words)
    assert not (tmp_path/'m').exists()

def test_train_keypoint_needs_training_people(bcopy, tmp_path, capsys):
    for d in bcopy.iterdir():
        if d.is_dir() and d.name != '13': shutil.rmtree(d)
    one_line_error(run(capsys, 'train', 'keypoint', '--path', bcopy, '--out', tmp_path/'k', code=1), 'only person 13')

def test_train_empty_labels(pcopy, tmp_path, capsys):
    df = pd.read_csv(pcopy/'train.csv'); df.loc[4,'labels'] = '  '; df.to_csv(pcopy/'train.csv', index=False)
    one_line_error(run(capsys, 'train', 'multilabel', '--path', pcopy, '--out', tmp_path/'m', code=1), 'row 6', 'empty labels')

def test_train_extra_spaces_and_odd_modes_work(pcopy, tmp_path, capsys):
    "Labels with extra spaces train as the clean labels; grayscale, RGBA, CMYK and 16-bit images are converted."
    df = pd.read_csv(pcopy/'train.csv')
    df.loc[0,'labels'] = '  ' + df.loc[0,'labels'].replace(' ', '   ') + ' '
    df.to_csv(pcopy/'train.csv', index=False)
    for i,mode in zip(range(1,5), ['L','RGBA','CMYK','I;16']):
        f = pcopy/'train'/df.fname[i]; im = Image.open(f)
        if mode == 'I;16': Image.fromarray(np.asarray(im.convert('L')).astype(np.uint16)*257).save(f, format='PNG')
        else: im.convert(mode).save(f, format='JPEG' if mode in ('L','CMYK') else 'PNG')
    r = run(capsys, 'train', 'multilabel', '--path', pcopy, '--out', tmp_path/'m', '--epochs', 1, '--size', 48, '--workers', 0)
    meta = json.loads((tmp_path/'m'/'model.json').read_text()); vocab = meta['data']['targets']['vocab']
    assert f"thresholds: {meta['threshold_choice']['kind']} (micro F1 on a held-out half" in r.stdout  # the choice, said
    assert '' not in vocab and all(v == v.strip() for v in vocab)
    res = json.loads(run(capsys, 'predict', tmp_path/'m', *[pcopy/'train'/df.fname[i] for i in range(1,5)]).stdout)
    assert len(res) == 4

def test_evaluate_unknown_label(ml_model, pcopy, capsys):
    df = pd.read_csv(pcopy/'train.csv'); i = df.index[df.is_valid][0]; df.loc[i,'labels'] = 'zebra'; df.to_csv(pcopy/'train.csv', index=False)
    one_line_error(run(capsys, 'evaluate', ml_model, '--path', pcopy, code=1), "'zebra'", df.fname[i], '--ignore-unknown')
    r = run(capsys, 'evaluate', ml_model, '--path', pcopy, '--ignore-unknown')
    assert "unknown_labels: ['zebra']" in r.stdout

def test_predict_bad_images(ml_model, pcopy, tmp_path, capsys):
    good = sorted((pcopy/'train').glob('*.jpg'))[:2]
    bad = tmp_path/'bad.jpg'; bad.write_bytes(good[0].read_bytes()[:200])
    one_line_error(run(capsys, 'predict', ml_model, good[0], bad, code=1), 'bad.jpg', '--skip-bad')
    r = run(capsys, 'predict', ml_model, good[0], bad, good[1], '--skip-bad')
    assert len(json.loads(r.stdout)) == 2 and 'skipped 1 unreadable image' in r.stderr
    usage_error(run(capsys, 'predict', ml_model, code=2), 'images')  # an empty image list

def test_predict_image_bomb(ml_model, data, tmp_path, capsys):
    "An image whose header claims 900 million pixels (PIL's DecompressionBombError) is one line, or skipped."
    good = sorted((data[1]/'train').glob('*.jpg'))[0]; bomb = bomb_png(tmp_path/'bomb.png')
    one_line_error(run(capsys, 'predict', ml_model, good, bomb, code=1), 'bomb.png', 'too large to decode safely', '--skip-bad')
    assert len(json.loads(run(capsys, 'predict', ml_model, good, bomb, '--skip-bad').stdout)) == 1

def test_out_must_be_a_file(ml_model, data, tmp_path, capsys):
    img = sorted((data[1]/'train').glob('*.jpg'))[0]
    one_line_error(run(capsys, 'predict', ml_model, img, '--out', tmp_path, code=1), str(tmp_path), 'is a folder', '--out')
    one_line_error(run(capsys, 'evaluate', ml_model, '--path', data[1], '--json-out', tmp_path, code=1), 'is a folder')

@pytest.mark.parametrize('text,words', [
    (None, ['frame_00003_pose.txt', 'is missing']),
    ('1 0 0 \n0 1 0 \n', ['frame_00003_pose.txt', 'malformed']),
    ('1 0 0 \n0 1 0 \n0 0 1 \n\nnan 3 900 \n', ['frame_00003_pose.txt', 'NaN']),
])
def test_train_keypoint_bad_pose(bcopy, tmp_path, capsys, text, words):
    f = bcopy/'07'/'frame_00003_pose.txt'
    if text is None: f.unlink()
    else: f.write_text(text)
    one_line_error(run(capsys, 'train', 'keypoint', '--path', bcopy, '--out', tmp_path/'k', code=1), *words)
    assert not (tmp_path/'k').exists()

def test_train_keypoint_bad_cal(bcopy, tmp_path, capsys):
    (bcopy/'04'/'rgb.cal').write_text('640 480\n')
    one_line_error(run(capsys, 'train', 'keypoint', '--path', bcopy, '--out', tmp_path/'k', code=1), '04/rgb.cal', 'intrinsics')

# --- --force replaces only what mlr made ------------------------------------------------------------

def test_existing_model_not_overwritten(ml_model, data, capsys):
    before = (ml_model/'model.safetensors').read_bytes()
    one_line_error(run(capsys, 'train', 'multilabel', '--path', data[1], '--out', ml_model, code=1), 'already exists', '--force')
    assert (ml_model/'model.safetensors').read_bytes() == before

def thesis(folder):
    folder.mkdir(parents=True, exist_ok=True); f = folder/'thesis.txt'; f.write_text('years of work'); return f

def test_train_force_keeps_a_user_folder(data, tmp_path, capsys):
    f = thesis(tmp_path/'mine')
    one_line_error(run(capsys, 'train', 'multilabel', '--path', data[1], '--out', tmp_path/'mine', '--force', '--epochs', 1, code=1),
                   'thesis.txt', 'did not make')
    assert f.read_text() == 'years of work'

def test_sample_hint_names_the_flag(tmp_path, capsys):
    thesis(tmp_path/'s')
    line = one_line_error(run(capsys, 'sample', 'pascal', tmp_path/'s', '--n', 4, code=1), 'already exists', '--force')
    assert 'overwrite=True' not in line

def test_sample_force_keeps_a_user_folder(tmp_path, capsys):
    "`mlr sample --force` replaces a sample it generated, never a folder holding anything else."
    f = thesis(tmp_path/'s')
    one_line_error(run(capsys, 'sample', 'biwi', tmp_path/'s', '--n', 1, '--force', code=1), 'thesis.txt', 'did not make')
    assert sorted(p.name for p in (tmp_path/'s').iterdir()) == ['thesis.txt'] and f.read_text() == 'years of work'
    run(capsys, 'sample', 'biwi', tmp_path/'b', '--n', 1)
    run(capsys, 'sample', 'biwi', tmp_path/'b', '--n', 1, '--seed', 1, '--force')  # its own sample: replaced
    assert (tmp_path/'b'/'13'/'frame_00003_rgb.jpg').exists()

def test_chapter_keeps_a_user_folder(tmp_path, capsys):
    "`mlr chapter` replaces its own report (the default), never a folder holding anything else; it stops before any work."
    f = thesis(tmp_path/'r')
    one_line_error(run(capsys, 'chapter', '--report', tmp_path/'r', code=1), 'thesis.txt', 'did not make')
    one_line_error(run(capsys, 'chapter', '--report', tmp_path/'r', '--no-force', code=1), 'already exists', '--force')
    assert sorted(p.name for p in (tmp_path/'r').iterdir()) == ['thesis.txt'] and f.read_text() == 'years of work'

def test_chapter_data_folder(data, tmp_path, monkeypatch, capsys):
    "`mlr chapter --data DIR` takes the two datasets from DIR, checked before any work; a folder without one of them says which, and nothing is written."
    d = tmp_path/'fastai_data'; d.mkdir(); (d/'pascal_2007').symlink_to(data[1])
    one_line_error(run(capsys, 'chapter', '--data', d, '--report', tmp_path/'r', code=1), 'holds no biwi_head_pose', 'pascal_2007 and biwi_head_pose')
    one_line_error(run(capsys, 'chapter', '--data', tmp_path/'nowhere', '--report', tmp_path/'r', code=1), "use 'sample', 'full', or a folder")
    assert not (tmp_path/'r').exists()
    (d/'biwi_head_pose').symlink_to(data[2]); seen = {}
    def stop(path, *a, **k): seen['pascal'] = path; raise KeyboardInterrupt  # where the multi-label training would start
    monkeypatch.setattr(recipes, 'train_multilabel', stop)
    with pytest.raises(KeyboardInterrupt): main(['chapter', '--data', str(d), '--report', str(tmp_path/'r')])
    assert seen['pascal'] == d/'pascal_2007' and 'PASCAL: ' in capsys.readouterr().out

def test_chapter_times_training_only(data, tmp_path, monkeypatch, capsys):
    "A fake clock that jumps 1000 s while the datasets are made: no model's train_seconds includes it."
    clock = [0.]
    def tick(): clock[0] += 0.01; return clock[0]
    def slow(p):
        def get(source): clock[0] += 1000; return p
        return get
    monkeypatch.setattr(recipes, 'time', SimpleNamespace(time=tick))
    monkeypatch.setattr(recipes, 'get_pascal', slow(data[1])); monkeypatch.setattr(recipes, 'get_biwi', slow(data[2]))
    rep = tmp_path/'report'
    run(capsys, 'chapter', '--report', rep, '--ml-epochs', 1, '--kp-epochs', 1, '--pose-epochs', 1)
    m = json.loads((rep/'metrics.json').read_text())
    assert all(m[k]['train_seconds'] < 1000 for k in ('multilabel', 'keypoint', 'pose')) and m['seconds'] > 2000
    assert (rep/'.mlr-report').exists() and (rep/'models'/'pose'/'model.json').exists()

# --- the reference page's table of bad inputs, checked against what mlr says -----------------------

def _bad_input_cases(data, ml_model, pose_model, tmp):
    "Each row of the reference page's table: the command line it stands for (on fresh copies of the samples where it damages them)."
    def pcopy(change=None):
        d = tmp/f'p{len(list(tmp.iterdir()))}'; shutil.copytree(data[1], d)
        if change: change(d)
        return d
    def bcopy(change):
        d = tmp/f'b{len(list(tmp.iterdir()))}'; shutil.copytree(data[2], d); change(d); return d
    def csv(change):
        def f(d): df = pd.read_csv(d/'train.csv'); change(df); df.to_csv(d/'train.csv', index=False)
        return f
    def truncate(d): f = d/'train'/pd.read_csv(d/'train.csv').fname[3]; f.write_bytes(f.read_bytes()[:300])
    def nan_pose(d): (d/'07'/'frame_00003_pose.txt').write_text('1 0 0 \n0 1 0 \n0 0 1 \n\nnan 3 900 \n')
    def unknown(df): df.loc[df.index[df.is_valid][0], 'labels'] = 'zebra'
    img = sorted((data[1]/'train').glob('*.jpg'))[0]
    out = tmp/'out'
    return {
        '`mlr`': lambda: [],
        '`mlr trian`': lambda: ['trian'],
        '`mlr train multilabel` (no `--path`)': lambda: ['train', 'multilabel'],
        '`mlr train multilabel --path DIR --epochs 0`': lambda: ['train', 'multilabel', '--path', data[1], '--epochs', 0],
        '`mlr train multilabel --path DIR --lr 0`': lambda: ['train', 'multilabel', '--path', data[1], '--lr', 0],
        '`mlr predict MODEL IMAGE --format xml`': lambda: ['predict', ml_model, img, '--format', 'xml'],
        '`mlr train multilabel --path nowhere`': lambda: ['train', 'multilabel', '--path', tmp/'nowhere'],
        '`mlr train keypoint --path DIR --size 64`': lambda: ['train', 'keypoint', '--path', data[2], '--size', 64],
        'a truncated JPEG in `train/`': lambda: ['train', 'multilabel', '--path', pcopy(truncate), '--out', out],
        '`train.csv` without an `is_valid` column': lambda: ['train', 'multilabel', '--path', pcopy(csv(lambda df: df.pop('is_valid'))), '--out', out],
        '`train.csv` with no `is_valid=True` row': lambda: ['train', 'multilabel', '--path', pcopy(csv(lambda df: df.__setitem__('is_valid', False))), '--out', out],
        '`train.csv` with an empty label': lambda: ['train', 'multilabel', '--path', pcopy(csv(lambda df: df.__setitem__('labels', df.labels.where(df.index != 4, ' ')))), '--out', out],
        '`train.csv` with labels `bottle,bird`': lambda: ['train', 'multilabel', '--path', pcopy(csv(lambda df: df.__setitem__('labels', df.labels.where(df.index != 4, 'bottle,bird')))), '--out', out],
        'a pose file holding NaN': lambda: ['train', 'keypoint', '--path', bcopy(nan_pose), '--out', out],
        '`--out` naming a folder of other files, with `--force`': lambda: ['train', 'multilabel', '--path', data[1], '--out', thesis(tmp/'mine').parent, '--force'],
        '`--out` naming an existing model folder, without `--force`': lambda: ['train', 'multilabel', '--path', data[1], '--out', ml_model],
        '`mlr predict MODEL IMAGE --out DIR` (a folder)': lambda: ['predict', ml_model, img, '--out', tmp],
        'an image whose header claims 30000x30000 pixels': lambda: ['predict', ml_model, bomb_png(tmp/'bomb.png')],
        'a head-pose model without `--centre-model`': lambda: ['predict', pose_model, img],
        '`mlr predict MODEL FOLDER` (a folder, not images)': lambda: ['predict', ml_model, img.parent],
        'a label the model does not know (`evaluate`)': lambda: ['evaluate', ml_model, '--path', pcopy(csv(unknown))],
    }

REFERENCE = Path(__file__).parent.parent/'docs'/'reference.md'

def test_reference_bad_inputs_table(data, ml_model, pose_model, tmp_path, capsys):
    "docs/reference.md's table of bad inputs says what mlr does: each row's exit code, its message in the line printed."
    txt = REFERENCE.read_text()
    m = re.search(r'<!-- bad-inputs -->(.*?)<!-- /bad-inputs -->', txt, re.S)
    assert m, (f"{REFERENCE} has no table of bad inputs between <!-- bad-inputs --> and <!-- /bad-inputs -->: "
               "add it to docs/reference.md")
    rows = [[c.strip() for c in l.strip().strip('|').split('|')] for l in m.group(1).strip().splitlines()[2:]]
    cases = _bad_input_cases(data, ml_model, pose_model, tmp_path)
    assert [r[0] for r in rows] == list(cases), "docs/reference.md's table rows and the test's cases differ"
    for what,code,says in rows:
        r = run(capsys, *cases[what](), code=int(code))
        last = r.stderr.strip().splitlines()[-1]
        for quoted in re.findall(r'`([^`]+)`', says): assert quoted in last, (what, quoted, last)
        if code == '1': one_line_error(r)
        else: usage_error(r)

def test_full_data_without_internet_is_one_line(tmp_path):
    "`mlr chapter --data full` with the network blocked: one line naming the download and the offline sample, no traceback."
    offline = Path(__file__).parent.parent/'tools'/'offline'
    env = dict(os.environ, HOME=str(tmp_path), MLR_NET_LOG=str(tmp_path/'net.log'),  # a home without fastai's downloads
               PYTHONPATH=os.pathsep.join([str(offline)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    r = subprocess.run([sys.executable, '-m', 'multilabel_regress.cli', 'chapter', '--data', 'full', '--report', str(tmp_path/'r')],
                       capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    one_line_error(r, 'downloading https://', 'pascal_2007.tgz failed', "--data sample")
    assert (tmp_path/'net.log').read_text()  # it really tried, and the network really refused

# --- labels and CSVs: one reader for training and evaluation; folders and person names as the library takes them ----

def test_train_comma_labels_is_one_line(pcopy, tmp_path, capsys):
    "`bottle,bird` is refused with the row and the fix, where it used to train a class named 'bottle,bird'."
    df = pd.read_csv(pcopy/'train.csv'); df.loc[4, 'labels'] = 'bottle,bird'; df.to_csv(pcopy/'train.csv', index=False)
    one_line_error(run(capsys, 'train', 'multilabel', '--path', pcopy, '--out', tmp_path/'m', '--epochs', 1, code=1),
                   'train.csv, row 6', "'bottle,bird'", 'separated by single spaces', "'bottle bird'")
    assert not (tmp_path/'m').exists()

@pytest.mark.parametrize('labels,words', [('bottle,bird', ['row', 'hold a comma', 'separated by single spaces']), ('', ['row', 'empty labels'])])
def test_evaluate_bad_labels_is_one_line(ml_model, pcopy, capsys, labels, words):
    df = pd.read_csv(pcopy/'train.csv'); i = df.index[df.is_valid][0]; df.loc[i, 'labels'] = labels; df.to_csv(pcopy/'train.csv', index=False)
    one_line_error(run(capsys, 'evaluate', ml_model, '--path', pcopy, code=1), 'train.csv', f'row {i+2}', df.fname[i], *words)

def test_train_spaces_in_header_said(pcopy, tmp_path, capsys):
    f = pcopy/'train.csv'; f.write_text(f.read_text().replace('fname,labels,is_valid', 'fname,labels ,is_valid', 1))
    one_line_error(run(capsys, 'train', 'multilabel', '--path', pcopy, '--out', tmp_path/'m', code=1), "'labels '", 'remove the spaces')

def test_predict_a_folder(ml_model, data, capsys):
    "A folder where images are expected: said, with the images inside as a pattern (not 'not a readable image')."
    folder = data[1]/'train'
    line = one_line_error(run(capsys, 'predict', ml_model, folder, code=1), f'{folder} is a folder', str(folder/'*.jpg'))
    assert 'not a readable image' not in line
    img = sorted(folder.glob('*.jpg'))[0]
    r = run(capsys, 'predict', ml_model, img, folder, '--skip-bad')
    assert [x['file'] for x in json.loads(r.stdout)] == [str(img)] and 'skipped 1' in r.stderr

def test_valid_person_without_leading_zero(data, tmp_path, capsys):
    "`--valid-person 7` is the folder 07, as `biwi_dls(valid_person=7)` takes it; evaluation's --persons likewise."
    d,_,b = data
    run(capsys, 'train', 'keypoint', '--path', b, '--out', tmp_path/'k', '--valid-person', 7, '--epochs', 1, '--size', '48,64', '--workers', 0)
    assert json.loads((tmp_path/'k'/'model.json').read_text())['valid_person'] == '07'
    run(capsys, 'evaluate', tmp_path/'k', '--path', b, '--persons', '7,13', '--json-out', tmp_path/'k.json')
    m = json.loads((tmp_path/'k.json').read_text())
    assert m['persons'] == ['07', '13'] and m['images'] == 4 and set(m['per_person']) == {'07', '13'}

# --- logs: bars on a terminal only, one line per epoch otherwise; no Python warnings ------------------------------

BAR_CHARS = ('█', '\r', '|---', '%]')

def _epoch_rows(out, names):
    "The table `EpochLines` printed: the header with `names`, then the rows under it (each `epoch losses... time`)."
    lines = out.splitlines()
    heads = [i for i,l in enumerate(lines) if l.split() == names]
    assert heads, out
    rows = []
    for i in heads:
        for l in lines[i+1:]:
            if not l.split() or not l.split()[0].isdigit(): break
            rows.append(l.split())
    return heads, rows

def test_train_log_to_a_pipe(data, tmp_path):
    "The real console script with stdout to a pipe: no progress bar characters, the table's header, then one line per epoch."
    d,p,_ = data
    r = console('train', 'multilabel', '--path', p, '--out', tmp_path/'m', '--epochs', 3, '--size', 48, '--bs', 8)
    assert r.returncode == 0, r.stderr
    for c in BAR_CHARS: assert c not in r.stdout, (c, r.stdout[:500])
    heads, rows = _epoch_rows(r.stdout, ['epoch', 'train_loss', 'valid_loss', 'accuracy_multi', 'mAP', 'time'])
    # the sample's recipe is `fine_tune`: two tables, the body frozen (the recipe's 2 epochs), then all of it (--epochs)
    assert len(heads) == 2 and [x[0] for x in rows] == ['0', '1', '0', '1', '2']
    for x in rows:
        assert len(x) == 6 and all(np.isfinite(float(v)) for v in x[1:5]) and re.fullmatch(r'\d\d:\d\d', x[5])
    assert r.stdout.splitlines()[-2].startswith('trained in ')
    assert 'Warning' not in r.stderr and r.stderr == '', r.stderr  # the mAP's classes absent from validation are counted, not warned about

def test_train_keypoint_log_to_a_pipe(data, tmp_path):
    d,_,b = data
    r = console('train', 'keypoint', '--path', b, '--out', tmp_path/'k', '--epochs', 2, '--size', '48,64', '--bs', 8)
    assert r.returncode == 0, r.stderr
    for c in BAR_CHARS: assert c not in r.stdout, (c, r.stdout[:500])
    heads, rows = _epoch_rows(r.stdout, ['epoch', 'train_loss', 'valid_loss', 'rmse_px', 'time'])
    # the centre's sample recipe is `fine_tune` too: the body frozen for one epoch, then all of it (--epochs)
    assert len(heads) == 2 and [x[0] for x in rows] == ['0', '0', '1']

def test_bars_on_a_terminal(monkeypatch):
    "On a terminal fastai's progress bars stay (and nothing is added)."
    from fastai.test_utils import synth_learner
    from fastai.callback.progress import ProgressCallback
    monkeypatch.setattr(sys.stdout, 'isatty', lambda: True)
    learn = recipes._plain_log(synth_learner())
    assert any(isinstance(c, ProgressCallback) for c in learn.cbs) and not any(isinstance(c, recipes.EpochLines) for c in learn.cbs)

def test_evaluate_prints_no_warning(data, ml_model, tmp_path):
    "A class with no validation image is counted in the output (mAP_classes, classes_without_positives), not a UserWarning on stderr."
    d,p,_ = data
    df = pd.read_csv(p/'train.csv'); vocab = json.loads((ml_model/'model.json').read_text())['data']['targets']['vocab']
    seen = {l for ls in df[df.is_valid].labels for l in ls.split()}
    absent = [v for v in vocab if v not in seen]
    assert absent  # this sample's validation rows lack some classes: the case that warned
    r = console('evaluate', ml_model, '--path', p, '--json-out', tmp_path/'m.json')
    assert r.returncode == 0 and r.stderr == '', r.stderr
    m = json.loads((tmp_path/'m.json').read_text())
    assert m['classes_without_positives'] == absent and m['mAP_classes'] == len(vocab) - len(absent)

# --- the CLI's metrics against an independent computation on the same files ---------------------------------------

def test_evaluate_metrics_match_sklearn(data, ml_model, capsys):
    "`mlr evaluate --json-out` against the same figures computed here: the CSV read with pandas, the model run on the files, the metrics by scikit-learn."
    from sklearn.metrics import average_precision_score, hamming_loss
    d,p,_ = data
    run(capsys, 'evaluate', ml_model, '--path', p, '--json-out', d/'ind.json')
    m = json.loads((d/'ind.json').read_text())
    meta = json.loads((ml_model/'model.json').read_text()); vocab = meta['data']['targets']['vocab']
    df = pd.read_csv(p/'train.csv'); df = df[df.is_valid]
    model,_ = load_model(ml_model)
    logits = model_outputs(model, meta, [p/'train'/f for f in df.fname])
    probs = logits.sigmoid().numpy(); logits = logits.numpy()
    Y = np.array([[v in ls.split() for v in vocab] for ls in df.labels], dtype=int)
    aps = {v: average_precision_score(Y[:, i], logits[:, i]) for i,v in enumerate(vocab) if Y[:, i].any()}
    assert m['images'] == len(df) and m['mAP'] == pytest.approx(np.mean(list(aps.values())), abs=1e-6)
    for v in vocab:
        assert m['per_class'][v]['ap'] == (pytest.approx(aps[v], abs=5e-5) if v in aps else None), v
        assert m['per_class'][v]['positives'] == Y[:, vocab.index(v)].sum()
    for t in (0.1, 0.2, 0.5, 0.99):
        assert m['accuracy_multi'][str(t)] == pytest.approx(1 - hamming_loss(Y, probs > t), abs=1e-6), t
    P = (probs > np.array(meta['thresholds'])).astype(int)
    assert m['f1_micro'] == pytest.approx(f1_score(Y, P, average='micro', zero_division=0), abs=1e-6)
    defined = (Y.sum(0) + P.sum(0)) > 0  # a class never present and never predicted has no F1, and is left out of the macro mean
    assert m['f1_macro'] == pytest.approx(f1_score(Y[:, defined], P[:, defined], average='macro'), abs=1e-6)

def test_mlr_cache_shows_and_clears(data, tmp_path, monkeypatch, capsys):
    "`mlr cache` reports the stores a loader built (where, how many images, how large); `--clear` empties them and the next loader decodes again."
    from multilabel_regress.pascal_data import pascal_dls
    root = tmp_path/'images'; monkeypatch.setenv('MULTILABEL_REGRESS_IMAGES', str(root))
    dls = pascal_dls(data[1], size=32, bs=8)
    n = len(dls.train.items)
    out = run(capsys, 'cache').stdout
    assert str(root) in out and f"{n:6d} images at 40x40" in out, out
    from multilabel_regress.image_cache import cache_info
    assert cache_info(root, show=False)['bytes'] >= n*40*40*3  # at least the training split's pixels, as uint8 RGB
    out = run(capsys, 'cache', '--clear').stdout
    assert 'freed' in out and str(root) in out
    assert 'images at' not in run(capsys, 'cache').stdout

# --- points (issue 32) ---

def test_points_epochs_and_steps_help_say_their_defaults(capsys):
    "`mlr train --help`: --epochs says what points use without it, --steps says its default."
    h = cli._parser('train').format_help()
    flat = ' '.join(h.split())
    assert 'points: from --steps' in flat and re.search(r'--steps STEPS .*\(default: 500\)', flat)

@pytest.fixture(scope='module')
def dlc_points(tmp_path_factory):
    from multilabel_regress.points_sample import make_dlc_sample
    return make_dlc_sample(tmp_path_factory.mktemp('dlc')/'dlc', n_frames=15)

def test_points_dlc_train_evaluate_predict(dlc_points, tmp_path, capsys):
    "A DeepLabCut CSV trains, evaluates and predicts through `mlr`; train and evaluate print the average position beside the model."
    f = dlc_points/'labeled-data'/'video1'/'CollectedData_mlr.csv'
    r = run(capsys, 'train', 'points', '--path', f, '--out', tmp_path/'m', '--steps', 2, '--size', 64)
    assert re.search(r'\(2 steps\); valid NME [\d.]+ \(bbox\), PCK@0\.1 [\d.]+, mean error [\d.]+ px', r.stdout)
    line = next(l for l in r.stdout.splitlines() if l.startswith('average position'))
    assert re.search(r'NME [\d.]+, mean error [\d.]+ px', line)
    assert 'warning: the model' in r.stdout and 'does not beat the average position' in r.stdout   # two steps: it does not
    meta = json.loads((tmp_path/'m'/'model.json').read_text())
    assert meta['source'] == 'dlc' and meta['builder'] == 'heatmap' and len(meta['mean_position']) == 4
    r = run(capsys, 'evaluate', tmp_path/'m', '--path', dlc_points, '--json-out', tmp_path/'e.json')
    ev = json.loads((tmp_path/'e.json').read_text())
    assert ev['baseline_mean_px'] > 0 and f"baseline_mean_px: {ev['baseline_mean_px']:.4f}" in r.stdout
    assert ('warning: the model' in r.stdout) == (ev['mean_px'] >= ev['baseline_mean_px'])
    ims = sorted(f.parent.glob('*.jpg'))[:2]
    r = run(capsys, 'predict', tmp_path/'m', *ims)
    out = json.loads(r.stdout)
    assert len(out) == 2 and {'snout_x', 'tailbase_y', 'score'} <= set(out[0])
    r = run(capsys, 'train', 'points', '--path', tmp_path/'nowhere.csv', '--out', tmp_path/'m2', code=1)
    assert 'is not a folder' in r.stderr

def test_points_train_log_is_one_line_per_epoch(faces_points, tmp_path):
    "Off a terminal, `mlr train points` writes the table's lines, no progress bars."
    r = console('train', 'points', '--path', faces_points, '--out', tmp_path/'m', '--epochs', 2, '--size', 32)
    assert r.returncode == 0, r.stderr[-2000:]
    lines = r.stdout.strip().splitlines()
    # the sample's recipe is `fine_tune` from the shipped body: a table for the frozen epoch, then one for --epochs
    heads, rows = _epoch_rows(r.stdout, ['epoch', 'train_loss', 'valid_loss', 'time'])
    assert heads == [0, 2] and [x[0] for x in rows] == ['0', '0', '1']
    assert '\r' not in r.stdout and len(r.stdout) < 2000

@pytest.fixture(scope='module')
def faces_points(tmp_path_factory):
    from multilabel_regress.points_sample import make_points_sample
    return make_points_sample(tmp_path_factory.mktemp('faces')/'faces', n_images=6, size=(128,96))
