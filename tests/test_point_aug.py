"Tests of the one-pass key-point augmentation (`PointAffineBatch`): fastai's batch for the same parameters, points that move with their pixels, fastai's distributions, and the loaders that use it."
import math
import numpy as np, pytest, torch
from scipy.stats import ks_2samp
from fastai.vision.all import (TensorImage, TensorPoint, TensorMask, Flip, Warp, Rotate, Zoom, Brightness, Contrast, aug_transforms,
                               AffineCoordTfm, LightingTfm, Normalize)
from fastai.vision.augment import setup_aug_tfms
from multilabel_regress.biwi_data import PointAffineBatch, point_aug_transforms, biwi_dls, pose_dls

pytestmark = [pytest.mark.filterwarnings('error::DeprecationWarning:multilabel_regress'),
              pytest.mark.filterwarnings('error::FutureWarning:multilabel_regress')]

def _fastai_with(d, size, **kw):
    "fastai's own composed `aug_transforms` pipeline with each random value set to the parameters `d` (its `draw` arguments)."
    v = {k: d[k].tolist() for k in d}
    return setup_aug_tfms([Flip(p=1., draw=((1-d['flip'])/2).tolist(), size=size, **kw), Warp(p=1., draw_x=v['warp_x'], draw_y=v['warp_y'], size=size, **kw),
                           Rotate(p=1., draw=v['rotate'], size=size, **kw), Zoom(p=1., draw=v['zoom'], draw_x=v['col'], draw_y=v['row'], size=size, **kw),
                           Brightness(p=1., draw=v['brightness']), Contrast(p=1., draw=v['contrast'])])

@pytest.mark.parametrize('hw_in,size,kw', [((48,64), (48,64), {}), ((60,80), (24,32), {}), ((48,64), (40,40), dict(align_corners=False)), ((100,140), (24,32), {}),
                                           ((48,64), (48,64), dict(max_warp=0.4, max_rotate=30., max_zoom=2.)), ((48,64), (48,64), dict(max_warp=0.))])
def test_same_batch_as_fastai(hw_in, size, kw):
    "Given the same parameters, one pass gives fastai's images (lighting included) and points, also resizing, shrinking first (fastai's area step), without the warp."
    torch.manual_seed(3); h,w = hw_in
    x = TensorImage(torch.rand(8,3,h,w)); p = TensorPoint(torch.rand(8,4,2)*1.6-.8, img_size=(w,h))
    ac = kw.pop('align_corners', True)
    t = PointAffineBatch(size=size, align_corners=ac, **kw); ox,op = t((x,p), split_idx=0); d = t.params
    assert d['flip'].min() < 0 < d['flip'].max() and (d['rotate'] != 0).any() and (d['zoom'] != 1).any()
    fx,fp = x,p
    for f in _fastai_with(d, size, align_corners=ac): fx,fp = f((fx,fp), split_idx=0)
    assert ox.shape == fx.shape == (8,3,*size)
    torch.testing.assert_close(ox.as_subclass(torch.Tensor), fx.as_subclass(torch.Tensor), rtol=0, atol=1e-4)
    torch.testing.assert_close(op.as_subclass(torch.Tensor), fp.as_subclass(torch.Tensor), rtol=0, atol=1e-5)
    assert (ox - x[...,:size[0],:size[1]]).abs().max() > 0.1 if size == hw_in else True  # something did change
    assert type(ox) is TensorImage and type(op) is TensorPoint and op.img_size == (w,h)

def test_validation_unchanged_or_resized():
    "Validation: nothing random; at the output's size the batch passes untouched, at another size it is resized as fastai's validation step does."
    x = TensorImage(torch.rand(4,3,48,64)); p = TensorPoint(torch.rand(4,1,2)*2-1)
    vx,vp = PointAffineBatch(size=(48,64))((x,p), split_idx=1)
    assert vx is x and vp is p
    rx,rp = PointAffineBatch(size=(24,32))((x,p), split_idx=1)
    fx,fp = aug_transforms(size=(24,32))[0]((x,p), split_idx=1)
    torch.testing.assert_close(rx.as_subclass(torch.Tensor), fx.as_subclass(torch.Tensor), rtol=0, atol=1e-5)
    assert torch.equal(rp, p)

def _dots(pts, h, w, sigma=1.5):
    "Images with a bright Gaussian dot at each point [n, 1, 2] in [-1, 1] (align_corners=True: -1 and 1 are the outer pixels' centres)."
    xs,ys = torch.arange(w).float(),torch.arange(h).float()
    cx,cy = (pts[:,0,0]+1)/2*(w-1),(pts[:,0,1]+1)/2*(h-1)
    g = torch.exp(-((xs[None,None,:]-cx[:,None,None])**2 + (ys[None,:,None]-cy[:,None,None])**2)/(2*sigma**2))
    return TensorImage((g*.8+.1)[:,None].repeat(1,3,1,1))

