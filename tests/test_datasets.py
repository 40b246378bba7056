import hashlib, shutil, json
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image
from multilabel_regress.datasets import *

def digest(p):
    h = hashlib.sha256()
    for f in sorted(Path(p).rglob('*')):
        if f.is_file(): h.update(str(f.relative_to(p)).encode()); h.update(f.read_bytes())
    return h.hexdigest()

# --- PASCAL layout -------------------------------------------------------------------------

def test_pascal_layout(pascal):
    # exactly the archive's 8 entries (FORMATS.md): the sample's marker is beside the folder, not in it
    assert sorted(o.name for o in pascal.iterdir()) == ['segmentation','test','test.csv','test.json','train',
                                                        'train.csv','train.json','valid.json']
    assert is_sample(pascal) and sample_marker(pascal) == pascal.parent/'.pascal_2007.multilabel_regress_sample.json'
    df = pd.read_csv(pascal/'train.csv')  # the chapter's reading code
    assert list(df.columns) == ['fname','labels','is_valid'] and len(df) == 60
    assert df['is_valid'].dtype == bool and df['is_valid'].any() and (~df['is_valid']).any()
    assert df['fname'].str.fullmatch(r'\d{6}\.jpg').all() and df['fname'].is_monotonic_increasing
    raw = (pascal/'train.csv').read_text().splitlines()
    assert raw[0] == 'fname,labels,is_valid' and raw[1].endswith((',True', ',False'))
    for fn,labels in zip(df['fname'], df['labels']):
        ls = labels.split(' ')
        assert ls and set(ls) <= set(VOC_CLASSES) and len(set(ls)) == len(ls)
        im = Image.open(pascal/'train'/fn)
        assert im.mode == 'RGB' and im.format == 'JPEG' and im.size in PASCAL_SIZES
    t = pd.read_csv(pascal/'test.csv')
    assert len(t) == 10 and all((pascal/'test'/f).exists() for f in t['fname'])
    assert not set(t['fname']) & set(df['fname'])

def test_pascal_json_matches_csv(pascal):
    df = pd.read_csv(pascal/'train.csv')
    for name,valid in (('train',False),('valid',True)):
        js = json.loads((pascal/f'{name}.json').read_text())
        assert [i['file_name'] for i in js['images']] == list(df.fname[df.is_valid==valid])
        cats = {c['id']:c['name'] for c in js['categories']}
        labels = dict(zip(df.fname, df.labels))
        id2fn = {i['id']:i['file_name'] for i in js['images']}
        for a in js['annotations']: assert cats[a['category_id']] in labels[id2fn[a['image_id']]].split()

def test_pascal_frequencies():
    # class frequencies follow VOC's: person the most common, ~1.5 labels per image
    labels = pd.read_csv(get_pascal()/'train.csv')['labels'].str.split(' ')
    counts = pd.Series([c for l in labels for c in l]).value_counts()
    assert counts.index[0] == 'person' and set(counts.index) == set(VOC_CLASSES)
    assert 1.3 < labels.map(len).mean() < 1.7
    assert any(l != sorted(l) for l in labels)

def test_pascal_deterministic(tmp_path, pascal):
    a = make_pascal_sample(tmp_path/'a', n_images=60, n_test=10)
    assert digest(a) == digest(pascal)
    b = make_pascal_sample(tmp_path/'b', n_images=60, n_test=10, seed=1)
    assert digest(a) != digest(b)

def test_sample_not_overwritten(tmp_path):
    d = tmp_path/'p'; d.mkdir(); (d/'keep.txt').write_text('mine')
    with pytest.raises(FolderExistsError, match='overwrite=True'): make_pascal_sample(d, n_images=5, n_test=1)
    assert (d/'keep.txt').read_text() == 'mine'

def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    import multilabel_regress.samples as samples
    def boom(*a, **k): raise KeyboardInterrupt
    monkeypatch.setattr(samples, '_draw_pascal', boom)
    with pytest.raises(KeyboardInterrupt): make_pascal_sample(tmp_path/'p', n_images=5, n_test=1)
    assert list(tmp_path.iterdir()) == []

