"Tests of the key-point half: pose and calibration files, head angles, the BIWI DataLoaders, prediction in pixels."
import pickle, shutil, warnings, math
from pathlib import Path
import numpy as np, pytest, torch
from torch.testing import assert_close
from multilabel_regress.datasets import DatasetError, RGB_CAL, pose_text, rotation_from_angles
from multilabel_regress.biwi_data import *
from multilabel_regress.keypoint import *
from multilabel_regress.preprocessing import head_crop
from fastai.vision.all import L, PILImage
from PIL import Image
from scipy.spatial.transform import Rotation

# our code must not trigger deprecations (pandas 3 warns about positional arguments, for one)
pytestmark = [pytest.mark.filterwarnings('error::DeprecationWarning:multilabel_regress'),
              pytest.mark.filterwarnings('error::FutureWarning:multilabel_regress')]

@pytest.fixture(autouse=True)
def _image_cache(tmp_path_factory, monkeypatch):
    "The frames' image caches (`biwi_dls` and `pose_dls` decode each frame once) go to this session's temporary folder, not the user's."
    monkeypatch.delenv('MULTILABEL_REGRESS_IMAGES', raising=False); monkeypatch.setenv('MULTILABEL_REGRESS_DATA', str(tmp_path_factory.getbasetemp()/'image_cache'))

R22 = np.array([[0.999485,-0.00797222,-0.031067],[-0.00416483,0.928156,-0.372168],[0.031802,0.372106,0.927645]])
CTR22 = [62.3638, 96.2159, 979.839]

@pytest.fixture
def folder22(tmp_path):
    "The FORMATS.md example: folder 22, frame 304, with the real rgb.cal."
    d = tmp_path/'22'; d.mkdir()
    (d/'rgb.cal').write_text(RGB_CAL)
    (d/'frame_00304_pose.txt').write_text(pose_text(R22, CTR22))
    return d

def test_formats_example(folder22):
    f = folder22/'frame_00304_rgb.jpg'
    assert img2pose(f) == folder22/'frame_00304_pose.txt'
    c = get_ctr(f)
    assert c.dtype == torch.float32
    assert_close(c, torch.tensor([352.9487, 291.3338]), atol=1e-4, rtol=0)
    assert_close(get_ctr(f, cal=read_cal(folder22/'rgb.cal')), c)
    # the book's way to read the calibration gives the same matrix
    assert_close(torch.tensor(np.genfromtxt(folder22/'rgb.cal', skip_footer=6)), torch.tensor(read_cal(folder22)))

def test_get_ctr_reads_own_folder_cal(folder22, tmp_path):
    other = tmp_path/'07'; other.mkdir()
    (other/'rgb.cal').write_text(RGB_CAL.replace('517.679 0 320', '600 0 300').replace('0 517.679 240.5', '0 600 250'))
    shutil.copy(folder22/'frame_00304_pose.txt', other/'frame_00304_pose.txt')
    K = read_cal(other)
    assert_close(torch.tensor(K), torch.tensor([[600.,0,300],[0,600,250],[0,0,1]], dtype=torch.float64))
    X,Y,Z = CTR22
    assert_close(get_ctr(other/'frame_00304_rgb.jpg'), torch.tensor([X*600/Z+300, Y*600/Z+250]), atol=1e-4, rtol=0)
    # each folder keeps its own intrinsics, even when both are cached
    assert_close(get_ctr(folder22/'frame_00304_rgb.jpg'), torch.tensor([352.9487, 291.3338]), atol=1e-4, rtol=0)
    # an explicit `cal` wins over the folder's
    assert_close(get_ctr(other/'frame_00304_rgb.jpg', cal=read_cal(folder22)), torch.tensor([352.9487, 291.3338]), atol=1e-4, rtol=0)

def test_read_cal_errors(tmp_path):
    with pytest.raises(DatasetError, match='rgb.cal'): read_cal(tmp_path)
    (tmp_path/'rgb.cal').write_text('517 0 320\nnot numbers\n')
    with pytest.raises(DatasetError, match='rgb.cal'): read_cal(tmp_path)

