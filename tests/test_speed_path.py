"""Speed paths. The input pipeline: each image file read once, rows as named tuples, the same pixels as before.
The CUDA speed path (`cuda_speedups`): on a CPU it changes nothing; on a GPU (tests marked `cuda`) pinned batches,
non-blocking copies, channels_last, bf16."""
import pickle, random, shutil
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from fastai.vision.all import Learner, BCEWithLogitsLossFlat, PILImage, TensorImage, Transform, Tensor, set_seed, noop
from multilabel_regress.archs import xresnet_small
from multilabel_regress.cuda import cuda_speedups, ChannelsLastInput, ToDeviceAsync, pinned_async_copies
from multilabel_regress.pascal_data import pascal_dls
from multilabel_regress.fast_images import pascal_rows, LazyImage, DraftResizedCrop, BoolColSplitter

pytestmark = pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true but no accelerator")

# ---- the input pipeline
def _two_opens(f, need=None):
    "The earlier `LazyImage`: one open for the header, another to decode."
    with Image.open(f) as im: size = im.size
    with Image.open(f) as im:
        if need is not None: im.draft('RGB', need)
        return np.asarray(im.convert('RGB')), size

def test_lazy_image_reads_once_same_pixels(pascal, tmp_path):
    fns = sorted((pascal/'train').glob('*.jpg'))[:8]
    for f in fns:
        for need in (None, (60,60), (250,200)):
            li = LazyImage.create(f); a, size = _two_opens(f, need)
            assert li.size == size and np.array_equal(np.asarray(li.open(need)), a)
    f = tmp_path/'x.jpg'; shutil.copy(fns[0], f)
    li = LazyImage.create(f); f.unlink()            # read in `create`: decoding needs the file no more
    assert np.array_equal(np.asarray(li.open()), _two_opens(fns[0])[0])
    li = pickle.loads(pickle.dumps(LazyImage.create(fns[1])))  # pickles as its file name
    assert li._im is None and np.array_equal(np.asarray(li.open((60,60))), _two_opens(fns[1], (60,60))[0])
    mem = LazyImage.create(np.zeros((10,20,3), np.uint8)); assert mem.open().size == (20,10)

def test_draft_crops_identical_to_two_opens(pascal):
    class TwoOpens(LazyImage):
        @classmethod
        def create(cls, fn): return cls(fn, _two_opens(fn)[1])
        def open(self, need=None): return PILImage(Image.fromarray(_two_opens(self.src, need)[0]))
    for i,f in enumerate(sorted((pascal/'train').glob('*.jpg'))[:8]):
        for split_idx in (0, 1):
            random.seed(i); a = DraftResizedCrop(64, min_scale=0.35)(LazyImage.create(f), split_idx=split_idx)
            random.seed(i); b = DraftResizedCrop(64, min_scale=0.35)(TwoOpens.create(f), split_idx=split_idx)
            assert np.array_equal(np.asarray(a), np.asarray(b))

def test_rows_split_and_read_like_the_dataframe(pascal):
    df = pd.read_csv(pascal/'train.csv'); rows = pascal_rows(df)
    assert BoolColSplitter()(rows) == BoolColSplitter()(df)
    assert [r.fname for r in rows] == list(df.fname) and pickle.loads(pickle.dumps(rows)) == rows
    dls = pascal_dls(pascal, size=32, bs=8, seed=0)
    assert [r.fname for r in dls.valid.items] == list(df.fname[df.is_valid])

def test_workers_same_batches(pascal):
    "Files read and decoded in worker processes: the same validation batches as in the main process."
    b0 = list(pascal_dls(pascal, size=32, bs=8, num_workers=0).valid)
    b2 = list(pascal_dls(pascal, size=32, bs=8, num_workers=2).valid)
    assert len(b0) == len(b2) and all(torch.equal(x0, x2) and torch.equal(y0, y2) for (x0,y0),(x2,y2) in zip(b0, b2))

# ---- the CUDA speed path
def _learner(pascal, device='cpu'):
    set_seed(0, reproducible=True)
    dls = pascal_dls(pascal, size=32, bs=8, seed=0)
    dls.to(device)
    return Learner(dls, xresnet_small(n_out=len(dls.vocab)), loss_func=BCEWithLogitsLossFlat())

def _state(learn):
    "What `cuda_speedups` could change: callbacks, the model's memory format, the loaders' settings."
    return (list(learn.cbs), learn.dls.device,
            [(p.stride(), p.dtype, p.device) for p in learn.model.parameters()],
            [(dl.pin_memory, dl.fake_l.pin_memory, dl.device, dl.num_workers, list(dl.after_batch.fs)) for dl in learn.dls.loaders])

def _train(pascal, speed):
    learn = _learner(pascal)
    if speed: assert cuda_speedups(learn) is learn
    set_seed(1, reproducible=True)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    return [float(l) for l in learn.recorder.losses], {k: v.clone() for k,v in learn.model.state_dict().items()}