def test_get_sample_cached(tmp_path, monkeypatch):
    monkeypatch.setenv('MULTILABEL_REGRESS_DATA', str(tmp_path))
    p = get_pascal(n_images=8, n_test=2)
    assert p.parent == tmp_path/'samples' and len(pd.read_csv(p/'train.csv')) == 8
    m = (p/'train.csv').stat().st_mtime_ns
    assert get_pascal(n_images=8, n_test=2) == p and (p/'train.csv').stat().st_mtime_ns == m
    with pytest.raises(ValueError, match="'sample'"): get_pascal('smaple')

# --- BIWI layout ---------------------------------------------------------------------------

def test_biwi_layout(biwi):
    names = sorted(o.name for o in biwi.iterdir())
    assert names == sorted([f'{i:02d}' for i in range(1,25)] + [f'{i:02d}.obj' for i in range(1,25)])
    assert is_sample(biwi) and sample_marker(biwi).is_file()
    assert (biwi/'13').is_dir() and (biwi/'01.obj').read_text().startswith('v ')
    files = sorted((biwi/'07').iterdir())
    assert [f.name for f in files][:3] == ['depth.cal','frame_00003_pose.txt','frame_00003_rgb.jpg']
    assert (biwi/'07'/'rgb.cal').read_text() == RGB_CAL

def test_biwi_chapter_reading_code(biwi):
    from fastai.vision.all import get_image_files, PILImage
    img_files = get_image_files(biwi)
    assert len(img_files) == 24*3
    def img2pose(x): return Path(f'{str(x)[:-7]}pose.txt')
    pose = img2pose(img_files[0])
    assert pose.exists() and pose.name.endswith('_pose.txt')
    cal = np.genfromtxt(biwi/'01'/'rgb.cal', skip_footer=6)
    np.testing.assert_array_equal(cal, [[517.679,0,320],[0,517.679,240.5],[0,0,1]])
    ctr = np.genfromtxt(pose, skip_header=3)
    assert ctr.shape == (3,) and 500 < ctr[2] < 1500
    assert PILImage.create(img_files[0]).shape == (480, 640)
    lines = pose.read_text().split('\n')
    assert lines[3] == '' and all(l.endswith(' ') for l in lines[:3] + [lines[4]])
    R = np.array([l.split() for l in lines[:3]], float)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-4)

def test_biwi_formats_example():
    # the FORMATS.md example: written back to the same text, projected to the chapter's value
    R = np.array([[0.999485,-0.00797222,-0.031067],[-0.00416483,0.928156,-0.372168],[0.031802,0.372106,0.927645]])
    txt = pose_text(R, [62.3638, 96.2159, 979.839])
    assert txt == ("0.999485 -0.00797222 -0.031067 \n-0.00416483 0.928156 -0.372168 \n"
                   "0.031802 0.372106 0.927645 \n\n62.3638 96.2159 979.839 \n")
    c = np.array([62.3638, 96.2159, 979.839])
    np.testing.assert_allclose([c[0]*BIWI_K[0,0]/c[2]+BIWI_K[0,2], c[1]*BIWI_K[1,1]/c[2]+BIWI_K[1,2]],
                               [352.9487, 291.3338], atol=1e-4)

def test_biwi_head_drawn_at_label(biwi):
    # the head is drawn where get_ctr says: its colour differs from the room right at the label
    import multilabel_regress.datasets as ds
    for f in sorted((biwi/'05').glob('*_rgb.jpg')):
        R,c = read_pose_file(Path(str(f)[:-7]+'pose.txt'))
        u,v = c[0]*BIWI_K[0,0]/c[2]+BIWI_K[0,2], c[1]*BIWI_K[1,1]/c[2]+BIWI_K[1,2]
        rp = BIWI_K[0,0]*90/c[2]
        im = np.asarray(Image.open(f)).astype(float)
        inside = im[int(v)-3:int(v)+4, int(u)-3:int(u)+4].mean((0,1))
        far = im[int(v)-3:int(v)+4, int(u-2.5*rp)-3:int(u-2.5*rp)+4].mean((0,1))
        assert np.abs(inside-far).sum() > 20

def test_rotation_from_angles():
    np.testing.assert_allclose(rotation_from_angles(0,0,0), np.eye(3))
    R = rotation_from_angles(90, 0, 0)  # yaw 90: the head's forward axis (0,0,-1) turns to -x
    np.testing.assert_allclose(R @ [0,0,-1], [-1,0,0], atol=1e-12)
    for a in [(10,20,30), (-60,5,-15)]:
        R = rotation_from_angles(*a); np.testing.assert_allclose(R@R.T, np.eye(3), atol=1e-12)
        assert np.isclose(np.linalg.det(R), 1)