@pytest.mark.parametrize('angles', [(0,0,0), (30,0,0), (0,-25,0), (0,0,15), (30,-20,10), (-65,35,-20), (170,-80,-170)])
def test_pose_angles_constructed(angles):
    np.testing.assert_allclose(pose_angles(rotation_from_angles(*angles)), angles, atol=1e-9)

def test_pose_angles_random():
    rng = np.random.default_rng(42)
    for a in rng.uniform([-179,-89.9,-179], [179,89.9,179], (500,3)):
        np.testing.assert_allclose(pose_angles(rotation_from_angles(*a)), a, atol=1e-6)

# --- angles against scipy: `Rotation.as_euler('YXZ')` is the same convention, and also puts roll 0 at gimbal lock ---

def _scipy_angles(R):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)  # scipy warns at gimbal lock, and sets the third angle (roll) to 0
        return Rotation.from_matrix(R).as_euler('YXZ', degrees=True)

def _wrap(d): return (np.asarray(d, float) + 180) % 360 - 180  # angle differences around the circle, in [-180, 180)

def test_scipy_has_our_convention():
    for a in [(30,-20,10), (-120,70,160), (10,-90,25)]:
        np.testing.assert_allclose(Rotation.from_euler('YXZ', a, degrees=True).as_matrix(), rotation_from_angles(*a), atol=1e-12)

def test_pose_angles_whole_range_against_scipy():
    rng = np.random.default_rng(0)
    for a in rng.uniform([-180,-90,-180], [180,90,180], (5000,3)):
        R = rotation_from_angles(*a); ours = pose_angles(R)
        assert np.abs(_wrap(np.subtract(ours, _scipy_angles(R)))).max() < 1e-8
        assert np.abs(_wrap(np.subtract(ours, a))).max() < 1e-8   # away from gimbal lock the angles are unique: the ones we built with
        np.testing.assert_allclose(rotation_from_angles(*ours), R, atol=1e-12)

@pytest.mark.parametrize('pitch', [90., -90., 90-1e-6, -90+1e-6, 90-1e-9, -90+1e-9, 90-1e-3, -90+1e-3])
def test_pose_angles_at_and_near_gimbal_lock(pitch):
    rng = np.random.default_rng(abs(int(pitch*1e9)) % 2**32)
    for y,r in rng.uniform(-180, 180, (300,2)):
        R = rotation_from_angles(y, pitch, r); ours = pose_angles(R)
        assert np.abs(_wrap(np.subtract(ours, _scipy_angles(R)))).max() < 1e-7
        locked = abs(math.cos(math.radians(pitch))) < 1e-7
        if locked:  # roll 0, the whole turn in yaw: yaw - roll at +90, yaw + roll at -90
            assert ours[2] == 0. and abs(_wrap(ours[0] - (y - r if pitch > 0 else y + r))) < 1e-5
        # the round trip gives the rotation back; near the lock within 2|cos(pitch)|, the size of the roll that is dropped
        np.testing.assert_allclose(rotation_from_angles(*ours), R, atol=1e-12 if abs(pitch) == 90 or not locked else 2e-7)

def test_pose_angles_minus_90():
    "The issue's example: yaw 10, pitch -90, roll 0 came back as (-10, -90, 0)."
    np.testing.assert_allclose(pose_angles(rotation_from_angles(10, -90, 0)), (10, -90, 0), atol=1e-9)
    np.testing.assert_allclose(pose_angles(rotation_from_angles(10, -90, 25)), (35, -90, 0), atol=1e-9)
    np.testing.assert_allclose(pose_angles(rotation_from_angles(10, 90, 25)), (-15, 90, 0), atol=1e-9)

