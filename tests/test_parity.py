"A saved model folder predicts what its learner predicted: `model_outputs` on the validation files equals `learn.get_preds`."
import shutil
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from fastai.vision.all import set_seed, noop
from multilabel_regress.pascal_data import pascal_dls
from multilabel_regress.biwi_data import biwi_dls, pose_dls
from multilabel_regress.multilabel import multilabel_learner
from multilabel_regress.keypoint import keypoint_learner
from multilabel_regress.models import save_model, load_model, model_outputs, learner_meta
from multilabel_regress.biwi_data import get_ctr

ATOL = 1e-4  # logits, points in [-1, 1] and scaled angles: the same pixels through the same weights, batched differently

def _odd_modes(files):
    "Re-encode the first files in odd modes (the names stay: PIL reads a file by its content)."
    for f,mode in zip(files, ['I;16', 'RGBA', 'P', 'L', 'CMYK', 'I', 'LA']):
        a = np.asarray(Image.open(f).convert('RGB'))
        if mode == 'I;16': im,fmt = Image.fromarray(a[...,0].astype(np.uint16)*2), 'PNG'  # 0..510: clipped at 255
        elif mode == 'I': im,fmt = Image.fromarray(a[...,1].astype(np.int32)+100), 'TIFF'
        elif mode == 'RGBA':
            b = np.dstack([a, (np.arange(a.shape[1])[None].repeat(a.shape[0], 0) % 256).astype(np.uint8)])
            im,fmt = Image.fromarray(b, 'RGBA'), 'PNG'
        else: im,fmt = Image.fromarray(a).convert(mode), ('JPEG' if mode == 'CMYK' else 'PNG')
        im.save(f, fmt)
        assert Image.open(f).mode == mode

def _save_load(learn, tmp_path, task, **meta):
    "Save `learn`'s model with what its loaders declare (`learner_meta`), and load it back."
    d = save_model(learn.model, tmp_path/'model', learner_meta(learn, task, **meta))
    return load_model(d)

def _check(learn, model, meta, files, ctrs=None):
    with learn.no_bar(): preds,_ = learn.get_preds(dl=learn.dls.valid, act=noop)  # raw outputs, as `model_outputs` gives
    out = model_outputs(model, meta, files, bs=5, ctrs=ctrs)
    torch.testing.assert_close(out, preds.float(), rtol=0, atol=ATOL)

@pytest.mark.parametrize('cache', [True, False])
def test_multilabel_parity(pascal, tmp_path, cache, monkeypatch):
    monkeypatch.setenv('MULTILABEL_REGRESS_DATA', str(tmp_path/'cache'))  # the image cache of this copy, built here
    path = tmp_path/'pascal'; shutil.copytree(pascal, path)
    df = pd.read_csv(path/'train.csv'); _odd_modes([path/'train'/f for f in df.fname[df.is_valid]])
    set_seed(0); dls = pascal_dls(path, size=40, bs=8, seed=0, cache=cache)
    learn = multilabel_learner(dls, 'xresnet_small'); learn.model.eval()
    model,meta = _save_load(learn, tmp_path, 'multilabel', thresholds=[0.5]*len(dls.vocab))
    d = meta['data']
    assert (d['kind'], d['presize'], d['size'], meta['builder']) == ('centre_crop', [56,56], [40,40], 'arch')
    _check(learn, model, meta, [path/'train'/r.fname for r in dls.valid.items])

@pytest.mark.parametrize('cache', [True, False])
@pytest.mark.parametrize('size,presize', [((96,128),(96,128)), ((96,96),(96,96)), ((64,128),(64,128)), ((64,128),None)])
def test_centre_parity(biwi, tmp_path, size, presize, cache, monkeypatch):
    monkeypatch.setenv('MULTILABEL_REGRESS_DATA', str(tmp_path/'cache'))  # the image cache of this copy, built here
    path = tmp_path/'biwi'; shutil.copytree(biwi, path)
    _odd_modes(sorted((path/'13').glob('frame_*_rgb.jpg')))
    set_seed(0); dls = biwi_dls(path, size=size, presize=presize, bs=4, seed=0, num_workers=0, cache=cache)
    learn = keypoint_learner(dls, 'xresnet_small', pretrained=False, head='softargmax'); learn.model.eval()
    model,meta = _save_load(learn, tmp_path, 'keypoint')
    assert meta['data']['size'] == list(size) and meta['data']['kind'] == 'frame' and meta['builder'] == 'softargmax'
    assert meta['data']['presize'] == list(presize or size)  # decoded at `size` unless told otherwise
    _check(learn, model, meta, list(dls.valid.items))

@pytest.mark.parametrize('cache', [True, False])
def test_head_pose_parity(biwi, tmp_path, cache, monkeypatch):
    monkeypatch.setenv('MULTILABEL_REGRESS_DATA', str(tmp_path/'cache'))
    path = tmp_path/'biwi'; shutil.copytree(biwi, path)
    _odd_modes(sorted((path/'13').glob('frame_*_rgb.jpg')))
    set_seed(0); dls = pose_dls(path, size=32, bs=4, seed=0, num_workers=0, cache=cache)
    learn = keypoint_learner(dls, 'xresnet_small', pretrained=False, ps=0.1); learn.model.eval()
    model,meta = _save_load(learn, tmp_path, 'keypoint')
    assert meta['data']['kind'] == 'head_crop' and meta['data']['params']['crop_px'] == 160
    assert meta['data']['presize'] == [120,160]  # 32 px from 160*exp(-0.1): a quarter of the 480x640 frame holds the detail
    files = list(dls.valid.items); ctrs = [get_ctr(f) for f in files]
    _check(learn, model, meta, files, ctrs)
