"""Many named points (`06_points`): the two layouts, crops of several instances, flips, the masked loss, NME/PCK, errors, and `mlr` on both layouts."""
import json, math, shutil, subprocess, sys
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from multilabel_regress.datasets import DatasetError, UserError
from multilabel_regress.points import *
from multilabel_regress.points import _ItemY

@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    "Ten photos of one to three 68-landmark faces, small."
    return make_points_sample(tmp_path_factory.mktemp('pts')/'faces', n_images=10, size=(128,96))

def console(*args, cwd=None):
    "A real console-script run: `python -m multilabel_regress.cli ARGS`."
    return subprocess.run([sys.executable, '-m', 'multilabel_regress.cli', *map(str, args)], capture_output=True, text=True, timeout=900, cwd=cwd)

def one_line_error(r, *words):
    assert r.returncode == 1, (r.returncode, r.stderr[-2000:])
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and 'Traceback' not in r.stderr, r.stderr
    for w in words: assert w in lines[0], lines[0]
    return lines[0]

def test_layouts_agree(faces):
    "points.csv (crops) and the COCO file (photos) hold the same faces: crop points + crop corner = annotation points; empty pair = v 0."
    df = pd.read_csv(faces/'points.csv'); coco = json.loads((faces/'faces_coco.json').read_text())
    names = coco['categories'][0]['keypoints']; assert len(names) == 68 and len(df) == len(coco['annotations'])
    imgs = {im['id']: im for im in coco['images']}
    n_per = pd.Series([a['image_id'] for a in coco['annotations']]).value_counts()
    assert n_per.max() > 1 and n_per.min() == 1  # photos of several faces, and photos of one
    missing = 0
    for (_,r),a in zip(df.iterrows(), coco['annotations']):
        im = imgs[a['image_id']]
        c = crop_box(a['bbox'], (im['width'], im['height']))
        assert r['fname'] == f"crops/{im['file_name'][:-4]}_{int(r['fname'].split('_')[1][:-4])}.jpg"
        assert Image.open(faces/r['fname']).size == (c[2]-c[0], c[3]-c[1])
        kp = np.array(a['keypoints']).reshape(68, 3)
        for j,n in enumerate(names):
            if kp[j,2] == 0: assert np.isnan(r[f'{n}_x']) and np.isnan(r[f'{n}_y']); missing += 1
            else: assert abs(r[f'{n}_x'] + c[0] - kp[j,0]) < .011 and abs(r[f'{n}_y'] + c[1] - kp[j,1]) < .011
    assert missing > 0

def test_crops_of_every_instance(faces):
    "Every annotation gives a crop of its box with the margin, an image's only one too (top-down); its pixels and targets map back to the photo's."
    pc = read_coco_points(faces/'faces_coco.json', faces/'images')
    coco = json.loads((faces/'faces_coco.json').read_text())
    per = pd.Series([a['image_id'] for a in coco['annotations']]).value_counts()
    crops = [it for it in pc.items if it['crop'] is not None]
    assert len(crops) == len(pc) == len(coco['annotations']) and (per == 1).any()
    single = {i for i in per.index if per[i] == 1}
    assert all(it['crop'] != (0, 0, *it['size']) for it in pc.items if it['image_id'] in single)   # not the whole photo
    for it in crops:
        x,y,w,h = it['box']; W,H = it['size']
        want = (max(0, math.floor(x - .25*w)), max(0, math.floor(y - .25*h)), min(W, math.ceil(x+w+.25*w)), min(H, math.ceil(y+h+.25*h)))
        assert tuple(it['crop']) == want
        photo = np.array(Image.open(it['file']).convert('RGB'))
        assert (np.array(item_image(it)) == photo[want[1]:want[3], want[0]:want[2]]).all()
    dls = points_dls(pc, size=32, bs=4, aug=False)
    u = torch.cat([y for _,y in dls.valid])   # the targets as the model sees them: [-1, 1] of each squished crop
    items = [pc[i] for i in dls.valid.items]
    back = to_pixels(u, [item_crop(it) for it in items])
    np.testing.assert_allclose(np.nan_to_num(back, nan=-7), np.nan_to_num(np.stack([it['pts'] for it in items]), nan=-7), atol=1e-3)
    # a hand-made file: two boxes in one image, one in another
    d = faces.parent/'hand'; (d/'im').mkdir(parents=True, exist_ok=True)
    Image.new('RGB', (100, 80)).save(d/'im'/'a.png'); Image.new('RGB', (50, 40)).save(d/'im'/'b.png')
    kp = lambda *xy: [v for x,y in xy for v in (x, y, 2)]
    c = dict(images=[dict(id=1, file_name='a.png'), dict(id=2, file_name='b.png')], categories=[dict(id=1, name='t', keypoints=['l_a', 'r_a'])],
             annotations=[dict(id=1, image_id=1, category_id=1, bbox=[10, 10, 20, 20], keypoints=kp((12, 15), (28, 25))),
                          dict(id=2, image_id=1, category_id=1, bbox=[60, 40, 40, 40], keypoints=kp((70, 50), (90, 79))),
                          dict(id=3, image_id=2, category_id=1, bbox=[5, 5, 10, 10], keypoints=kp((6, 6), (14, 14)))])
    (d/'c.json').write_text(json.dumps(c))
    ps = read_coco_points(d/'c.json', d/'im')
    assert [it['crop'] for it in ps.items] == [(5, 5, 35, 35), (50, 30, 100, 80), (2, 2, 18, 18)]   # b.png's only box: cropped too
    np.testing.assert_allclose(_ItemY(ps.items)(1).numpy(), [[20, 20], [40, 49]])
    np.testing.assert_allclose(_ItemY(ps.items)(2).numpy(), [[4, 4], [12, 12]])