def test_pose_angles_meaning_and_files(folder22):
    # yaw 90 turns the face, (0,0,-1), to the image's left (-x); positive pitch turns it down (+y)
    np.testing.assert_allclose(rotation_from_angles(90,0,0) @ [0,0,-1], [-1,0,0], atol=1e-12)
    assert (rotation_from_angles(0,20,0) @ [0,0,-1])[1] > 0
    # gimbal lock: the rotation is still reproduced
    R = rotation_from_angles(40, 90, 25)
    np.testing.assert_allclose(rotation_from_angles(*pose_angles(R)), R, atol=1e-9)
    # from an image file, its pose file, or the matrix
    a = pose_angles(folder22/'frame_00304_rgb.jpg')
    np.testing.assert_allclose(a, pose_angles(folder22/'frame_00304_pose.txt'))
    np.testing.assert_allclose(a, pose_angles(R22))
    np.testing.assert_allclose(rotation_from_angles(*a), R22, atol=1e-5)
    with pytest.raises(ValueError, match='3x3'): pose_angles(np.eye(2))

@pytest.mark.parametrize('text,match', [
    (None, 'missing'),
    ('0.99 0 0\n0 1 0\n', 'malformed'),
    ('1 0 0\n0 1 0\n0 0 1\n\n10 20 nan\n', 'NaN'),
    ('1 0 0\n0 1 0\n0 0 1\n\n10 20 abc\n', 'not numbers'),
])
def test_bad_pose_file_named(tmp_path, text, match):
    (tmp_path/'rgb.cal').write_text(RGB_CAL)
    if text is not None: (tmp_path/'frame_00009_pose.txt').write_text(text)
    f = tmp_path/'frame_00009_rgb.jpg'
    for fn in (get_ctr, pose_angles):
        with pytest.raises(DatasetError, match=match) as e: fn(f)
        assert 'frame_00009_pose.txt' in str(e.value)

def test_img2pose_refuses_other_files():
    with pytest.raises(DatasetError, match='depth.bin'): img2pose('01/frame_00003_depth.bin')

def test_book_datablock_with_get_ctr(biwi):
    "The book's DataBlock as printed, `get_y=get_ctr`: fastai dispatches on `get_ctr`'s annotations, so `cal`'s default `None` must fit its type."
    from fastai.vision.all import DataBlock, ImageBlock, PointBlock, FuncSplitter, get_image_files
    db = DataBlock(blocks=(ImageBlock, PointBlock), get_items=get_image_files, get_y=get_ctr,
                   splitter=FuncSplitter(lambda o: o.parent.name=='13'))
    dls = db.dataloaders(biwi, bs=2, num_workers=0)
    f = dls.valid.items[0]
    assert_close(dls.valid_ds[0][1].view(2), get_ctr(f))
    assert {Path(o).parent.name for o in dls.valid.items} == {'13'}

def test_person_splitter(biwi):
    files = sorted(biwi.glob('*/*_rgb.jpg'))
    s = PersonSplitter('13')
    trn,val = s(files)
    assert {files[i].parent.name for i in val} == {'13'} and len(val) == 3
    assert '13' not in {files[i].parent.name for i in trn} and len(trn) + len(val) == len(files)
    assert pickle.loads(pickle.dumps(s))(files) == (trn,val)
    assert len(PersonSplitter(['13', 7])(files)[1]) == 6
    with pytest.raises(DatasetError, match='person 99'): PersonSplitter('99')(files)

