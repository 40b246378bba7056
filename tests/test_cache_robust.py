"""The image cache (appendix F) under real conditions: a full file system (a real 2 MiB tmpfs), files swapped with their
mtimes kept, many splits of one dataset, a build killed by SIGTERM and by SIGKILL, a caller's PIL image, crops from the
public `pascal_block` and from the item-by-item path, loaders pickled after a pass and iterated by spawned workers, and
ranks launched by `torchrun` building one cold cache. Each runs the real thing: mounts, signals, processes."""
import json, os, pickle, shutil, signal, subprocess, sys, textwrap, time, warnings
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from PIL import Image
from multilabel_regress.datasets import DatasetError
from multilabel_regress import image_cache as IC, fast_images as FI
from multilabel_regress.image_cache import decode_at, ImageCache
from multilabel_regress.fast_images import RandomResizedCropBatch, CachedDL
from multilabel_regress.pascal_data import pascal_dls, pascal_block
from multilabel_regress.biwi_data import biwi_dls

HERE = Path(__file__).parent
ROW = 240*320*3  # bytes of one frame at BIWI's presize

@pytest.fixture(autouse=True)
def cache_root(tmp_path, monkeypatch):
    "Every cache of a test under its own tmp folder: `data_dir()/'images'`, with `data_dir()` here (subprocesses inherit it)."
    monkeypatch.delenv('MULTILABEL_REGRESS_IMAGES', raising=False); monkeypatch.setenv('MULTILABEL_REGRESS_DATA', str(tmp_path/'data'))
    return tmp_path/'data'/'images'

def _files(root): return sorted(str(p.relative_to(root)) for p in Path(root).rglob('*') if p.is_file())
def _pixel_bytes(root): return sum(p.stat().st_size for p in Path(root).rglob('*') if p.is_file() and p.name != 'index.json' and p.name != '.lock')

def _python(code, timeout=300, **env):
    "Run `code` in a fresh Python (this checkout first on the path); its completed process."
    e = dict(os.environ, PYTHONPATH=str(HERE.parent) + os.pathsep + os.environ.get('PYTHONPATH', ''), **env)
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], env=e, capture_output=True, text=True, timeout=timeout)

# ---- 1. a full disk
@pytest.fixture
def tiny_fs(tmp_path):
    "A real 2 MiB tmpfs, unmounted at the end."
    d = tmp_path/'tiny'; d.mkdir()
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', str(d)], capture_output=True, text=True)
    if r.returncode: pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'mount failed'}): needs root")
    try: yield d
    finally: subprocess.run(['umount', '-l', str(d)], check=False)

BUILD_ON = """
import sys, shutil, glob
from multilabel_regress import image_cache as IC, fast_images as FI
from multilabel_regress.datasets import DatasetError
root,pascal,nw,lie = sys.argv[1:5] if len(sys.argv) > 4 else (None,)*4
if lie == '1':  # the space check passes: the reservation itself must fail cleanly
    IC.shutil.disk_usage = lambda d: shutil._ntuple_diskusage(10**12, 0, 10**12)
try: IC.ImageCache(sorted(glob.glob(pascal + '/train/*.jpg')), (240, 320), root=root, n_workers=int(nw)); print('BUILT')
except DatasetError as e: print('ERROR', e)
"""

@pytest.mark.parametrize('n_workers', [1, 2])
@pytest.mark.parametrize('lie', [0, 1])
def test_full_disk_is_a_clear_error_and_leaves_nothing(tiny_fs, pascal, n_workers, lie):
    "60 images at 240x320 (13 MiB) on a 2 MiB tmpfs: one line naming the folder, the space and MULTILABEL_REGRESS_IMAGES; no SIGBUS; the disk as empty as before."
    r = subprocess.run([sys.executable, '-c', BUILD_ON, str(tiny_fs/'cache'), str(pascal), str(n_workers), str(lie)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=str(HERE.parent)))
    assert r.returncode == 0, f"exit {r.returncode} (-7: SIGBUS):\n{r.stderr[-2000:]}"
    out = r.stdout.strip().splitlines()[-1]
    assert out.startswith('ERROR ') and str(tiny_fs/'cache') in out and 'MiB' in out and 'MULTILABEL_REGRESS_IMAGES' in out, out
    assert _files(tiny_fs) == ['cache/.lock']           # no pixels, no temporary file, no store folder
    assert shutil.disk_usage(tiny_fs).used < 64*1024