def test_biwi_deterministic(tmp_path, biwi):
    assert digest(make_biwi_sample(tmp_path/'b', n_frames=3)) == digest(biwi)
    with pytest.raises(ValueError, match='person 13'): make_biwi_sample(tmp_path/'c', n_people=5)

# --- checks on bad folders -------------------------------------------------------------------

@pytest.fixture
def bad_pascal(pascal, tmp_path):
    d = tmp_path/'pascal_2007'; shutil.copytree(pascal, d); return d

@pytest.fixture
def bad_biwi(biwi, tmp_path):
    d = tmp_path/'biwi_head_pose'; shutil.copytree(biwi, d); return d

def test_check_pascal_ok(pascal): assert len(check_pascal(pascal)) == 60

def test_check_pascal_missing_csv(bad_pascal):
    (bad_pascal/'train.csv').unlink()
    with pytest.raises(DatasetError, match=r'train\.csv is missing'): check_pascal(bad_pascal)

@pytest.mark.parametrize('col', ['labels', 'is_valid', 'fname'])
def test_check_pascal_missing_column(bad_pascal, col):
    pd.read_csv(bad_pascal/'train.csv').drop(columns=col).to_csv(bad_pascal/'train.csv', index=False)
    with pytest.raises(DatasetError, match=f'train.csv has no column {col}'): check_pascal(bad_pascal)

def test_check_pascal_empty_labels(bad_pascal):
    df = pd.read_csv(bad_pascal/'train.csv'); df.loc[2,'labels'] = None; df.to_csv(bad_pascal/'train.csv', index=False)
    with pytest.raises(DatasetError, match=f"row 4 \\({df.fname[2]}\\): empty labels"): check_pascal(bad_pascal)

def test_check_pascal_bad_is_valid(bad_pascal):
    df = pd.read_csv(bad_pascal/'train.csv'); df['is_valid'] = df['is_valid'].astype(object); df.loc[0,'is_valid'] = 'yes'
    df.to_csv(bad_pascal/'train.csv', index=False)
    with pytest.raises(DatasetError, match="row 2: is_valid is 'yes'"): check_pascal(bad_pascal)

def test_check_pascal_missing_image(bad_pascal):
    fn = pd.read_csv(bad_pascal/'train.csv').fname[5]; (bad_pascal/'train'/fn).unlink()
    with pytest.raises(DatasetError, match=f'{fn} is missing'): check_pascal(bad_pascal)

def test_check_pascal_corrupt_image(bad_pascal):
    fn = pd.read_csv(bad_pascal/'train.csv').fname[5]; (bad_pascal/'train'/fn).write_bytes(b'not a jpeg')
    with pytest.raises(DatasetError, match=f'{fn} is not a readable image'): check_pascal(bad_pascal)

def test_check_biwi_ok(biwi): assert len(check_biwi(biwi)) == 72

@pytest.mark.parametrize('text,msg', [
    ('1 0 0 \n0 1 0 \n', 'is malformed'),
    ('1 0 0 \n0 1 0 \n0 0 1 \n\nnan 1 900 \n', 'NaN'),
    ('1 0 0 \n0 1 0 \n0 0 1 \n\n1 2 x \n', 'not numbers'),
    ('1 0 0 \n0 1 0 \n0 0 1 \n\n1 2 -5 \n', 'depth'),
])
def test_check_biwi_bad_pose(bad_biwi, text, msg):
    f = bad_biwi/'09'/'frame_00003_pose.txt'; f.write_text(text)
    with pytest.raises(DatasetError, match=msg) as e: check_biwi(bad_biwi)
    assert str(f) in str(e.value)

def test_check_biwi_missing_pose(bad_biwi):
    (bad_biwi/'09'/'frame_00003_pose.txt').unlink()
    with pytest.raises(DatasetError, match='09/frame_00003_pose.txt is missing'): check_biwi(bad_biwi)

def test_check_biwi_bad_cal(bad_biwi):
    (bad_biwi/'11'/'rgb.cal').write_text('0 0 0 0\n\n640 480\n')
    with pytest.raises(DatasetError, match='11/rgb.cal has no 3x3 intrinsics'): check_biwi(bad_biwi)

def test_check_biwi_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match='no person folders'): check_biwi(tmp_path)

# --- every image decoded, splits present, odd files named ---------------------------------------