def test_biwi_dls_holds_out_13(biwi):
    dls = biwi_dls(biwi, size=(48,64), bs=8, presize=(48,64), num_workers=0)
    assert {Path(f).parent.name for f in dls.valid.items} == {'13'} and len(dls.valid.items) == 3
    assert '13' not in {Path(f).parent.name for f in dls.train.items} and len(dls.train.items) == 69
    xb,yb = dls.valid.one_batch()
    assert xb.shape == (3,3,48,64) and yb.shape == (3,1,2)
    # the labels are the centres, scaled to [-1, 1] by the 640x480 frame
    exp = torch.stack([get_ctr(f) for f in dls.valid.items])*2/torch.tensor([640.,480.]) - 1
    assert_close(yb[:,0].as_subclass(torch.Tensor), exp, atol=1e-5, rtol=0)
    adls = biwi_dls(biwi, size=(48,64), bs=8, target='angles', num_workers=0)
    _,ay = adls.valid.one_batch()
    assert ay.shape == (3,3)
    assert_close(ay[0].as_subclass(torch.Tensor)*ANGLE_SCALE, torch.tensor(pose_angles(adls.valid.items[0]), dtype=torch.float32), atol=1e-3, rtol=0)

@pytest.mark.parametrize('cache', [True, False])
@pytest.mark.parametrize('size', [(48,48), (36,64), (48,64)])
def test_biwi_dls_without_aug(biwi, size, cache):
    "aug=False: frames squished to `size` on loading (or cached at it), training and validation alike; the points still the head centres."
    dls = biwi_dls(biwi, size=size, bs=8, aug=False, num_workers=0, cache=cache)
    for dl in (dls.valid, dls.train.new(shuffle=False)):
        xb,yb = dl.one_batch()
        assert xb.shape[1:] == (3, *size)
        exp = torch.stack([get_ctr(f)*2/torch.tensor(Image.open(f).size, dtype=torch.float32) - 1 for f in dl.items[:len(xb)]])
        assert_close(yb[:,0].as_subclass(torch.Tensor), exp, atol=1e-5, rtol=0)

def test_pose_files_read_once(biwi, monkeypatch):
    import multilabel_regress.biwi_data as bd
    calls = []
    orig = bd.read_pose_file
    monkeypatch.setattr(bd, 'read_pose_file', lambda f: calls.append(f) or orig(f))
    dls = bd.biwi_dls(biwi, size=(24,32), bs=16, presize=(24,32), num_workers=0)
    for _ in range(2):
        for _ in dls.train: pass
    assert len(calls) == 72

def test_clamp_points():
    from fastai.vision.all import TensorPoint
    pts = TensorPoint(torch.tensor([[[0.5,-0.2]],[[1.4,0.3]],[[-2.,-1.5]]]))
    assert_close(ClampPoints()(pts, split_idx=0).as_subclass(torch.Tensor), torch.tensor([[[0.5,-0.2]],[[1.,0.3]],[[-1.,-1.]]]))
    assert_close(ClampPoints()(pts, split_idx=1).as_subclass(torch.Tensor), pts.as_subclass(torch.Tensor))

class ConstantModel(torch.nn.Module):
    "A model that answers `v` (in [-1, 1] units) for every image."
    def __init__(self, v): super().__init__(); self.v = torch.tensor(v); self.w = torch.nn.Parameter(torch.zeros(1))
    def forward(self, x): return self.v.expand(x.shape[0], -1) + 0*self.w

def test_predict_points_in_pixels(biwi):
    dls = biwi_dls(biwi, size=(48,64), bs=8, presize=(48,64), num_workers=0)
    learn = keypoint_learner(dls, arch='xresnet_small', pretrained=False)
    files = dls.valid.items[:3]
    pts = predict_points(learn, files)
    assert pts.shape == (3,2) and pts.dtype == torch.float32
    assert (pts[:,0] >= 0).all() and (pts[:,0] <= 640).all() and (pts[:,1] >= 0).all() and (pts[:,1] <= 480).all()
    # a model that always answers (0.5, -0.5) in [-1, 1] units points at (480, 120) on the 640x480 frame
    learn.model = ConstantModel((0.5,-0.5))
    assert_close(predict_points(learn, files), torch.tensor([[480.,120.]]*3))
    # and the pixel errors compare those with the true centres
    df = pixel_errors(learn)
    assert list(df.index) == ['13'] and df.loc['13','frames'] == 3
    d = (torch.tensor([480.,120.]) - torch.stack([get_ctr(f) for f in dls.valid.items])).norm(dim=1)
    assert abs(df.loc['13','rmse_px'] - d.pow(2).mean().sqrt().item()) < 0.006  # the table is rounded to 0.01 px