def _peak(img):
    "Each image's brightest spot in pixels (x, y), by a parabola through the peak pixel and its neighbours in each direction."
    g = img.as_subclass(torch.Tensor)[:,0]; n,h,w = g.shape; res = []
    for k in range(n):
        i = int(g[k].argmax()); y,x = divmod(i, w); x,y = min(max(x,1),w-2),min(max(y,1),h-2)
        def off(a,b,c): return 0.5*(a-c)/(a-2*b+c)
        res.append((x + off(g[k,y,x-1], g[k,y,x], g[k,y,x+1]), y + off(g[k,y-1,x], g[k,y,x], g[k,y+1,x])))
    return torch.tensor(res)

@pytest.mark.parametrize('flip', [-1., 1.])
@pytest.mark.parametrize('kw', [{}, dict(max_rotate=30., max_zoom=1.5, max_warp=0.4, p_affine=1.)])
def test_point_moves_with_its_pixel(flip, kw):
    "A dot drawn at a known point, augmented: its peak is where the moved point says, within 1 px, flipped and not, at the chapter's settings and stronger."
    torch.manual_seed(5); h,w = 96,128
    pts = TensorPoint(torch.rand(24,1,2)*1.0-.5)
    t = PointAffineBatch(max_lighting=0., **kw)
    t.before_call((_dots(pts, h, w), pts), 0)
    t.params['flip'] = torch.full((24,), flip); t.mat = t.matrix(t.params, h, w)  # every image flipped, or none
    ox,op = t.encodes(_dots(pts, h, w)),t.encodes(pts)
    moved = (op.as_subclass(torch.Tensor)[:,0]+1)/2*torch.tensor([w-1., h-1.])
    inside = ((moved > 3) & (moved < torch.tensor([w-4., h-4.]))).all(1)  # a dot pushed off the image shows only its reflection
    assert inside.sum() >= 18
    err = (_peak(ox) - moved).norm(dim=1)[inside]
    assert err.max() < 1., err
    assert (moved - (pts[:,0]+1)/2*torch.tensor([w-1., h-1.])).norm(dim=1).max() > 5  # the points did move
    if flip < 0: assert ((moved[:,0] - (w-1)/2) * pts[:,0,0] < 0).float().mean() > .8  # mirrored: most points change side

def test_flip_idx_swaps_names():
    "With `flip_idx`, a flipped image's points swap names (the mirrored dot of point 0 is named 1); an image not flipped keeps them."
    torch.manual_seed(6)
    two = TensorPoint(torch.tensor([[[-.4,.1],[.5,-.2]]]).repeat(16,1,1))
    t = PointAffineBatch(max_lighting=0., flip_idx=[1,0]); t.before_call((TensorImage(torch.zeros(16,3,24,32)), two), 0)
    plain = PointAffineBatch(max_lighting=0.); plain.params,plain.mat = t.params,t.mat
    q,r = t.encodes(two),plain.encodes(two); fl = t.params['flip'] < 0
    assert fl.any() and (~fl).any()
    assert torch.equal(q[fl], r[fl][:,[1,0]]) and torch.equal(q[~fl], r[~fl])

def _decompose(A, h, w):
    "Flip, rotation, zoom and the zoom's centre (zoomed images only) of fastai-style matrices for h x w images."
    A = A[:,:2].clone(); A[:,0,1] *= w/h; A[:,1,0] *= h/w
    s = torch.hypot(A[:,1,0], A[:,1,1]); th = torch.atan2(-A[:,1,0], A[:,1,1]); f = torch.sign(A[:,0,0]*A[:,1,1])
    tx = th.cos()*f*A[:,0,2] - th.sin()*A[:,1,2]; ty = th.sin()*f*A[:,0,2] + th.cos()*A[:,1,2]; z = s < 1-1e-5
    return dict(flip=f, rotate=th*180/math.pi, zoom=torch.where(z, 1/s, 1.), col=((tx/(1-s)+1)/2)[z], row=((ty/(1-s)+1)/2)[z])

def _draws(ours, n=4000, h=24, w=32, **kw):
    "Drawn parameters and one moved point (0.3, -0.2) of `n` images, from fastai's `aug_transforms` or ours."
    x = TensorImage(torch.full((n,3,h,w), .5)); p = TensorPoint(torch.tensor([.3,-.2]).repeat(n,1,1), img_size=(w,h))
    if ours:
        t = point_aug_transforms(size=(h,w), **kw)[0]; _,q = t((x,p), split_idx=0); d = t.params; nw = torch.zeros(n)
        res = dict(_decompose(t.matrix(dict(d, warp_x=nw, warp_y=nw), h, w), h, w), **{k:d[k] for k in ('warp_x','warp_y','brightness','contrast')})
    else:
        aff,lig = aug_transforms(size=(h,w), **kw); _,q = aff((x,p), split_idx=0); lig(x.clone(), split_idx=0); tp = aff.coord_fs[0].targ_pts
        res = dict(_decompose(aff.mat, h, w), warp_x=-1-tp[:,0,1], warp_y=-1-tp[:,0,0], brightness=lig.fs[0].change, contrast=lig.fs[1].change)
    return dict(res, point_x=q[:,0,0], point_y=q[:,0,1])

