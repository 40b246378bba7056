import json
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from multilabel_regress.datasets import DatasetError, ModelFolderError, UserError, FolderExistsError
from multilabel_regress.models import *

META = dict(task='multilabel', arch='xresnet_small', n_out=20, size=[48,48], preprocess='squish_crop',
            mean=[0.485,0.456,0.406], std=[0.229,0.224,0.225], vocab=[f'c{i}' for i in range(20)], thresholds=[0.5]*20)

@pytest.fixture
def saved(tmp_path, pascal):
    torch.manual_seed(0)
    m = build_model(META).eval()
    files = sorted((pascal/'train').glob('*.jpg'))[:4]
    return m, save_model(m, tmp_path/'model', META), files

def test_round_trip_identical(saved):
    m, d, files = saved
    m2, meta = load_model(d)
    assert meta['vocab'] == META['vocab'] and meta['format'] == MODEL_FORMAT
    torch.testing.assert_close(model_outputs(m, META, files), model_outputs(m2, meta, files), rtol=0, atol=0)
    assert sorted(p.name for p in d.iterdir()) == ['model.json', 'model.safetensors']
    assert b'pickle' not in (d/'model.json').read_bytes()

def test_keypoint_meta_round_trip(tmp_path, biwi):
    meta = dict(META, task='keypoint', n_out=2, size=[48,64], preprocess='resize', y_range=[-1,1])
    meta.pop('vocab'); meta.pop('thresholds')
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
    meta = dict(META, task='keypoint', arch='xresnet_small', builder='softargmax', stride=8, n_out=2, size=[64,64], preprocess='resize')
    meta.pop('vocab'); meta.pop('thresholds')
    torch.manual_seed(0); m = build_model(meta).eval()
    assert isinstance(m[1], SoftArgmax)
    x = torch.randn(2,3,64,64)
    torch.testing.assert_close(load_model(save_model(m, tmp_path/'kp', meta))[0](x), m(x), rtol=0, atol=0)

def test_softargmax_matches_keypoint_models():
    # the key-point learner's model and `build_model`'s have the same parameters, so saved weights load back
    from fastai.vision.all import create_body, num_features_model, nn
    import multilabel_regress.keypoint as kp
    cut = kp.cut_at_stride
    body = cut(create_body(get_arch('xresnet_small')(), pretrained=False), 8)
    km = nn.Sequential(body, kp.SoftArgmax(num_features_model(body)))
    build_model(dict(arch='xresnet_small', builder='softargmax', stride=8, n_out=2)).load_state_dict(km.state_dict(), strict=True)

def test_old_folders_predict_as_the_cli_trained(tmp_path, biwi):
    "A folder saved without the new keys (`presize`, `resize_method`, `resample`, `draft`) preprocesses as `mlr train` trained it."
    from multilabel_regress.biwi_data import biwi_dls
    from multilabel_regress.pascal_data import pascal_dls
    from multilabel_regress.datasets import get_pascal
    files = sorted(biwi.glob('13/frame_*_rgb.jpg'))
    for size in [(48,64), (48,48)]:
        new = preprocess_meta(biwi_dls(biwi, size=size, presize=size, bs=2, num_workers=0, cache=False))  # what `train_keypoint` built then
        old = {k:v for k,v in new.items() if k in ('size','preprocess','mean','std')}
        for f in files: torch.testing.assert_close(preprocess(f, old), preprocess(f, new), rtol=0, atol=0)
    p = get_pascal(); new = preprocess_meta(pascal_dls(p, size=48, cache=False))
    assert new['draft'] and new['val_xtra'] == 0.14
    old = {k:v for k,v in new.items() if k in ('size','preprocess','mean','std','val_xtra')}
    f = sorted((p/'train').glob('*.jpg'))[0]
    torch.testing.assert_close(preprocess(f, old), preprocess(f, new), rtol=0, atol=0)

def test_preprocess_errors(tmp_path, biwi):
    f = sorted(biwi.glob('13/frame_*_rgb.jpg'))[0]
    with pytest.raises(ModelFolderError, match="unknown preprocess 'zoom'.*re-save"): preprocess(f, dict(META, preprocess='zoom'))
    with pytest.raises(UserError, match='centre'): preprocess(f, dict(META, preprocess='head_crop', crop_px=160.))
    with pytest.raises(DatasetError, match='nope.jpg is missing'): preprocess(tmp_path/'nope.jpg', META)
    (tmp_path/'bad.jpg').write_bytes(b'no'); 
    with pytest.raises(DatasetError, match='bad.jpg is not a readable image'): preprocess(tmp_path/'bad.jpg', META)
