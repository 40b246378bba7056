"Tests of the loaders' own seeds (`SeededDL`, `forked_rng`) in pascal_dls, biwi_dls and pose_dls."
import random, itertools
import numpy as np, pytest, torch
from fastai.vision.all import set_seed, first
from multilabel_regress.pascal_data import pascal_dls
from multilabel_regress.fast_images import SeededDL, forked_rng
from multilabel_regress.biwi_data import biwi_dls, pose_dls

# our code must not trigger deprecations (pandas 3 warns about positional arguments, for one)
pytestmark = [pytest.mark.filterwarnings('error::DeprecationWarning:multilabel_regress'),
              pytest.mark.filterwarnings('error::FutureWarning:multilabel_regress')]

def _global_state():
    "Everything global that seeding could change: Python's, numpy's and torch's generators, cuDNN's flags."
    return (random.getstate(), np.random.get_state()[1].tolist(), torch.get_rng_state().tolist(),
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)

@pytest.fixture(autouse=True)
def _image_cache(tmp_path_factory, monkeypatch):
    "The loaders' image caches (each image decoded once) go to this session's temporary folder, not the user's."
    monkeypatch.delenv('MULTILABEL_REGRESS_IMAGES', raising=False); monkeypatch.setenv('MULTILABEL_REGRESS_DATA', str(tmp_path_factory.getbasetemp()/'image_cache'))

@pytest.fixture(params=['pascal', 'biwi', 'pose'])
def make(request, pascal, biwi):
    "Builds one kind of small loaders: make(seed, **kwargs) -> DataLoaders."
    def _make(seed, num_workers=0, **kwargs):
        if request.param == 'pascal': return pascal_dls(pascal, size=32, bs=4, seed=seed, num_workers=num_workers, **kwargs)
        if request.param == 'biwi': return biwi_dls(biwi, size=(24,32), presize=(48,64), bs=4, seed=seed, num_workers=num_workers, **kwargs)
        return pose_dls(biwi, size=24, bs=4, seed=seed, num_workers=num_workers, **kwargs)
    return _make

def _first(make, seed, noise, **kwargs):
    "The first training batch of loaders built with `seed`, the global generators set from `noise` before building and again before iterating."
    set_seed(noise); dl = make(seed, **kwargs).train
    set_seed(noise+1)
    return first(dl)

def _equal(a, b): return len(a) == len(b) and all(torch.equal(x, y) for x,y in zip(a, b))

def test_same_seed_same_first_batch(make):
    a,b,c = _first(make, 0, 1), _first(make, 0, 2), _first(make, 1, 1)
    assert _equal(a, b)                                           # images and targets
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[1], c[1])

def test_global_state_untouched(make):
    set_seed(0); torch.backends.cudnn.deterministic,torch.backends.cudnn.benchmark = False,True
    try:
        s0 = _global_state()
        dls = make(0)
        for _ in range(2):
            for _ in itertools.islice(dls.train, 3): pass
        dls.valid.one_batch()
        assert _global_state() == s0
    finally: torch.backends.cudnn.benchmark = False

def test_passes_differ_and_repeat(make):
    d1,d2 = make(0).train, make(0).train
    p1 = [first(d1), first(d1)]
    p2 = [first(d2), first(d2)]
    assert _equal(p1[0], p2[0]) and _equal(p1[1], p2[1])          # the n-th pass is the same for the same seed
    assert not torch.equal(p1[0][0], p1[1][0])                    # and each pass is a new one

def test_workers_same_batches(make):
    "Worker processes make the same batches as the main process, and leave the global state alone too."
    a = _first(make, 0, 1)
    set_seed(5); s0 = _global_state()
    dl = make(0, num_workers=2).train
    w = [b for b in itertools.islice(dl, 2)]
    assert _global_state() == s0
    assert _equal(w[0], a)

def test_seed_none_follows_global_state(make):
    "Without a seed nothing changes: the global generators decide, as before."
    def run(s): set_seed(s); return first(make(None).train)
    a,b,c = run(3), run(3), run(4)
    assert _equal(a, b) and not torch.equal(a[0], c[0])

def test_seed_carried_to_new_loaders(pascal):
    dls = pascal_dls(pascal, size=32, bs=4, seed=7)
    assert isinstance(dls.train, SeededDL) and dls.train.seed == dls.valid.seed == 7
    assert dls.test_dl(dls.valid.items[:2]).seed == 7

def test_forked_rng():
    def draws(): return random.random(), float(np.random.rand()), float(torch.rand(1))
    set_seed(1); ref = draws()
    set_seed(1)
    with forked_rng(5): a = draws()
    assert draws() == ref                                         # outside: as if the block had not run
    with forked_rng(5): assert draws() == a                       # inside: the seed decides
    set_seed(1)
    with pytest.raises(KeyError):
        with forked_rng(5): draws(); raise KeyError('x')
    assert draws() == ref                                         # restored after an exception too
    set_seed(1)
    with forked_rng(): draws()
    assert draws() == ref

@pytest.mark.cuda
def test_seeded_batches_on_gpu(biwi):
    "Batch augmentations on the GPU draw from the CUDA generator: seeded, and the CUDA state left alone."
    def run(noise):
        set_seed(noise); dl = biwi_dls(biwi, size=(24,32), presize=(48,64), bs=4, seed=0, num_workers=0).to('cuda').train
        torch.cuda.manual_seed(noise+1)
        s = torch.cuda.get_rng_state()
        b = first(dl)
        assert torch.equal(torch.cuda.get_rng_state(), s)
        return b
    a,b = run(1), run(2)
    assert a[0].is_cuda and _equal(a, b)