@pytest.fixture
def biwi_320(biwi, tmp_path):
    "A copy of the sample whose person 13 was filmed at 320x240: frames resized, the calibration scaled with them."
    d = tmp_path/'biwi'; shutil.copytree(biwi, d)
    for f in (d/'13').glob('*_rgb.jpg'): Image.open(f).resize((320,240)).save(f, quality=95)
    cal = (d/'13'/'rgb.cal').read_text()
    for a,b in [('517.679 0 320', '258.8395 0 160'), ('0 517.679 240.5', '0 258.8395 120.25'), ('640 480', '320 240')]:
        assert a in cal; cal = cal.replace(a, b)
    (d/'13'/'rgb.cal').write_text(cal)
    return d

@pytest.mark.parametrize('cache', [True, False])
@pytest.mark.parametrize('valid_person', ['13', ['13', '07']])
def test_pixel_rmse_in_each_frames_pixels(biwi_320, valid_person, cache):
    "PixelRMSE measures each frame in its own pixels: 320x240 frames alone, or mixed with 640x480 ones."
    dls = biwi_dls(biwi_320, size=(48,64), bs=4, aug=False, valid_person=valid_person, num_workers=0, cache=cache)
    learn = keypoint_learner(dls, arch='xresnet_small', pretrained=False)
    learn.model = ConstantModel((0.5,-0.5))
    files = dls.valid.items
    sizes = torch.tensor([Image.open(f).size for f in files], dtype=torch.float32)
    assert {tuple(s) for s in sizes.tolist()} == ({(320.,240.)} if valid_person == '13' else {(320.,240.), (640.,480.)})
    pred = torch.tensor([0.75, 0.25])*sizes                      # (0.5, -0.5) in [-1, 1] units, in each frame's pixels
    true = torch.stack([get_ctr(f) for f in files])              # from the pose file and the folder's calibration
    hand = (pred - true).pow(2).sum(1).mean().sqrt().item()
    _,rmse = learn.validate()
    assert abs(rmse - hand) < 1e-3
    df = pixel_errors(learn)                                     # the per-person table agrees (it is rounded to 0.01 px)
    assert abs(math.sqrt((df['rmse_px']**2*df['frames']).sum()/df['frames'].sum()) - hand) < 0.01
    learn.get_preds(dl=[dls.valid.one_batch()])  # a bare batch, as `show_results` passes: no items, no pixels, no error
    if valid_person != '13':  # several sizes: the items must come in order
        with pytest.raises(ValueError, match='in order'): learn.validate(dl=dls.valid.new(shuffle=True))

@pytest.mark.parametrize('aug', [True, False])
def test_cached_targets_are_the_uncached_ones(biwi_320, aug):
    "Frames of 320x240 and 640x480 cached at 48x64: every target is the head centre in [-1, 1] of its original frame, as `PointBlock` makes it without the cache, augmented the same way for the same seed."
    kw = dict(size=(48,64), presize=(48,64), bs=4, valid_person=['13','07'], num_workers=0, seed=0, aug=aug)
    c,u = biwi_dls(biwi_320, **kw),biwi_dls(biwi_320, cache=False, **kw)
    assert {Image.open(f).size for f in c.valid.items} == {(320,240), (640,480)}
    for a,b in [(c.valid, u.valid), (c.train, u.train)]:
        for (xa,ya),(xb,yb) in zip(a, b):
            assert xa.shape == xb.shape == (len(xa),3,48,64)
            assert_close(ya.as_subclass(torch.Tensor), yb.as_subclass(torch.Tensor), atol=1e-6, rtol=0)
    # a frame outside the cache and the poses read (a copy): its size from its header, its pose file read now
    f = c.valid.items[0]; g = biwi_320/'13'/('copy_' + Path(f).name); shutil.copy(f, g); shutil.copy(str(f)[:-7]+'pose.txt', str(g)[:-7]+'pose.txt')
    ty = c.test_dl([f, g], with_labels=True).one_batch()[1]
    assert torch.equal(ty[0], ty[1]) and torch.equal(ty[0], c.valid.one_batch()[1][0])
    assert torch.equal(c.test_dl([str(f), str(g)]).one_batch()[0], c.test_dl([f, g]).one_batch()[0])  # file names as strings too