def test_split_keeps_images_together(faces):
    pc = read_coco_points(faces/'faces_coco.json', faces/'images')
    for seed in (0, 1, 42):
        v = is_valid_items(pc, seed)
        side = {}
        for it,vi in zip(pc.items, v): side.setdefault(it['group'], set()).add(vi)
        assert all(len(s) == 1 for s in side.values()) and 0 < sum(v) < len(v)
        assert v == is_valid_items(pc, seed)
    assert split_groups(list('aabbccddee'), .2, 0).count(True) == 2

def test_flip_swaps_points_and_names():
    names = ['nose', 'left_eye', 'right_eye', 'l_ear', 'r_ear', 'tail_left', 'tail_right', 'chin']
    pairs = find_flip_pairs(names)
    assert pairs == [('left_eye','right_eye'), ('l_ear','r_ear'), ('tail_left','tail_right')]
    assert find_flip_pairs(['a', 'b']) == [] and find_flip_pairs(['left_x']) == []
    assert parse_flip_pairs('nose:chin', names) == [('nose', 'chin')]
    with pytest.raises(UserError, match="'foo' is not a point name"): parse_flip_pairs('nose:foo', names)
    with pytest.raises(UserError, match='more than one pair'): parse_flip_pairs('nose:chin,chin:l_ear', names)
    perm = flip_perm(names, pairs)
    assert perm == [0, 2, 1, 4, 3, 6, 5, 7]
    torch.manual_seed(0)
    x = torch.rand(3, 3, 4, 6); y = torch.rand(3, 8, 2)*2 - 1; y[1, 2] = float('nan')
    fx,fy = flip_points(x, y, perm)
    for b in range(3):
        for w in range(6): assert torch.equal(fx[b,:,:,w], x[b,:,:,5-w])
        for j,n in enumerate(names):   # the point now called n is the mirror of the one its partner's name had
            src = names.index(dict(pairs + [(b_,a) for a,b_ in pairs]).get(n, n))
            assert torch.allclose(fy[b,j], y[b,src]*torch.tensor([-1., 1.]), equal_nan=True)
    assert torch.isnan(fy[1, 1]).all() and not torch.isnan(fy[1, 2]).any()  # the missing right eye is now the missing left eye
    t = FlipPoints(perm, p=1.)
    from fastai.vision.all import TensorImage, TensorPoint
    gx,gy = t((TensorImage(x), TensorPoint(y)), split_idx=0)
    assert torch.equal(gx, fx) and torch.allclose(gy, fy, equal_nan=True)
    assert torch.equal(t((TensorImage(x), TensorPoint(y)), split_idx=1)[0], x)  # validation: untouched
    assert torch.allclose(flip_points(fx, fy, perm)[1], y, equal_nan=True)