def test_same_distributions_as_fastai():
    "4,000 draws each: every parameter and the moved point's x and y pass a two-sample KS test against fastai's (D < 0.05), and a wrong rotation range fails it."
    torch.manual_seed(0); fa = _draws(False)
    torch.manual_seed(1); ou = _draws(True)
    for k in fa:
        r = ks_2samp(np.asarray(fa[k]), np.asarray(ou[k]))
        assert r.statistic < 0.05, (k, r)
    for d in (fa, ou):  # the probabilities: a flip half the time, each of rotation, zoom and lighting three quarters
        assert abs(float((d['flip'] < 0).float().mean()) - .5) < .03 and abs(float((d['rotate'] == 0).float().mean()) - .25) < .03
        assert abs(float((d['zoom'] == 1).float().mean()) - .25) < .03 and abs(float((d['brightness'] == .5).float().mean()) - .25) < .03
        assert d['rotate'].abs().max() <= 10 and d['zoom'].max() <= 1.1 + 1e-5 and d['warp_x'].abs().max() <= .2 + 1e-6
    torch.manual_seed(1); wrong = _draws(True, max_rotate=13., max_zoom=1.3)
    assert ks_2samp(np.asarray(fa['rotate']), np.asarray(wrong['rotate'])).statistic > 0.05
    assert ks_2samp(np.asarray(fa['point_x']), np.asarray(wrong['point_x'])).statistic > 0.05

def test_unsupported_is_a_clear_error():
    with pytest.raises(ValueError, match="aug='fastai'"): point_aug_transforms(flip_vert=True)
    with pytest.raises(ValueError, match="aug='fastai'"): point_aug_transforms(min_scale=0.5)
    with pytest.raises(ValueError, match='min_zoom'): PointAffineBatch(min_zoom=1.2, max_zoom=1.1)
    with pytest.raises(NotImplementedError, match="aug='fastai'"): PointAffineBatch()(TensorMask(torch.zeros(2,8,8)), split_idx=0)
    assert len(point_aug_transforms(flip_vert=False, batch=False, min_scale=1.)) == 1  # aug_transforms' defaults are accepted

def test_loaders_use_it_by_default(biwi):
    "`biwi_dls` augments with `PointAffineBatch` by default, fastai's transforms with aug='fastai' (`pose_dls` the other way round); both give batches of the same kind."
    kw = dict(size=(24,32), bs=8, num_workers=0, seed=0)
    ours,book = biwi_dls(biwi, **kw),biwi_dls(biwi, aug='fastai', **kw)
    kinds = lambda dl: [type(t) for t in dl.after_batch.fs]
    assert PointAffineBatch in kinds(ours.train) and not any(issubclass(k, LightingTfm) for k in kinds(ours.train))
    assert any(issubclass(k, LightingTfm) for k in kinds(book.train)) and PointAffineBatch not in kinds(book.train)
    (ox,oy),(bx,by) = ours.train.one_batch(),book.train.one_batch()
    assert ox.shape == bx.shape == (8,3,24,32) and oy.shape == by.shape == (8,1,2)
    torch.testing.assert_close(ours.valid.one_batch()[1], book.valid.one_batch()[1])  # validation: the same labels
    torch.testing.assert_close(ours.valid.one_batch()[0], book.valid.one_batch()[0], rtol=0, atol=1e-4)  # and images (fastai resamples to the same grid)
    assert isinstance(ours.after_batch.fs[-1], Normalize)
    with pytest.raises(ValueError, match="aug='yes'"): biwi_dls(biwi, aug='yes', **kw)
    p,pf = pose_dls(biwi, size=24, bs=8, num_workers=0, seed=0, aug=True),pose_dls(biwi, size=24, bs=8, num_workers=0, seed=0)
    t = [f for f in p.train.after_batch.fs if isinstance(f, PointAffineBatch)]
    assert len(t) == 1 and not t[0].moves and t[0].max_lighting == 0.2  # lighting only
    assert sum(isinstance(f, LightingTfm) for f in pf.train.after_batch.fs) == 2
    torch.testing.assert_close(p.valid.one_batch()[0], pf.valid.one_batch()[0])  # no lighting on the validation set
    x,y = p.train.one_batch(); assert x.shape == (8,3,24,24) and y.shape == (8,3)
    for a in (True, 'fastai'): assert pose_dls(biwi, size=24, bs=8, num_workers=0, lighting=0., aug=a).train.after_batch.fs.filter(lambda f: isinstance(f, (PointAffineBatch, LightingTfm))) == []