def test_cached_loaders_open_no_file_per_epoch(biwi, monkeypatch):
    "Once the frames are cached (the training split's when the loaders are made, the validation split's on its first pass), a pass of `biwi_dls` or `pose_dls` opens no image file."
    b,p = biwi_dls(biwi, size=(24,32), bs=8, num_workers=0),pose_dls(biwi, size=24, bs=8, num_workers=0)
    for xb,yb in b.valid: pass
    for xb,yb in p.valid: pass
    monkeypatch.setattr(Image, 'open', lambda *a, **k: pytest.fail(f'opened {a[0]}'))
    for dl in (b.train, b.valid, p.train, p.valid):
        for xb,yb in dl: assert xb.dtype == torch.float32

def test_predict_angles_in_degrees(biwi):
    dls = biwi_dls(biwi, size=(48,64), bs=8, target='angles', num_workers=0)
    learn = keypoint_learner(dls, arch='xresnet_small', pretrained=False)
    files = dls.valid.items[:2]
    learn.model = ConstantModel((0.5,-0.25,0.))
    assert_close(predict_angles(learn, files), torch.tensor([[45.,-22.5,0.]]*2))

def test_softargmax_learner(biwi):
    dls = biwi_dls(biwi, size=(48,64), bs=8, presize=(48,64), num_workers=0)
    learn = keypoint_learner(dls, arch='xresnet_small', pretrained=False, head='softargmax')
    xb,_ = dls.valid.one_batch()
    with torch.no_grad(): out = learn.model.eval()(xb)
    assert out.shape == (3,2) and (out.abs() < 1).all()
    assert len(learn.opt_func(learn.splitter(learn.model), lr=1e-3).param_groups) == 2
    pts = predict_points(learn, dls.valid.items)
    assert pts.shape == (3,2) and (pts[:,0] > 0).all() and (pts[:,0] < 640).all()
    adls = biwi_dls(biwi, size=(48,64), bs=8, target='angles', num_workers=0)
    with pytest.raises(ValueError, match="head='pool'"): keypoint_learner(adls, arch='xresnet_small', pretrained=False, head='softargmax')
    with pytest.raises(ValueError, match='unknown architecture'): keypoint_learner(dls, arch='resnet9', pretrained=False)

def test_softargmax_learner_describes_its_model(biwi):
    "`keypoint_learner` records how it built its model (`learn.model_cfg`); `build_model` builds the same layers from it."
    from multilabel_regress.archs import build_model, SoftArgmax
    dls = biwi_dls(biwi, size=(48,64), bs=8, presize=(48,64), num_workers=0)
    learn = keypoint_learner(dls, arch='xresnet_small', pretrained=False, head='softargmax')
    rebuilt = build_model(learn.model_cfg)
    assert type(learn.model[1]) is SoftArgmax and learn.model_cfg['builder'] == 'softargmax'
    assert [type(m) for m in learn.model[0].children()] == [type(m) for m in rebuilt[0].children()]
    rebuilt.load_state_dict(learn.model.state_dict())  # the same layers: a saved learner's weights load into it
    pool = keypoint_learner(dls, arch='xresnet_small', pretrained=False)
    assert pool.model_cfg == dict(arch='xresnet_small', builder='vision', n_out=2, y_range=[-1, 1])

# --- head crops for the angles -------------------------------------------------------------------