# ---- 2. identity
def _equal_size_pair(pascal, d):
    "Two different JPEGs of the sample made the same size (the smaller padded after its end marker, which decoders ignore)."
    a,b = sorted((pascal/'train').glob('*.jpg'))[:2]
    ba,bb = a.read_bytes(),b.read_bytes(); n = max(len(ba), len(bb))
    fa,fb = d/'a.jpg',d/'b.jpg'; fa.write_bytes(ba + b'\0'*(n-len(ba))); fb.write_bytes(bb + b'\0'*(n-len(bb)))
    return fa,fb

def test_swapped_files_with_kept_mtimes_are_decoded_again(pascal, tmp_path):
    "Two equal-size images swapped by name, each name keeping its mtime (as `cp -p`, `rsync -a` or a tar can leave them): the cache serves each file's new pixels."
    d = tmp_path/'img'; d.mkdir(); fa,fb = _equal_size_pair(pascal, d)
    pa,pb = decode_at(fa, 40)[0],decode_at(fb, 40)[0]; assert not np.array_equal(pa, pb)
    c1 = ImageCache([fa, fb], 40, n_workers=1); assert c1.built == 2
    ta,tb = os.stat(fa).st_mtime_ns,os.stat(fb).st_mtime_ns
    os.rename(fa, d/'t.jpg'); os.rename(fb, fa); os.rename(d/'t.jpg', fb)
    os.utime(fa, ns=(ta, ta)); os.utime(fb, ns=(tb, tb))
    assert [os.stat(f).st_mtime_ns for f in (fa, fb)] == [ta, tb] and os.stat(fa).st_size == os.stat(fb).st_size
    c2 = ImageCache([fa, fb], 40, n_workers=1)
    assert c2.built == 2
    np.testing.assert_array_equal(c2.pixels[c2.row(fa)], pb); np.testing.assert_array_equal(c2.pixels[c2.row(fb)], pa)

def test_copied_over_with_kept_mtime_is_decoded_again(pascal, tmp_path):
    "Another image of the same size copied over a file in place (same inode), its mtime put back: decoded again."
    d = tmp_path/'img'; d.mkdir(); fa,fb = _equal_size_pair(pascal, d)
    c1 = ImageCache([fa], 40, n_workers=1); t = os.stat(fa).st_mtime_ns
    with open(fa, 'r+b') as f: f.write(fb.read_bytes())
    os.utime(fa, ns=(t, t))
    c2 = ImageCache([fa], 40, n_workers=1)
    assert c2.built == 1 and np.array_equal(c2.pixels[c2.row(fa)], decode_at(fb, 40)[0])

# ---- 3. one store per dataset
def test_splits_share_one_copy(biwi, cache_root):
    "biwi_dls with four held-out people: storage of one copy of the frames (72 at 240x320), not four; the second opening decodes nothing."
    built = []
    for p in ('13', '07', '01', '02'):
        dls = biwi_dls(biwi, valid_person=p, bs=8, num_workers=0)
        ci = next(t for t in dls.train_ds.tls[0].tfms.fs if isinstance(t, FI.CachedImage))
        dls.valid.one_batch(); built.append(sum(c.built for c in ci.caches))
    n = len(list(biwi.rglob('*_rgb.jpg'))); assert n == 72
    assert built == [n, 0, 0, 0]                        # the first split decodes all (training, then validation), the others none
    assert _pixel_bytes(cache_root) == n*ROW
    info = IC.cache_info(show=False)
    assert info['root'] == str(cache_root) and info['bytes'] >= n*ROW and len(info['stores']) == 1
    assert info['stores'][0]['images'] == n and info['stores'][0]['dataset'] == os.path.abspath(biwi)

