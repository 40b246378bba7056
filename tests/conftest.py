import pytest, torch
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