def test_head_crop_geometry(biwi):
    from PIL import Image
    im = Image.new('RGB', (640,480)); im.putpixel((300,200), (255,0,0))
    c = head_crop(im, (300.5,200.5), px=8, size=8)  # 1:1: the centre pixel lands in the middle of the crop
    assert c.size == (8,8) and np.asarray(c)[4,4].tolist() == [255,0,0]
    half = head_crop(im.resize((320,240), Image.NEAREST), (300.5,200.5), px=8, size=8, k=0.5)  # a frame decoded at half scale
    assert half.size == (8,8)
    edge = head_crop(Image.new('RGB', (640,480), (200,200,200)), (0.,0.), px=100, size=10)  # outside the frame: black
    a = np.asarray(edge); assert a[0,0].tolist() == [0,0,0] and a[-1,-1].tolist() == [200,200,200]
    with pytest.raises(ValueError, match='head centre'): HeadCrop.create(next(biwi.glob('13/*_rgb.jpg')))

def test_pose_dls(biwi):
    dls = pose_dls(biwi, size=32, bs=8, num_workers=0, seed=0)
    xb,yb = dls.train.one_batch()
    assert xb.shape == (8,3,32,32) and yb.shape == (8,3)
    assert {Path(f).parent.name for f in dls.valid.items} == {'13'}
    assert dls.spec.targets['kind'] == 'angles' and dls.spec.params['crop_px'] == 160
    vx,vy = dls.valid.one_batch()
    assert_close(vy.as_subclass(torch.Tensor)*ANGLE_SCALE, torch.tensor([pose_angles(f) for f in dls.valid.items], dtype=torch.float32), atol=1e-3, rtol=0)
    # the validation crops do not change from one pass to the next; the training ones do
    assert torch.equal(vx, dls.valid.one_batch()[0])
    f = dls.train.items[0]; hc = HeadCrop.create(f, get_ctr(f))
    t = RandomHeadCrop(size=32)
    outs = {np.asarray(t(hc, split_idx=0)).tobytes() for _ in range(5)}
    assert len(outs) > 1
    assert pickle.loads(pickle.dumps(hc)).ctr == hc.ctr and pickle.loads(pickle.dumps(t)).px == 160
    xw,_ = pose_dls(biwi, size=32, bs=8, num_workers=2).train.one_batch()  # in worker processes too
    assert xw.shape == (8,3,32,32)

def test_flip_pose_negates_yaw_and_roll():
    from PIL import Image
    x = PILImage(Image.fromarray(np.arange(2*3*3, dtype=np.uint8).reshape(2,3,3)))
    fx,fy = FlipPose(p=1.)((x, torch.tensor([0.4,-0.2,0.1])), split_idx=0)
    assert_close(fy, torch.tensor([-0.4,-0.2,-0.1])); assert (np.asarray(fx) == np.asarray(x)[:,::-1]).all()
    gx,gy = FlipPose(p=1.)((x, torch.tensor([0.4,-0.2,0.1])), split_idx=1)  # not on the validation set
    assert_close(gy, torch.tensor([0.4,-0.2,0.1]))
    M = np.diag([-1.,1.,1.])  # a mirrored head's rotation is M R M: yaw and roll change sign
    for a in [(30,-20,10), (-60,35,-20)]:
        np.testing.assert_allclose(pose_angles(M@rotation_from_angles(*a)@M), (-a[0], a[1], -a[2]), atol=1e-9)

def test_head_crop_of_an_array_is_the_pil_crop(biwi):
    "`head_crop` of a uint8 array (a cached frame) gives the pixels of `head_crop` of the PIL image: inside, across the edge, outside, at any scale."
    im = Image.open(next(biwi.glob('13/*_rgb.jpg'))).convert('RGB')
    for ctr,px,k in [((300.5,200.5),160,1.), ((5.,5.),100,1.), ((630.,470.),120,0.5), ((-200.,-200.),50,1.), ((320.,240.),700,1.), ((320.,240.),160,(0.5,0.25))]:
        kx,ky = (k,k) if np.ndim(k) == 0 else k
        f = im.resize((round(640*kx), round(480*ky)))
        assert np.array_equal(np.asarray(head_crop(np.asarray(f), ctr, px, 16, k)), np.asarray(head_crop(f, ctr, px, 16, k))), (ctr,px,k)