def test_flip_only_with_pairs(faces):
    from fastai.vision.all import PILImage
    ps = read_points_csv(faces)
    assert any(isinstance(t, FlipPoints) for t in points_dls(ps, size=32).train.after_batch.fs)
    assert not any(isinstance(t, FlipPoints) for t in points_dls(ps, size=32, flip_pairs=[]).train.after_batch.fs)

def test_masked_loss_skips_missing_points():
    torch.manual_seed(0)
    p = torch.randn(4, 10, requires_grad=True); t = torch.randn(4, 5, 2)
    t[0, 1] = float('nan'); t[2, 4] = float('nan'); t[3] = float('nan')
    loss = masked_mse(p, t); loss.backward()
    tf = t.reshape(4, 10); ok = ~tf.isnan()
    ref = sum(float((p.detach()[i,j] - tf[i,j])**2) for i in range(4) for j in range(10) if ok[i,j])/int(ok.sum())
    assert abs(loss.item() - ref) < 1e-5
    assert not p.grad.isnan().any()
    assert (p.grad[~ok] == 0).all() and (p.grad[ok] != 0).all()
    q = p.detach().clone(); q[~ok] += 100.   # a missing point's prediction changes nothing
    assert abs(masked_mse(q, t).item() - loss.item()) < 1e-6
    z = torch.zeros(2, 4, requires_grad=True); l0 = masked_mse(z, torch.full((2, 2, 2), float('nan'))); l0.backward()
    assert l0.item() == 0 and (z.grad == 0).all()

def _brute(pred, targ, norm, ths=(.05, .1)):
    "NME (mean over items of the mean over labelled points), PCK and per-point mean pixels, by plain loops."
    n,k,_ = targ.shape; items = []; hits = {t: 0 for t in ths}; cnt = 0; per = {j: [] for j in range(k)}
    for i in range(n):
        es = []
        for j in range(k):
            if math.isnan(targ[i,j,0]): continue
            d = math.sqrt((pred[i,j,0]-targ[i,j,0])**2 + (pred[i,j,1]-targ[i,j,1])**2); per[j].append(d)
            if math.isnan(norm[i]) or norm[i] <= 0: continue
            es.append(d/norm[i]); cnt += 1
            for t in ths: hits[t] += d/norm[i] <= t
        if es: items.append(sum(es)/len(es))
    return sum(items)/len(items), {t: hits[t]/cnt for t in ths}, {j: sum(v)/len(v) if v else None for j,v in per.items()}

def test_nme_pck_against_brute_force(faces):
    ps = read_points_csv(faces); rng = np.random.default_rng(1)
    targ = ps.points; pred = targ + rng.normal(0, 4, targ.shape)
    pred = np.where(np.isnan(pred), rng.uniform(0, 50, pred.shape), pred)
    targ = targ.copy(); targ[:, 7] = np.nan; targ[0, 8] = [3., 4.]  # a point labelled nowhere, one labelled once
    for norm in (None, ('left_eye_1', 'right_eye_1')):
        nm = nme_norm(ps.items, norm, ps.names); nm[2] = np.nan
        m = point_metrics(pred, targ, nm, ps.names)
        nme,pck,per = _brute(pred, targ, nm)
        assert abs(m['nme'] - nme) < 1e-12 and abs(m['pck@0.05'] - pck[.05]) < 1e-12 and abs(m['pck@0.1'] - pck[.1]) < 1e-12
        for j,n in enumerate(ps.names):
            assert (m['per_point'][n]['mean_px'] is None) == (per[j] is None)
            if per[j] is not None: assert abs(m['per_point'][n]['mean_px'] - per[j]) < 1e-3
        assert m['items_without_norm'] == sum(math.isnan(v) for v in nm) >= 1
        worst = [v['mean_px'] for v in m['per_point'].values() if v['mean_px'] is not None]
        assert worst == sorted(worst, reverse=True)
    it = ps.items[0]; b = it['box']
    assert abs(nme_norm([it], None, ps.names)[0] - math.hypot(b[2], b[3])) < 1e-9
    e = nme_norm([it], ('left_eye_1', 'right_eye_1'), ps.names)[0]
    assert abs(e - math.dist(it['pts'][1], it['pts'][2])) < 1e-9
    # edges: exact answers, and an error exactly at the threshold counts as correct
    t = np.array([[[0., 0.], [10., 0.]]]); m = point_metrics(t, t, [100.])
    assert m['nme'] == 0 and m['pck@0.05'] == 1 and m['pck@0.1'] == 1
    m = point_metrics(t + [[[5., 0.], [0., 10.]]], t, [100.])
    assert m['pck@0.05'] == .5 and m['pck@0.1'] == 1. and abs(m['nme'] - .075) < 1e-12

