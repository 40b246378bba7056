import json
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from multilabel_regress.datasets import DatasetError, ModelFolderError, UserError, FolderExistsError
from multilabel_regress.models import *
from multilabel_regress.models import _meta_sha256
from multilabel_regress.archs import build_model, get_arch, SoftArgmax
from multilabel_regress.images import open_rgb
from multilabel_regress.preprocessing import DataSpec, preprocess

VOCAB = [f'c{i}' for i in range(20)]
SPEC = DataSpec('centre_crop', (48,48), (56,56), targets=dict(kind='labels', vocab=VOCAB))
META = dict(task='multilabel', arch='xresnet_small', n_out=20, data=SPEC.to_dict(), thresholds=[0.5]*20)

@pytest.fixture
def saved(tmp_path, pascal):
    torch.manual_seed(0)
    m = build_model(META).eval()
    files = sorted((pascal/'train').glob('*.jpg'))[:4]
    return m, save_model(m, tmp_path/'model', META), files

def test_round_trip_identical(saved):
    m, d, files = saved
    m2, meta = load_model(d)
    assert meta['data']['targets']['vocab'] == VOCAB and meta['format'] == MODEL_FORMAT
    torch.testing.assert_close(model_outputs(m, META, files), model_outputs(m2, meta, files), rtol=0, atol=0)
    assert sorted(p.name for p in d.iterdir()) == ['model.json', 'model.safetensors']
    assert b'pickle' not in (d/'model.json').read_bytes()

def test_keypoint_meta_round_trip(tmp_path, biwi):
    spec = DataSpec('frame', (48,64), (48,64), params=dict(resample=None), targets=dict(kind='point'))
    meta = dict(META, task='keypoint', n_out=2, data=spec.to_dict(), y_range=[-1,1])
    meta.pop('thresholds')
    m = build_model(meta).eval(); d = save_model(m, tmp_path/'kp', meta)
    files = sorted(biwi.glob('*/frame_*_rgb.jpg'))[:3]
    out = model_outputs(load_model(d)[0], meta, files)
    assert out.shape == (3,2) and out.abs().max() <= 1
    torch.testing.assert_close(out, model_outputs(m, meta, files), rtol=0, atol=0)

def test_no_overwrite_without_force(saved):
    m, d, _ = saved
    with pytest.raises(FileExistsError, match='force'): save_model(m, d, META)
    save_model(m, d, dict(META, thresholds=[0.3]*20), force=True)
    assert load_model(d)[1]['thresholds'] == [0.3]*20

def test_interrupted_save_keeps_previous(saved, monkeypatch):
    m, d, files = saved
    before = (d/'model.safetensors').read_bytes()
    import safetensors.torch
    def boom(*a, **k): raise KeyboardInterrupt
    monkeypatch.setattr(safetensors.torch, 'save_file', boom)
    with pytest.raises(KeyboardInterrupt): save_model(m, d, META, force=True)
    assert (d/'model.safetensors').read_bytes() == before
    assert sorted(p.name for p in d.parent.iterdir()) == ['model']