def test_cached_head_crops_are_the_uncached_ones(biwi):
    "JPEG frames cached at the draft scale that the uncached crops decode at (a quarter, for 32 px crops of 160 px): the same batches for the same seed."
    kw = dict(size=32, bs=8, num_workers=0, seed=0)
    c,u = pose_dls(biwi, **kw),pose_dls(biwi, cache=False, **kw)
    for a,b in [(c.valid, u.valid), (c.train, u.train)]:
        for (xa,ya),(xb,yb) in zip(a, b): assert torch.equal(xa, xb) and torch.equal(ya, yb)

def test_head_crop_items_are_cut_from_the_cache(biwi, tmp_path):
    "`test_dl` of `HeadCrop`s (as `predict_angles` makes them) crops the cached frames, as validation does, even where decoding the file would differ (a PNG: no draft scale)."
    d = tmp_path/'biwi'; shutil.copytree(biwi, d)
    for f in (d/'13').glob('*_rgb.jpg'): Image.open(f).save(f, 'PNG')
    dls = pose_dls(d, size=32, bs=8, num_workers=0)
    files = dls.valid.items; ctrs = [get_ctr(f) for f in files]
    a = dls.test_dl(L(HeadCrop.create(f, c) for f,c in zip(files, ctrs))).one_batch()[0]
    assert torch.equal(a, dls.valid.one_batch()[0]) and torch.equal(a, dls.test_dl(files).one_batch()[0])

def test_pose_dls_shares_the_frame_cache(biwi):
    "At the defaults (64 px crops of 160 px squares, 240x320 batches), `pose_dls` crops from the frames `biwi_dls` cached."
    from multilabel_regress.fast_images import CachedImage
    def cache(d): return next(t for t in d.valid.dataset.tls[0].tfms.fs if isinstance(t, CachedImage)).cache
    b = cache(biwi_dls(biwi, bs=8, num_workers=0)); p = cache(pose_dls(biwi, bs=8, num_workers=0))
    assert b.presize == p.presize == (240,320) and b.path == p.path and p.built == 0
    assert cache(pose_dls(biwi, px=200, size=112, bs=8, num_workers=0)).presize == (300,400)  # 112/(200 e^-0.1) = 0.62 of the frame: 5/8

def test_predict_angles_from_crops(biwi):
    dls = pose_dls(biwi, size=32, bs=8, num_workers=0)
    learn = keypoint_learner(dls, arch='xresnet_small', pretrained=False, ps=0.1)
    files = dls.valid.items
    learn.model = ConstantModel((0.5,-0.25,0.))
    assert_close(predict_angles(learn, files[:2]), torch.tensor([[45.,-22.5,0.]]*2))
    with pytest.raises(ValueError, match='2 files but 1 centres'): predict_angles(learn, files[:2], ctrs=[(1.,2.)])
    assert predict_angles(learn, []).shape == (0,3)
    learn.model.eval()
    learn2 = keypoint_learner(dls, arch='xresnet_small', pretrained=False, ps=0.1)
    # moving the crop moves what the model sees: other centres, other inputs
    ctrs = torch.stack([get_ctr(f) for f in files])
    a = learn2.dls.test_dl(L(HeadCrop.create(f, c) for f,c in zip(files, ctrs))).one_batch()[0]
    b = learn2.dls.test_dl(L(HeadCrop.create(f, c+40) for f,c in zip(files, ctrs))).one_batch()[0]
    assert not torch.equal(a, b)
    assert torch.equal(a, dls.valid.one_batch()[0])  # the true centres give exactly the validation crops
    df = angle_errors(learn2)
    assert list(df.index) == ['13'] and df.loc['13','frames'] == 3