def _copy(faces, tmp_path):
    d = tmp_path/'f'; shutil.copytree(faces, d); return d

def test_csv_errors(faces, tmp_path):
    d = _copy(faces, tmp_path)
    b = pd.read_csv(faces/'points.csv', dtype=str, keep_default_na=False)
    b.loc[3, 'chin_y'] = 'n/a'; b.to_csv(d/'points.csv', index=False)
    with pytest.raises(DatasetError, match=r"points.csv, row 5 \(crops/.*\), column chin_y: 'n/a' is not a number"): read_points_csv(d)
    b = pd.read_csv(faces/'points.csv', dtype=str, keep_default_na=False)
    b.loc[0, 'chin_y'] = ''; b.to_csv(d/'points.csv', index=False)
    with pytest.raises(DatasetError, match='row 2 .* point chin has one coordinate of two'): read_points_csv(d)
    b = pd.read_csv(faces/'points.csv', dtype=str, keep_default_na=False)
    b.drop(columns=['nose_tip_y']).to_csv(d/'points.csv', index=False)
    with pytest.raises(DatasetError, match='column nose_tip_x has no partner nose_tip_y'): read_points_csv(d)
    b.to_csv(d/'points.csv', index=False); (d/b.loc[1, 'fname']).unlink()
    with pytest.raises(DatasetError, match=f"{b.loc[1, 'fname']} is missing"): read_points_csv(d)
    (d/b.loc[1, 'fname']).write_bytes(b'not an image')
    with pytest.raises(DatasetError, match='is not a readable image'): read_points_csv(d)

def test_coco_errors(faces, tmp_path):
    c = json.loads((faces/'faces_coco.json').read_text())
    c['annotations'][2]['keypoints'] = c['annotations'][2]['keypoints'][:-6]
    (tmp_path/'c.json').write_text(json.dumps(c))
    with pytest.raises(DatasetError, match="annotation 3 has 66 keypoints .* names 68"): read_coco_points(tmp_path/'c.json', faces/'images')
    c = json.loads((faces/'faces_coco.json').read_text())
    a = c['annotations'][1]; W = c['images'][0]['width']; a['bbox'][2] = W + 10.
    (tmp_path/'c.json').write_text(json.dumps(c))
    with pytest.raises(DatasetError, match="annotation 2's box .* is outside its image"): read_coco_points(tmp_path/'c.json', faces/'images')
    c = json.loads((faces/'faces_coco.json').read_text()); c['annotations'][0]['keypoints'][4] = 'x'
    (tmp_path/'c.json').write_text(json.dumps(c))
    with pytest.raises(DatasetError, match="annotation 1's keypoints hold something that is not a number"): read_coco_points(tmp_path/'c.json', faces/'images')
    c = json.loads((faces/'faces_coco.json').read_text()); c['images'][0]['file_name'] = 'nope.jpg'
    (tmp_path/'c.json').write_text(json.dumps(c))
    with pytest.raises(DatasetError, match='nope.jpg is missing'): read_coco_points(tmp_path/'c.json', faces/'images')