def test_tampered_weights(saved):
    _, d, _ = saved
    w = d/'model.safetensors'; b = bytearray(w.read_bytes()); b[len(b)//2] ^= 0xFF; w.write_bytes(bytes(b))
    with pytest.raises(ModelFolderError, match='checksum'): load_model(d)

@pytest.mark.parametrize('edit,msg', [
    (lambda j: dict(j, thresholds=[0.01]*20), 'changed after the model was saved'),
    (lambda j: '{"a": ', 'not valid JSON'),
    (lambda j: [1,2], 'JSON object'),
    (lambda j: {k:v for k,v in j.items() if k!='arch'}, '`arch` is missing'),
])
def test_tampered_json(saved, edit, msg):
    _, d, _ = saved
    j = json.loads((d/'model.json').read_text()); e = edit(j)
    (d/'model.json').write_text(e if isinstance(e, str) else json.dumps(e))
    with pytest.raises(ModelFolderError, match=msg): load_model(d)

def test_arch_and_builder_that_do_not_go_together(saved):
    "A model.json naming a ResNet with the bare-architecture builder is one line naming the file, not a traceback."
    _, d, _ = saved
    j = json.loads((d/'model.json').read_text())
    j = dict(j, arch='resnet18', builder='arch')
    (d/'model.json').write_text(json.dumps(dict(j, meta_sha256=_meta_sha256(j))))
    with pytest.raises(ModelFolderError, match='cannot be built'): load_model(d)

def test_missing_files(saved, tmp_path):
    _, d, _ = saved
    with pytest.raises(ModelFolderError, match='not a model folder'): load_model(tmp_path/'nothing')
    (d/'model.safetensors').unlink()
    with pytest.raises(ModelFolderError, match='model.safetensors is missing'): load_model(d)

def test_model_outputs_empty(saved):
    m, _, _ = saved
    with pytest.raises(ValueError, match='no image files'): model_outputs(m, META, [])

@pytest.mark.parametrize('mode', ['L', 'RGBA', 'CMYK', 'P', 'I;16', 'LA'])
def test_open_rgb_modes(tmp_path, mode):
    a = (np.random.default_rng(0).random((20,30,3))*255).astype(np.uint8)
    im = Image.fromarray(a)
    if mode == 'I;16': im = Image.fromarray((a[...,0].astype(np.uint16)*257))
    else: im = im.convert(mode)
    f = tmp_path/('x.jpg' if mode in ('L','CMYK') else 'x.png'); im.save(f)
    r = open_rgb(f)
    assert r.mode == 'RGB' and r.size == (30,20)
    from fastai.vision.all import PILImage
    assert np.array_equal(np.asarray(r), np.asarray(PILImage.create(f)))  # decoded as training decodes (fastai's rule)
    if mode == 'I;16': assert (np.asarray(r) == 255).mean() > 0.9   # 16 bits are clipped, not scaled

@pytest.mark.parametrize('data', [b'', b'\xff\xd8\xff\xe0garbage', b'not an image'])
def test_open_rgb_bad(tmp_path, data):
    f = tmp_path/'bad.jpg'; f.write_bytes(data)
    with pytest.raises(DatasetError, match='bad.jpg is not a readable image'): open_rgb(f)

def test_open_rgb_truncated(tmp_path, pascal):
    src = sorted((pascal/'train').glob('*.jpg'))[0].read_bytes()
    f = tmp_path/'cut.jpg'; f.write_bytes(src[:len(src)//3])
    with pytest.raises(DatasetError, match='cut.jpg'): open_rgb(f)

def test_unknown_arch():
    with pytest.raises(ValueError, match='use one of'): get_arch('vgg')

def test_open_rgb_bomb(pascal, monkeypatch):
    f = sorted((pascal/'train').glob('*.jpg'))[0]
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 1000)
    with pytest.raises(DatasetError, match=f'{f.name} is too large to decode safely'): open_rgb(f)

def test_model_folder_errors_are_user_errors(tmp_path):
    with pytest.raises(ModelFolderError) as e: load_model(tmp_path)
    assert isinstance(e.value, UserError) and not isinstance(e.value, DatasetError)
    with pytest.raises(UserError, match='use one of'): get_arch('vgg')

def test_softargmax_model_without_keypoint(monkeypatch, tmp_path):
    # models does not import keypoint (which imports models): a heat-map model builds, saves and loads without it
    import sys
    monkeypatch.setitem(sys.modules, 'multilabel_regress.keypoint', None)  # any import of it now fails
    spec = DataSpec('frame', (64,64), (64,64), targets=dict(kind='point'))
    meta = dict(META, task='keypoint', arch='xresnet_small', builder='softargmax', stride=8, n_out=2, data=spec.to_dict())
    meta.pop('thresholds')
    torch.manual_seed(0); m = build_model(meta).eval()
    assert isinstance(m[1], SoftArgmax)
    x = torch.randn(2,3,64,64)
    torch.testing.assert_close(load_model(save_model(m, tmp_path/'kp', meta))[0](x), m(x), rtol=0, atol=0)

def test_softargmax_matches_keypoint_models(biwi):
    # the key-point learner's model and `build_model`'s have the same parameters, so saved weights load back
    from multilabel_regress.biwi_data import biwi_dls
    from multilabel_regress.keypoint import keypoint_learner
    learn = keypoint_learner(biwi_dls(biwi, size=(48,64), bs=4, num_workers=0), 'xresnet_small', pretrained=False,
                             head='softargmax')
    assert learn.model_cfg == dict(arch='xresnet_small', builder='softargmax', n_out=2, stride=8)
    build_model(learn.model_cfg).load_state_dict(learn.model.state_dict(), strict=True)

def test_many_point_softargmax_saves_and_loads(tmp_path):
    "A soft-argmax model of several points is rebuilt with as many heat maps (one point only, before)."
    spec = DataSpec('box_crop', (64,64), targets=dict(kind='points', names=['a', 'b', 'c']))
    meta = dict(task='points', arch='xresnet_small', builder='softargmax', stride=8, n_out=6, data=spec.to_dict())
    torch.manual_seed(0); m = build_model(meta).eval()
    x = torch.randn(2,3,64,64)
    assert m(x).shape == (2,6)
    torch.testing.assert_close(load_model(save_model(m, tmp_path/'p', meta))[0](x), m(x), rtol=0, atol=0)

def _v1_folder(d, m, **meta):
    "A model folder as format 1 wrote it: its keys, its checksum (computed the same way), `m`'s weights."
    from safetensors.torch import save_file
    d.mkdir()
    save_file({k: v.contiguous() for k,v in m.state_dict().items()}, str(d/'model.safetensors'))
    from multilabel_regress.models import _sha256
    meta = dict(meta, format='multilabel_regress.model/1', weights_sha256=_sha256(d/'model.safetensors'))
    (d/'model.json').write_text(json.dumps(dict(meta, meta_sha256=_meta_sha256(meta))))
    return d

V1 = dict(task='multilabel', arch='xresnet_small', n_out=20, mean=[0.485,0.456,0.406], std=[0.229,0.224,0.225],
          vocab=VOCAB, thresholds=[0.5]*20)

@pytest.mark.parametrize('old,kind', [
    (dict(preprocess='cached_crop', size=[48,48], presize=[56,56], val_xtra=0.14, mode='bilinear', pad_mode='reflection'),
     'centre_crop'),
    (dict(preprocess='squish_crop', size=[48,48], val_xtra=0.14, draft=True), 'fastai'),
    (dict(preprocess='resize', size=[48,64], presize=[96,128], resize_method='crop', pad_mode='reflection',
          resample=dict(mode='bilinear', pad_mode='reflection', align_corners=True)), 'fastai'),
])
def test_format_1_folders_load(tmp_path, pascal, old, kind):
    "Folders of the first format load, read into a `DataSpec`; the cached kinds replay exactly the spec today's loaders write."
    torch.manual_seed(0); m = build_model(META).eval()
    d = _v1_folder(tmp_path/'v1', m, **V1, **old)
    m1,meta = load_model(d)
    assert meta['format'] == MODEL_FORMAT and meta['data']['kind'] == kind and meta['upgraded_from'].endswith('/1')
    assert meta['data']['targets'] == dict(kind='labels', vocab=VOCAB) and 'preprocess' not in meta
    files = sorted((pascal/'train').glob('*.jpg'))[:3]
    out = model_outputs(m1, meta, files)
    assert out.shape == (3,20)
    if kind == 'centre_crop': torch.testing.assert_close(out, model_outputs(m, META, files), rtol=0, atol=0)

def test_format_1_keypoint_targets(tmp_path, biwi):
    "A format-1 head-pose folder keeps its angles' scale and crop; a centre model its point."
    from multilabel_regress.biwi_data import get_ctr
    pose = dict(task='keypoint', target='angles', arch='xresnet_small', n_out=3, y_range=[-1,1], angle_scale=90.,
                preprocess='cached_head_crop', size=[32,32], presize=[120,160], crop_px=160., mean=V1['mean'], std=V1['std'])
    torch.manual_seed(0); m = build_model(pose).eval()
    m1,meta = load_model(_v1_folder(tmp_path/'pose', m, **pose))
    spec = model_spec(meta)
    assert spec.targets == dict(kind='angles', names=['yaw','pitch','roll'], scale=90., units='degrees')
    assert (spec.kind, spec.presize, spec.params) == ('head_crop', (120,160), dict(crop_px=160.))
    f = sorted(biwi.glob('13/frame_*_rgb.jpg'))[0]
    assert model_outputs(m1, meta, [f], ctrs=[get_ctr(f)]).shape == (1,3)

def test_preprocess_errors(tmp_path, biwi):
    f = sorted(biwi.glob('13/frame_*_rgb.jpg'))[0]
    with pytest.raises(ModelFolderError, match="unknown preprocessing 'zoom'.*re-save"):
        preprocess(f, DataSpec('zoom', (48,48)))
    with pytest.raises(UserError, match='centre'): preprocess(f, DataSpec('head_crop', (32,32), params=dict(crop_px=160.)))
    with pytest.raises(DatasetError, match='nope.jpg is missing'): preprocess(tmp_path/'nope.jpg', SPEC)
    (tmp_path/'bad.jpg').write_bytes(b'no')
    with pytest.raises(DatasetError, match='bad.jpg is not a readable image'): preprocess(tmp_path/'bad.jpg', SPEC)