def test_symlinked_folder_finds_the_same_store(biwi, tmp_path, cache_root):
    dls = biwi_dls(biwi, bs=8, num_workers=0); dls.valid.one_batch()
    link = tmp_path/'link'; link.symlink_to(biwi, target_is_directory=True)
    ci = next(t for t in biwi_dls(link, bs=8, num_workers=0).train_ds.tls[0].tfms.fs if isinstance(t, FI.CachedImage))
    assert ci.cache.built == 0 and _pixel_bytes(cache_root) == 72*ROW

def test_size_limit_evicts_the_least_recently_used(pascal, biwi, tmp_path, cache_root, monkeypatch):
    "Over `MULTILABEL_REGRESS_IMAGES_GB`, a build removes the stores used longest ago first, never the one it builds."
    a = ImageCache(sorted((pascal/'train').glob('*.jpg')), 64, n_workers=1)
    b = ImageCache(sorted((pascal/'test').glob('*.jpg')), 64, n_workers=1)
    time.sleep(0.05); ImageCache(a.files, 64, n_workers=1)  # `a` used again: `b` is now the least recently used
    frames = sorted(biwi.rglob('*_rgb.jpg'))[:10]
    limit = (len(a)+10)*64*64*3 + 60_000  # room for `a`, the new store and their indexes, not for `b` too (10 more images)
    monkeypatch.setenv('MULTILABEL_REGRESS_IMAGES_GB', str(limit/2**30))
    c = ImageCache(frames, 64, n_workers=1)
    assert not b.store.exists() and a.store.exists() and c.store.exists()
    assert IC.cache_info(show=False)['bytes'] <= limit

def test_cache_info_and_clear(pascal, cache_root, capsys):
    c = ImageCache(sorted((pascal/'train').glob('*.jpg')), 32, n_workers=1)
    info = IC.cache_info(); out = capsys.readouterr().out
    assert str(cache_root) in out and f"{len(c)} images at 32x32" in out and 'MULTILABEL_REGRESS_IMAGES_GB' in out
    assert info['bytes'] == len(c)*32*32*3 + (c.store/'index.json').stat().st_size
    assert IC.clear_cache() == info['bytes'] and _files(cache_root) == ['.lock'] and IC.cache_info(show=False)['stores'] == []
    assert ImageCache(c.files, 32, n_workers=1).built == len(c)   # rebuilt on the next use
    capsys.readouterr(); IC.cache_command(); assert f"{len(c)} images at 32x32" in capsys.readouterr().out   # `mlr cache`
    IC.cache_command(clear=True); assert 'freed' in capsys.readouterr().out and IC.cache_info(show=False)['stores'] == []  # `mlr cache --clear`

# ---- 4. interrupted builds
SLOW_BUILD = """
import sys, time, glob
from multilabel_regress import image_cache as IC, fast_images as FI
orig = IC.decode_at
def slow(f, presize): time.sleep(0.2); return orig(f, presize)
IC.decode_at = slow
IC.ImageCache(sorted(glob.glob(sys.argv[1] + '/train/*.jpg')), (240, 320), n_workers=1)
"""

def _killed_build(pascal, cache_root, sig):
    p = subprocess.Popen([sys.executable, '-c', SLOW_BUILD, str(pascal)], env=dict(os.environ, PYTHONPATH=str(HERE.parent)), stderr=subprocess.PIPE, text=True)
    t = time.time()
    while not [f for f in cache_root.rglob('*') if f.is_file() and f.name not in ('.lock',)] and time.time()-t < 120: time.sleep(0.05)
    time.sleep(1.0)                                      # a few images decoded, most not
    assert p.poll() is None, p.stderr.read()
    assert _pixel_bytes(cache_root) > 0                   # mid-build: pixels on disk
    p.send_signal(sig); p.wait(60)
    return p.returncode

def test_sigterm_leaves_nothing(pascal, cache_root):
    "A build killed by SIGTERM (`kill`, `timeout`, a scheduler) removes its pixels before it dies, and dies of the signal."
    assert _killed_build(pascal, cache_root, signal.SIGTERM) == -signal.SIGTERM
    assert _files(cache_root) == ['.lock']