def test_mlr_points_csv_68(faces, tmp_path):
    "Done when: 68 landmarks in points.csv, through the real `mlr` train / evaluate / predict; a non-number cell is one line."
    r = console('train', 'points', '--path', faces, '--out', tmp_path/'m', '--epochs', 1, '--size', 32)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'valid NME' in r.stdout and 'saved' in r.stdout
    meta = json.loads((tmp_path/'m'/'model.json').read_text())
    t = meta['data']['targets']
    assert meta['task'] == 'points' and len(t['names']) == 68 and len(t['flip_pairs']) == 29 and meta['norm'] == 'bbox'
    r = console('evaluate', tmp_path/'m', '--path', faces, '--json-out', tmp_path/'e.json')
    assert r.returncode == 0, r.stderr[-3000:]
    ev = json.loads((tmp_path/'e.json').read_text())
    assert len(ev['per_point']) == 68 and 0 <= ev['pck@0.05'] <= ev['pck@0.1'] <= 1 and ev['nme'] > 0
    assert 'per point, worst first:' in r.stdout and r.stdout.index(next(iter(ev['per_point']))) > r.stdout.index('per point')
    ims = sorted((faces/'crops').glob('*.jpg'))[:3]
    r = console('predict', tmp_path/'m', *ims, '--format', 'csv', '--out', tmp_path/'p.csv', '--coco', tmp_path/'p.json')
    assert r.returncode == 0, r.stderr[-3000:]
    p = pd.read_csv(tmp_path/'p.csv'); assert p.shape == (3, 138) and list(p.columns[1:3]) == ['nose_tip_x', 'nose_tip_y']
    assert p['score'].between(0, 1).all()
    for f,(_,row) in zip(ims, p.iterrows()):
        W,H = Image.open(f).size
        xs,ys = row[[f'{n}_x' for n in meta['data']['targets']['names']]].astype(float),row[[f'{n}_y' for n in meta['data']['targets']['names']]].astype(float)
        assert xs.between(0, W).all() and ys.between(0, H).all()   # soft-argmax: inside each original image
    res = json.loads((tmp_path/'p.json').read_text())
    assert len(res) == 3 and all(len(o['keypoints']) == 3*68 for o in res)
    b = pd.read_csv(faces/'points.csv', dtype=str, keep_default_na=False); d = _copy(faces, tmp_path)
    b.loc[0, 'left_eye_1_x'] = 'abc'; b.to_csv(d/'points.csv', index=False)
    one_line_error(console('train', 'points', '--path', d, '--out', tmp_path/'m2', '--epochs', 1, '--size', 32),
                   'points.csv, row 2', 'column left_eye_1_x', "'abc' is not a number")
    assert not (tmp_path/'m2').exists()

def test_mlr_points_coco(faces, tmp_path):
    "Done when: the same photos with a COCO file of several faces per photo, through the real `mlr` train / evaluate / predict."
    co = faces/'faces_coco.json'
    r = console('train', 'points', '--path', faces/'images', '--coco', co, '--out', tmp_path/'m', '--epochs', 1, '--size', 32, '--norm', 'left_eye_1,right_eye_1')
    assert r.returncode == 0, r.stderr[-3000:]
    meta = json.loads((tmp_path/'m'/'model.json').read_text())
    assert meta['source'] == 'coco' and meta['norm'] == 'left_eye_1,right_eye_1' and meta['data']['targets']['skeleton']
    r = console('evaluate', tmp_path/'m', '--path', faces/'images', '--coco', co, '--json-out', tmp_path/'e.json')
    assert r.returncode == 0, r.stderr[-3000:]
    ev = json.loads((tmp_path/'e.json').read_text()); pc = read_coco_points(co, faces/'images')
    assert ev['items'] == sum(is_valid_items(pc, 42)) and ev['norm'] == 'left_eye_1,right_eye_1'
    r = console('predict', tmp_path/'m', faces/'images'/'0000.jpg', '--format', 'json')
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout); assert len(out) == 1 and len(out[0]) == 2 + 2*68   # file, the points, score
    one_line_error(console('train', 'points', '--path', faces/'images', '--coco', co, '--norm', 'nose,chin', '--out', tmp_path/'m3'), "'nose' is not a point name")

def test_mlr_sample_points(tmp_path, capsys):
    "`mlr sample points DIR` writes both layouts; a second run needs --force, and --force replaces only a sample."
    from multilabel_regress.cli import main
    main(['sample', 'points', tmp_path/'s', '--n', '3', '--seed', '1'])
    d = tmp_path/'s'
    assert (d/'points.csv').is_file() and (d/'faces_coco.json').is_file() and len(list((d/'images').glob('*.jpg'))) == 3
    assert len(read_points_csv(d)) == len(read_coco_points(d/'faces_coco.json', d/'images'))
    with pytest.raises(SystemExit): main(['sample', 'points', d, '--n', '3'])
    assert 'already exists' in capsys.readouterr().err
    (tmp_path/'mine').mkdir(); (tmp_path/'mine'/'notes.txt').write_text('keep')
    with pytest.raises(SystemExit): main(['sample', 'points', tmp_path/'mine', '--force'])
    assert (tmp_path/'mine'/'notes.txt').read_text() == 'keep'