def test_cpu_changes_nothing(pascal):
    learn = _learner(pascal); before = _state(learn)
    assert cuda_speedups(learn) is learn
    assert _state(learn) == before
    assert not hasattr(learn, 'mixed_precision') and not any(isinstance(cb, ChannelsLastInput) for cb in learn.cbs)

def test_cpu_training_identical(pascal):
    "A short seeded training run gives bit-identical losses and weights with and without `cuda_speedups`."
    l0, w0 = _train(pascal, speed=False)
    l1, w1 = _train(pascal, speed=True)
    assert len(l0) > 1 and l0 == l1
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)

def test_async_copy_plumbing_on_cpu(pascal):
    "`pinned_async_copies` on a CPU loader: the copy is the first batch transform, the batches are unchanged."
    dls = pascal_dls(pascal, size=32, bs=8, seed=0).to('cpu')
    ref = list(dls.valid)
    dl = pinned_async_copies(dls.valid)
    assert dl is dls.valid and dl.device is None and dl.pin_memory and dl.fake_l.pin_memory
    assert isinstance(dl.after_batch.fs[0], ToDeviceAsync) and torch.device(dls.device) == torch.device('cpu')
    got = list(dl)
    assert len(got) == len(ref)
    for (x0,y0),(x1,y1) in zip(ref, got):
        assert type(x1) is TensorImage and torch.equal(x0, x1) and torch.equal(y0, y1)
    tdl = dls.test_dl(sorted((pascal/'train').glob('*.jpg'))[:3])
    assert isinstance(tdl.after_batch.fs[0], ToDeviceAsync) and tdl.one_batch()[0].shape == (3,3,32,32)

def test_channels_last_input_on_cpu(pascal):
    "`ChannelsLastInput` gives the model channels_last batches and the same predictions, to rounding."
    learn = _learner(pascal); dl = learn.dls.valid
    with learn.no_bar(): ref = learn.get_preds(dl=dl, act=noop)[0]
    seen = []
    h = learn.model.register_forward_hook(lambda m,i,o: seen.append(i[0].is_contiguous(memory_format=torch.channels_last)))
    learn.add_cb(ChannelsLastInput())
    with learn.no_bar(): got = learn.get_preds(dl=dl, act=noop)[0]
    h.remove()
    assert seen and all(seen)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)

class _SeePinned(Transform):
    "Records, before `ToDeviceAsync` copies it, whether each batch tensor is in pinned memory."
    order = ToDeviceAsync.order - 1
    def __init__(self): self.pinned = []
    def encodes(self, x:Tensor): self.pinned.append(x.is_pinned()); return x

@pytest.mark.cuda
def test_speed_path_on_gpu(pascal):
    fp32 = _learner(pascal, device='cuda')
    learn = _learner(pascal, device='cuda'); learn.model.load_state_dict(fp32.model.state_dict())
    assert cuda_speedups(learn) is learn and cuda_speedups(learn) is learn  # twice: no change the second time
    # pinned memory, non-blocking copies
    for dl in learn.dls.loaders:
        assert dl.pin_memory and dl.fake_l.pin_memory and dl.device is None
        assert sum(isinstance(t, ToDeviceAsync) for t in dl.after_batch.fs) == 1
    assert learn.dls.device.type == 'cuda'
    spy = _SeePinned(); learn.dls.valid.after_batch.add(spy)
    # channels_last input, bf16 autocast in the forward pass
    seen = []
    def hook(m, i, o):
        seen.append(dict(cl=i[0].is_contiguous(memory_format=torch.channels_last), cuda=i[0].is_cuda,
                         autocast=torch.is_autocast_enabled('cuda'), dtype=torch.get_autocast_dtype('cuda'), out=o.dtype))
    h = learn.model.register_forward_hook(hook)
    with learn.no_bar(): got = learn.get_preds(dl=learn.dls.valid, act=noop)[0]
    h.remove(); learn.dls.valid.after_batch.fs = learn.dls.valid.after_batch.fs.filter(lambda t: t is not spy)
    assert spy.pinned and all(spy.pinned)
    bf16 = torch.cuda.get_device_capability() >= (8,0)  # native bf16 (Ampere and later): otherwise `cuda_speedups` leaves fp32
    assert seen
    for s in seen:
        assert s['cl'] and s['cuda'] and s['autocast'] == bf16 and s['out'] == (torch.bfloat16 if bf16 else torch.float32)
        if bf16: assert s['dtype'] == torch.bfloat16
    assert hasattr(learn, 'mixed_precision') == bf16
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in learn.model.parameters() if p.ndim == 4)
    # predictions: as fp32, within bf16's precision (8 bits of mantissa)
    old = torch.backends.cudnn.allow_tf32; torch.backends.cudnn.allow_tf32 = False
    try:
        with fp32.no_bar(): ref = fp32.get_preds(dl=fp32.dls.valid, act=noop)[0]
    finally: torch.backends.cudnn.allow_tf32 = old
    assert got.shape == ref.shape and got.dtype == torch.float32
    assert (got - ref).abs().max() < 0.05 * ref.abs().max() + 1e-2
    # and it trains
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert np.isfinite([float(l) for l in learn.recorder.losses]).all()