def _halve(f): b = f.read_bytes(); f.write_bytes(b[:len(b)//2])

def test_check_pascal_truncated_jpeg(bad_pascal):
    # half a JPEG passes `Image.verify()` (it does not decode); the check decodes, and names the file
    fn = pd.read_csv(bad_pascal/'train.csv').fname[7]; f = bad_pascal/'train'/fn; _halve(f)
    with Image.open(f) as im: im.verify()
    with pytest.raises(DatasetError, match=f'{fn} is not a readable image .*truncated.*drop its row') as e: check_pascal(bad_pascal)
    assert '\n' not in str(e.value)
    assert len(check_pascal(bad_pascal, images=False)) == 60  # what a header-only check would have let through

def test_check_biwi_truncated_jpeg(bad_biwi):
    f = bad_biwi/'13'/'frame_00004_rgb.jpg'
    if not f.exists(): f = sorted((bad_biwi/'13').glob('*_rgb.jpg'))[1]
    _halve(f)
    with pytest.raises(DatasetError, match=f'{f.name} is not a readable image .*delete the frame'): check_biwi(bad_biwi)

@pytest.mark.parametrize('valid,split', [(True, 'training'), (False, 'validation')])
def test_check_pascal_needs_both_splits(bad_pascal, valid, split):
    df = pd.read_csv(bad_pascal/'train.csv'); df['is_valid'] = valid; df.to_csv(bad_pascal/'train.csv', index=False)
    with pytest.raises(DatasetError, match=f'train.csv has no {split} rows \\(is_valid={not valid}\\)'): check_pascal(bad_pascal)

def test_check_pascal_empty_fname(bad_pascal):
    df = pd.read_csv(bad_pascal/'train.csv'); df.loc[4,'fname'] = None; df.to_csv(bad_pascal/'train.csv', index=False)
    with pytest.raises(DatasetError, match='row 6: empty fname'): check_pascal(bad_pascal)

def test_check_pascal_odd_files(bad_pascal):
    df = pd.read_csv(bad_pascal/'train.csv'); f = bad_pascal/'train'/df.fname[3]; f.unlink(); f.mkdir()
    with pytest.raises(DatasetError, match=f'{df.fname[3]} is a folder, not an image'): check_pascal(bad_pascal)
    f.rmdir(); f.write_bytes(b'')
    with pytest.raises(DatasetError, match=f'{df.fname[3]} is not a readable image'): check_pascal(bad_pascal)

def test_check_image_bomb(pascal, monkeypatch):
    f = sorted((pascal/'train').glob('*.jpg'))[0]
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)  # the image now has far more pixels than allowed
    with pytest.raises(DatasetError, match=f'{f.name} is too large to decode safely'): check_image(f)

def test_check_image_modes(tmp_path):
    # what decoding accepts: any mode PIL reads, JPEG (drafted) or not
    for name,im in [('g.jpg', Image.new('L', (9,7))), ('c.jpg', Image.new('CMYK', (9,7))), ('a.png', Image.new('RGBA', (9,7))),
                    ('tiny.jpg', Image.new('RGB', (3,2)))]:
        im.save(tmp_path/name); check_image(tmp_path/name)

def test_user_errors():
    assert issubclass(DatasetError, UserError) and issubclass(ModelFolderError, UserError)
    assert issubclass(FolderExistsError, UserError) and issubclass(FolderExistsError, FileExistsError)
    assert issubclass(UserError, ValueError)  # `except ValueError` in older callers still catches them
    with pytest.raises(UserError, match="'sample'"): get_pascal('smaple')

# --- the labels CSV: one reader (`read_pascal_csv`) for check_pascal, pascal_dls and mlr evaluate ---------

def _write(f, df): df.to_csv(f, index=False); return f

@pytest.mark.parametrize('labels,words', [
    ('bottle,bird', ["row 4", "hold a comma", "labels are separated by single spaces", "write 'bottle bird'"]),
    ('dog;cat', ["row 4", "hold a semicolon", "write 'dog cat'"]),
    ('', ["row 4", "empty labels"]),
    ('   ', ["row 4", "empty labels"]),
])
def test_read_csv_bad_labels(bad_pascal, labels, words):
    "A comma between labels is a clear error, not a class named 'bottle,bird'; an empty cell names its row."
    df = pd.read_csv(bad_pascal/'train.csv'); df.loc[2, 'labels'] = labels; f = _write(bad_pascal/'train.csv', df)
    for check in (lambda: read_pascal_csv(f), lambda: check_pascal(bad_pascal, images=False)):
        with pytest.raises(DatasetError) as e: check()
        assert str(e.value).startswith(str(f)) and '\n' not in str(e.value)
        for w in words: assert w in str(e.value), (w, str(e.value))
        assert df.fname[2] in str(e.value)

def test_read_csv_unquoted_comma(bad_pascal):
    "`a.jpg,bottle,bird,False` has one field too many: said so, with the fix."
    f = bad_pascal/'train.csv'; lines = f.read_text().splitlines()
    fn,_,v = lines[3].split(','); lines[3] = f'{fn},bottle,bird,{v}'; f.write_text('\n'.join(lines) + '\n')
    with pytest.raises(DatasetError, match=r'row 4 has 4 fields where the header has 3 .*not commas'): read_pascal_csv(f)

def test_read_csv_no_validation_rows(bad_pascal):
    f = _write(bad_pascal/'train.csv', pd.read_csv(bad_pascal/'train.csv').assign(is_valid=False))
    with pytest.raises(DatasetError, match=r'train\.csv has no validation rows \(is_valid=True\)'): read_pascal_csv(f)
    assert len(read_pascal_csv(f, split=False)) == 60  # scoring a CSV (`mlr evaluate --all-rows`) needs no validation rows

def test_read_csv_spaces_in_header(bad_pascal):
    f = bad_pascal/'train.csv'; txt = f.read_text(); f.write_text(txt.replace('fname,labels,is_valid', 'fname, labels,is_valid', 1))
    with pytest.raises(DatasetError) as e: read_pascal_csv(f)
    assert "has no column labels" in str(e.value) and "' labels'" in str(e.value) and 'remove the spaces' in str(e.value)

@pytest.mark.parametrize('pad,where', [(' ', 'end'), ('  ', 'end'), (None, 'start')])
def test_read_csv_spaces_in_a_file_name(bad_pascal, pad, where):
    df = pd.read_csv(bad_pascal/'train.csv'); fn = df.fname[5]
    df.loc[5, 'fname'] = fn + pad if pad else ' ' + fn
    f = _write(bad_pascal/'train.csv', df)
    with pytest.raises(DatasetError) as e: check_pascal(bad_pascal, images=False)
    msg = str(e.value)
    assert 'row 7' in msg and 'is missing' in msg and f'has a space at its {where}' in msg and f"{fn!r} is there" in msg, msg

def test_read_csv_spaces_in_is_valid(bad_pascal):
    df = pd.read_csv(bad_pascal/'train.csv'); df['is_valid'] = df['is_valid'].astype(str); df.loc[1, 'is_valid'] = ' True'
    with pytest.raises(DatasetError, match=r"row 3: is_valid is ' True' \(with a space at its start\)"): read_pascal_csv(_write(bad_pascal/'train.csv', df))

def test_read_csv_cleans_and_keeps(bad_pascal):
    "Extra spaces and repeats are cleaned; a label spelled like a missing value stays a label; a spreadsheet's byte-order mark is not part of a column name."
    df = pd.read_csv(bad_pascal/'train.csv')
    df.loc[0, 'labels'] = '  dog   person dog '; df.loc[1, 'labels'] = 'NA'
    f = bad_pascal/'train.csv'; f.write_bytes(b'\xef\xbb\xbf' + df.to_csv(index=False).encode())
    got = read_pascal_csv(f, bad_pascal/'train')
    assert list(got.columns) == ['fname', 'labels', 'is_valid'] and got['is_valid'].dtype == bool
    assert got.labels[0] == 'dog person' and got.labels[1] == 'NA' and list(got.fname) == list(df.fname)
    assert got['is_valid'].tolist() == df['is_valid'].tolist()

def test_read_csv_not_a_csv(tmp_path):
    (tmp_path/'empty.csv').write_text('')
    with pytest.raises(DatasetError, match='empty.csv is empty'): read_pascal_csv(tmp_path/'empty.csv')
    (tmp_path/'bin.csv').write_bytes(b'\xff\xfe\x00\x01garbage')
    with pytest.raises(DatasetError, match='bin.csv is not UTF-8 text'): read_pascal_csv(tmp_path/'bin.csv')
    with pytest.raises(DatasetError, match='is a folder, not a CSV'): read_pascal_csv(tmp_path)