# --- the heat-map head, top-down crops, DeepLabCut, the baseline (issue 32) ---

def test_flip_pairs_any_case_without_separators():
    "Sides found in any case and without a separator (`leftear`, `LeftHand`), `l`/`r` only beside a separator (`lip` is no side)."
    names = ['snout', 'leftear', 'rightear', 'LeftHand', 'RightHand', 'l_eye', 'r_eye', 'lip', 'rip', 'Tail_L', 'Tail_R', 'left', 'right']
    assert find_flip_pairs(names) == [('leftear', 'rightear'), ('LeftHand', 'RightHand'), ('l_eye', 'r_eye'), ('Tail_L', 'Tail_R'), ('left', 'right')]
    assert find_flip_pairs(['leftear', 'tailbase']) == []

def test_off_image_points_become_missing():
    "Augmentation that pushes a point off the image marks it NaN (the loss leaves it out); one still inside is kept as it is."
    from fastai.vision.all import TensorPoint
    y = TensorPoint(torch.tensor([[[.5, -.2], [1.3, .1], [-.2, -1.01], [1., -1.]]]))
    out = OffImageNaN()(y, split_idx=0)
    assert torch.equal(out[0, 0], y[0, 0]) and torch.equal(out[0, 3], y[0, 3])
    assert torch.isnan(out[0, 1]).all() and torch.isnan(out[0, 2]).all()
    assert torch.equal(OffImageNaN()(y, split_idx=1), y)   # validation: untouched
    assert not any(type(t).__name__ == 'ClampPoints' for t in points_dls(read_points_csv(_DLC_FIX()), bs=2).train.after_batch.fs)

_DLC_CACHE = {}
def _DLC_FIX():
    "A small DeepLabCut-layout sample, made once for the module."
    if 'd' not in _DLC_CACHE:
        import tempfile
        from multilabel_regress.points_sample import make_dlc_sample
        d = make_dlc_sample(Path(tempfile.mkdtemp())/'dlc', n_frames=12)
        df = read_dlc_points(d)   # the same frames as a points.csv, for loaders that need one
        rows = [dict(fname=str(it['file'].relative_to(d)), **{f'{n}_{a}': it['pts'][j, k] for j,n in enumerate(df.names) for k,a in enumerate('xy')}) for it in df.items]
        pd.DataFrame(rows).to_csv(d/'points.csv', index=False)
        _DLC_CACHE['d'] = d
    return _DLC_CACHE['d']

@pytest.fixture(scope='module')
def dlc():
    return _DLC_FIX()

def test_dlc_reader(dlc, tmp_path):
    "DeepLabCut's CollectedData_NAME.csv: names from bodyparts, pixels as written, empty cells NaN; the folder, the project or the file itself."
    f = dlc/'labeled-data'/'video1'/'CollectedData_mlr.csv'
    rows = [r.split(',') for r in f.read_text().splitlines()]
    ps = read_dlc_points(f)
    assert ps.names == ['snout', 'leftear', 'rightear', 'tailbase'] and len(ps) == 12 and ps.source == 'dlc'
    for it,r in zip(ps.items, rows[3:]):
        assert it['file'] == dlc/'labeled-data'/'video1'/r[2] and it['size'] == (640, 480) and it['crop'] is None
        want = np.array([float(v) if v else np.nan for v in r[3:]]).reshape(4, 2)
        assert np.allclose(it['pts'], want, equal_nan=True)
    assert read_dlc_points(f.parent).file == f and read_dlc_points(dlc).file == f
    assert find_flip_pairs(ps.names) == [('leftear', 'rightear')]
    d = tmp_path/'old'; d.mkdir()   # the older layout: one index column holding the whole path, images beside the CSV
    for p in f.parent.glob('*.jpg'): (d/p.name).symlink_to(p)
    (d/'CollectedData_x.csv').write_text('\n'.join(','.join([r[0] if i < 3 else '/'.join(r[:3])] + r[3:]) for i,r in enumerate(rows)) + '\n')
    assert np.allclose(read_dlc_points(d).points, ps.points, equal_nan=True)