def test_leftovers_of_a_killed_build_are_cleaned_at_the_next(pascal, cache_root):
    "SIGKILL cannot be caught: what the build left is removed by the next build, whatever it builds."
    assert _killed_build(pascal, cache_root, signal.SIGKILL) == -signal.SIGKILL
    assert _pixel_bytes(cache_root) > 0
    c = ImageCache(sorted((pascal/'test').glob('*.jpg')), 32, n_workers=1)
    assert _files(cache_root) == sorted(['.lock', str((c.store/'index.json').relative_to(cache_root)), str(c.path.relative_to(cache_root))])
    assert _pixel_bytes(cache_root) == len(c)*32*32*3

# ---- 5. decode_at
def test_decode_at_leaves_the_callers_image_alone(pascal):
    f = sorted((pascal/'train').glob('*.jpg'))[0]; size = Image.open(f).size
    im = Image.open(f); a,sz = decode_at(im, 40)
    assert im.size == size and sz == size and np.array_equal(a, decode_at(f, 40)[0])  # the file's pixels, as the cache has them
    assert np.asarray(im).shape == (size[1], size[0], 3)                               # still decodes at full size
    dls = pascal_dls(pascal, size=32, bs=4); im = Image.open(f)
    dls.test_dl([im]).one_batch()                                                      # what `learn.predict(Image.open(f))` does
    assert im.size == size

# ---- 6. crops in the originals' proportions
@pytest.fixture
def wide(pascal, tmp_path):
    "The sample's training images, all resized to 500x333 (width/height 1.5: far from square)."
    d = tmp_path/'wide'; (d/'train').mkdir(parents=True)
    for f in (pascal/'train').glob('*.jpg'): Image.open(f).convert('RGB').resize((500, 333)).save(d/'train'/f.name)
    shutil.copy(pascal/'train.csv', d/'train.csv')
    return d

def _ratios(dl, n=3):
    "Width/height of the training crops of `n` batches of `dl`, in pixels of the 500x333 originals."
    crop = next(t for t in dl.after_batch.fs if isinstance(t, RandomResizedCropBatch)); rec = []; orig = crop._theta
    crop._theta = lambda x: rec.append(orig(x)) or rec[-1]
    for i,_ in zip(range(n), dl): pass
    th = torch.cat(rec); return (th[:,0,0]*500)/(th[:,1,1]*333)

def test_public_pascal_block_crops_in_original_proportions(wide):
    dls = pascal_block(wide, size=32).dataloaders(pd.read_csv(wide/'train.csv'), bs=8)
    assert isinstance(dls.train, CachedDL)
    with warnings.catch_warnings(): warnings.simplefilter('error'); r = _ratios(dls.train)
    assert len(r) == 24 and r.min() >= 0.75-1e-4 and r.max() <= 4/3+1e-4

def test_item_path_crops_in_original_proportions(wide):
    "A `before_batch` transform sends `CachedDL` item by item: the batches still carry the originals' sizes."
    dls = pascal_block(wide, size=32).dataloaders(pd.read_csv(wide/'train.csv'), bs=8, before_batch=lambda b: b)
    assert dls.train._fast() is None
    with warnings.catch_warnings(): warnings.simplefilter('error'); r = _ratios(dls.train)
    assert len(r) == 24 and r.min() >= 0.75-1e-4 and r.max() <= 4/3+1e-4

def test_crop_without_sizes_warns_once():
    x = torch.rand(4, 3, 20, 30); from fastai.vision.all import TensorImage
    t = RandomResizedCropBatch(16)
    with pytest.warns(UserWarning, match='no original sizes.*30x20'): t(TensorImage(x), split_idx=0)
    with warnings.catch_warnings(): warnings.simplefilter('error'); t(TensorImage(x), split_idx=0)  # once

# ---- 7. pickling after a pass; spawned workers; no fork
def test_loaders_pickle_small_after_a_pass(pascal):
    dls = pascal_dls(pascal, size=64, bs=8, seed=0)
    before = len(pickle.dumps(dls))
    for _ in dls.train: pass
    for _ in dls.valid: pass
    c = dls.train._fast()[0]; after = pickle.dumps(dls)
    assert len(after) < before + 20_000 and len(after) < c.pixels.nbytes/10, (before, len(after), c.pixels.nbytes)
    dls2 = pickle.loads(after); c2 = dls2.train._fast()[0]
    assert isinstance(c2.pixels, np.memmap) and str(c2.pixels.filename) == str(c.path) and np.array_equal(c2.pixels, c.pixels)
    assert all(torch.equal(a, b) for a,b in zip(dls2.valid.one_batch(), dls.valid.one_batch()))

