import pytest, torch
from pathlib import Path
from multilabel_regress.datasets import make_pascal_sample, make_biwi_sample

def pytest_collection_modifyitems(config, items):
    "Tests marked `cuda` skip where there is no GPU."
    if torch.cuda.is_available(): return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for it in items:
        if 'cuda' in it.keywords: it.add_marker(skip)

@pytest.fixture(scope='session')
def pascal(tmp_path_factory):
    "A small PASCAL sample, generated once per test session."
    return make_pascal_sample(tmp_path_factory.mktemp('data')/'pascal_2007', n_images=60, n_test=10)

@pytest.fixture(scope='session')
def biwi(tmp_path_factory):
    "A small BIWI sample (24 people, 3 frames each), generated once per test session."
    return make_biwi_sample(tmp_path_factory.mktemp('data')/'biwi_head_pose', n_frames=3)

@pytest.fixture(autouse=True, scope='session')
def _image_cache(tmp_path_factory):
    "Decoded pixels (`image_cache`) go to a folder of this session, never to the user's cache; subprocesses inherit it."
    import os
    old = os.environ.get('MULTILABEL_REGRESS_IMAGES')
    os.environ['MULTILABEL_REGRESS_IMAGES'] = str(tmp_path_factory.mktemp('image_cache'))
    yield
    if old is None: os.environ.pop('MULTILABEL_REGRESS_IMAGES', None)
    else: os.environ['MULTILABEL_REGRESS_IMAGES'] = old

@pytest.fixture
def tree_state():
    "A function of a folder: every file and folder in it (and itself) with its size and modification time. Equal before and after a run: the run wrote nothing there (a folder's time changes when a file is made or removed in it, even for a moment)."
    def state(d):
        return {str(f.relative_to(d)) + ('/' if f.is_dir() else ''): (f.stat().st_size if f.is_file() else None, f.stat().st_mtime_ns) for f in [Path(d), *sorted(Path(d).rglob('*'))]}
    return state