def test_dlc_errors(dlc, tmp_path):
    "A broken DeepLabCut file stops with one line naming the file, the row and the fix."
    f = dlc/'labeled-data'/'video1'/'CollectedData_mlr.csv'
    lines = f.read_text().splitlines()
    def bad(text, *words):
        d = tmp_path/f'b{len(list(tmp_path.iterdir()))}'; d.mkdir()
        for p in f.parent.glob('*.jpg'): (d/p.name).symlink_to(p)
        (d/'CollectedData_mlr.csv').write_text(text)
        with pytest.raises(DatasetError) as e: read_dlc_points(d)
        for w in words: assert w in str(e.value), str(e.value)
        assert '\n' not in str(e.value)
    bad('\n'.join(['scorer,,,a', 'individuals,,,x', *lines[1:]]), 'multi-animal', '--coco')
    bad('\n'.join(['name,,,a', *lines[1:]]), 'scorer, bodyparts, coords')
    r = lines[4].split(','); r[3] = ''; r[4] = '12.5'
    bad('\n'.join([*lines[:4], ','.join(r), *lines[5:]]), 'row 5', 'snout has one coordinate of two')
    r = lines[4].split(','); r[5] = '1,5'
    bad('\n'.join([*lines[:4], ','.join(r)]), 'row 5', 'cells')
    r = lines[4].split(','); r[2] = 'gone.jpg'
    bad('\n'.join([*lines[:3], ','.join(r)]), 'gone.jpg')
    r = lines[4].split(','); r[3] = 'abc'
    bad('\n'.join([*lines[:4], ','.join(r)]), 'row 5', "'abc' is not a number")
    with pytest.raises(DatasetError, match='holds no CollectedData_NAME.csv'): read_dlc_points(tmp_path)

def test_input_size_keeps_the_aspect(dlc, faces):
    "Whole 640x480 frames: 192x144 by default, any long side on request; square-ish crops stay square-ish."
    ps = read_dlc_points(dlc)
    assert input_size(ps) == (144, 192) and input_size(ps, 128) == (96, 128)
    h,w = input_size(read_points_csv(faces))
    assert h % 16 == 0 and w % 16 == 0 and 64 <= max(h, w) <= 192 and .6 < h/w < 1.4

def test_points_epochs():
    from multilabel_regress.points import points_epochs, POINTS_STEPS
    assert points_epochs(5) == POINTS_STEPS//5 and points_epochs(3, 10) == 4 and points_epochs(1000, 10) == 1

def test_mean_position_baseline(faces):
    "The average position: each point's mean over the training items in [-1, 1] of the crop, placed in each item's crop (brute force)."
    pc = read_coco_points(faces/'faces_coco.json', faces/'images')
    tr,va = pc.items[:15],pc.items[15:]
    mu = mean_position(tr)
    for j in (0, 5, 30):
        us = []
        for it in tr:
            x0,y0,x1,y1 = item_crop(it)
            if not np.isnan(it['pts'][j, 0]): us.append([(it['pts'][j,0]-x0)/(x1-x0)*2-1, (it['pts'][j,1]-y0)/(y1-y0)*2-1])
        assert np.allclose(mu[j], np.mean(us, 0))
    b = baseline_metrics(mu, va, nme_norm(va), pc.names)
    it = va[0]; x0,y0,x1,y1 = item_crop(it)
    guess = np.stack([(mu[:,0]+1)/2*(x1-x0)+x0, (mu[:,1]+1)/2*(y1-y0)+y0], 1)
    assert abs(b['per_point'][pc.names[0]]['labelled'] - sum(~np.isnan(i['pts'][0,0]) for i in va)) == 0
    d = np.linalg.norm(guess - it['pts'], axis=1)
    single = baseline_metrics(mu, [it], nme_norm([it]), pc.names)
    assert np.isclose(single['mean_px'], np.nanmean(d))
    assert baseline_warning(dict(mean_px=3.), dict(mean_px=2.)).startswith('warning: the model (3.00 px) does not beat')
    assert baseline_warning(dict(mean_px=1.), dict(mean_px=2.)) is None