SPAWN = """
import json, os, sys, multiprocessing as mp
import numpy as np
from multilabel_regress.fast_images import CachedDL
from multilabel_regress.pascal_data import pascal_dls
out = sys.argv[2]
orig = CachedDL.create_batches
def create_batches(self, samps):  # in each worker (spawn imports this script there): how it holds the pixels
    c = self._fast()[0]
    with open(os.path.join(out, f'{os.getpid()}.json'), 'w') as f:
        json.dump(dict(memmap=isinstance(c.pixels, np.memmap), file=str(getattr(c.pixels, 'filename', None)), path=str(c.path)), f)
    yield from orig(self, samps)
CachedDL.create_batches = create_batches
if __name__ == '__main__':
    mp.set_start_method('spawn')
    import torch
    def epoch(nw): return [b for b in pascal_dls(sys.argv[1], size=32, bs=8, seed=3, num_workers=nw).train]
    a,b = epoch(0),epoch(2)
    same = len(a) == len(b) == 4 and all(torch.equal(x, y) for p,q in zip(a, b) for x,y in zip(p, q))
    print(json.dumps(dict(same=same, pid=os.getpid())))
"""

def test_spawned_workers_map_the_file(pascal, tmp_path):
    "Under 'spawn' (macOS and Windows) two loader workers give the batches of the main process, each mapping the pixel file (not a copy of it)."
    script = tmp_path/'spawn_run.py'; script.write_text(SPAWN); out = tmp_path/'out'; out.mkdir()
    r = subprocess.run([sys.executable, str(script), str(pascal), str(out)], env=dict(os.environ, PYTHONPATH=str(HERE.parent)), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout.strip().splitlines()[-1]); assert res['same']
    workers = [json.loads(p.read_text()) for p in out.glob('*.json') if p.stem != str(res['pid'])]
    assert len(workers) == 2 and all(w['memmap'] and w['file'] == w['path'] for w in workers), workers

def test_decoders_do_not_need_fork(pascal, tmp_path, monkeypatch):
    "Where there is no 'fork' (Windows) the decoding processes still start; none is forked from this (possibly multi-threaded) process."
    import multiprocessing as mp
    real = mp.get_context
    def no_fork(method=None):
        if method == 'fork' or (method is None and mp.get_start_method() == 'fork'): raise ValueError("cannot find context for 'fork'")
        return real(method)
    monkeypatch.setattr(mp, 'get_context', no_fork)
    fs = sorted((pascal/'train').glob('*.jpg')); c = ImageCache(fs, 24, n_workers=2)
    assert c.built == len(fs) and np.array_equal(c.pixels[c.row(fs[40])], decode_at(fs[40], 24)[0])

# ---- 8. distributed ranks
def test_torchrun_ranks_decode_once(pascal, tmp_path):
    "`torchrun --nproc_per_node 2` on a cold cache (CPU, gloo): the ranks decode each training image once in all and map the same pixels."
    out = tmp_path/'out'; out.mkdir()
    env = dict(os.environ, CUDA_VISIBLE_DEVICES='', OMP_NUM_THREADS='1', PYTHONPATH=str(HERE.parent), MULTILABEL_REGRESS_DATA=str(tmp_path/'data'))
    for k in ('RANK','WORLD_SIZE','LOCAL_RANK','MASTER_ADDR','MASTER_PORT','MULTILABEL_REGRESS_IMAGES'): env.pop(k, None)
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(HERE/'dist_cache.py'), str(pascal), str(out)]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-4000:]
    recs = [json.loads((out/f'rank{i}.json').read_text()) for i in (0, 1)]
    n = (~pd.read_csv(pascal/'train.csv').is_valid).sum()
    assert sorted(r['built'] for r in recs) == [0, n]     # one rank decoded, the other waited and mapped
    assert recs[0]['path'] == recs[1]['path'] and recs[0]['sha'] == recs[1]['sha']