def test_heatmap_model_folder_any_points(tmp_path):
    "The heat-map head saves and loads through the model folder for 1, 4 and 68 points; the chapter's one-point soft-argmax still builds."
    from multilabel_regress.models import save_model, load_model
    from multilabel_regress.archs import build_model
    from multilabel_regress.preprocessing import DataSpec
    for k in (1, 4, 68):
        cfg = dict(arch='xresnet_small', builder='heatmap', n_out=2*k, stride=4, width=64)
        torch.manual_seed(k); m = build_model(cfg).eval()
        spec = DataSpec('box_crop', (64, 96), targets=dict(kind='points', names=[f'p{i}' for i in range(k)], flip_pairs=[], skeleton=[]))
        save_model(m, tmp_path/f'm{k}', dict(task='points', **cfg, data=spec.to_dict()))
        m2,meta = load_model(tmp_path/f'm{k}')
        x = torch.randn(2, 3, 64, 96)
        with torch.no_grad(): assert torch.allclose(m(x), m2(x)) and m2(x).shape == (2, 2*k)
    one = build_model(dict(arch='xresnet_small', builder='softargmax', n_out=2, stride=8))
    assert one(torch.randn(1, 3, 64, 64)).shape == (1, 2)

def test_train_points_lines_speedups_boxes(faces, tmp_path, capsys, monkeypatch):
    "train_points: a line per epoch off a terminal, --speedups honoured; predicting with --boxes: the COCO file's ids, a result per box, a score."
    import multilabel_regress.recipes as R
    from multilabel_regress.models import save_model
    from multilabel_regress.predictions import predict_point_files
    seen = []
    monkeypatch.setattr(R, 'cuda_speedups', lambda learn: seen.append(learn))
    co = faces/'faces_coco.json'
    learn,meta,m = R.train_points(faces/'images', str(co), epochs=2, size=32)
    out = capsys.readouterr().out
    lines = [l for l in out.splitlines() if l.strip()]
    # `fine_tune` from the shipped body (the sample's recipe): the frozen epoch's table, then the 2 epochs'
    heads = [i for i,l in enumerate(lines) if l.split()[:3] == ['epoch', 'train_loss', 'valid_loss']]
    assert heads == [0, 2] and [l.split()[0] for l in lines] == ['epoch', '0', 'epoch', '0', '1']
    assert '\r' not in out and '█' not in out
    assert len(seen) == 1
    R.train_points(faces/'images', str(co), epochs=1, size=32, speedups=False)
    assert len(seen) == 1
    assert meta['builder'] == 'heatmap' and meta['mean_position'] and m['baseline']['mean_px'] > 0
    save_model(learn.model, tmp_path/'m', meta)
    c = json.loads(co.read_text())
    photos = [faces/'images'/im['file_name'] for im in c['images'][:3]]
    res = predict_point_files(learn.model.eval(), meta, photos, coco=tmp_path/'r.json', boxes=co)
    want = [(im['id'], a['id']) for im in c['images'][:3] for a in c['annotations'] if a['image_id'] == im['id']]
    assert len(res) == len(want) and [r['image_id'] for r in res] == [i for i,_ in want]
    assert all(0 < r['score'] <= 1 for r in res)
    out = json.loads((tmp_path/'r.json').read_text())
    assert [o['image_id'] for o in out] == [i for i,_ in want] and c['images'][0]['file_name'] == '0000.jpg' and out[0]['image_id'] == 1
    with pytest.raises(DatasetError, match='not among'): predict_point_files(learn.model, meta, [faces/'crops'/'0000_0.jpg'], boxes=co)

def test_short_training_beats_the_average_face(tmp_path):
    "A model that learns: 150 optimiser steps on about sixty generated faces (64 px) beat the average face by a clear margin."
    from multilabel_regress.recipes import train_points
    d = make_points_sample(tmp_path/'f', n_images=30)
    learn,meta,m = train_points(d, steps=150, size=64)
    assert m['nme'] < .6*m['baseline']['nme'], (m['nme'], m['baseline'])
    assert m['warning'] is None
