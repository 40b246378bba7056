"Nothing lost, nothing half-done: atomic writes, `--force` that replaces only what the package made, concurrent generation."
import hashlib, json, multiprocessing as mp, os, shutil, stat
from pathlib import Path
import pytest, torch
from multilabel_regress.datasets import *
from multilabel_regress.models import save_model, load_model, check_model_dest, is_model_folder
from multilabel_regress.archs import build_model
from multilabel_regress.preprocessing import DataSpec

SPEC = DataSpec('centre_crop', (48,48), targets=dict(kind='labels', vocab=[f'c{i}' for i in range(20)]))
META = dict(task='multilabel', arch='xresnet_small', n_out=20, data=SPEC.to_dict(), thresholds=[0.5]*20)

def _umask(): um = os.umask(0); os.umask(um); return um

def _mode(f): return stat.S_IMODE(os.stat(f).st_mode)

def _user_folder(d):
    "A folder of the user's: what `--force` must never delete."
    d.mkdir(); (d/'thesis.txt').write_text('four years of work'); (d/'data').mkdir(); (d/'data'/'a.csv').write_text('x')
    return d

def _untouched(d):
    return sorted(p.name for p in d.iterdir()) == ['data', 'thesis.txt'] and (d/'thesis.txt').read_text() == 'four years of work'

@pytest.fixture
def model():
    torch.manual_seed(0); return build_model(META).eval()

# --- atomic files and folders --------------------------------------------------------------

@pytest.mark.parametrize('um', [0o022, 0o077, 0o002])
def test_model_files_have_umask_permissions(tmp_path, model, um):
    old = os.umask(um)
    try: d = save_model(model, tmp_path/'m', META)
    finally: os.umask(old)
    assert _mode(d/'model.safetensors') == _mode(d/'model.json') == 0o666 & ~um
    assert _mode(d) == 0o777 & ~um

def test_write_atomic_failure_keeps_old(tmp_path):
    f = write_atomic(tmp_path/'r.json', '{"a": 1}')
    assert _mode(f) == 0o666 & ~_umask()
    with pytest.raises(KeyboardInterrupt):
        with atomic_file(f) as tmp: tmp.write_text('{"a": '); raise KeyboardInterrupt
    assert f.read_text() == '{"a": 1}' and [p.name for p in tmp_path.iterdir()] == ['r.json']
    write_atomic(f, b'\x00\x01'); assert f.read_bytes() == b'\x00\x01'

def test_atomic_temp_names_are_unique(tmp_path):
    names = []
    def make(t): names.append(t.name); (t/'x').write_text('')
    for i in range(3): atomic_dir(tmp_path/f'd{i}', make)
    with atomic_file(tmp_path/'f') as a, atomic_file(tmp_path/'f') as b: assert a != b
    assert len(set(names)) == 3

def _failing_swap(monkeypatch, dest):
    "Make the rename of the new folder (a sibling of `dest`) into place fail, as a full disk or a permission change would."
    real_replace = os.replace
    def fail(src, dst, *a, **k):
        if Path(dst) == dest and Path(src).parent == dest.parent: raise OSError(28, 'No space left on device')
        return real_replace(src, dst)
    monkeypatch.setattr(os, 'replace', fail); monkeypatch.setattr(os, 'rename', fail)

def test_failed_swap_restores_old_model(tmp_path, model, monkeypatch):
    d = save_model(model, tmp_path/'model', META)
    before = (d/'model.safetensors').read_bytes()
    _failing_swap(monkeypatch, d)
    with pytest.raises(OSError, match='No space'): save_model(model, d, dict(META, thresholds=[0.3]*20), force=True)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ['model']  # no old model left hidden in `.model.old.*`
    assert (d/'model.safetensors').read_bytes() == before and load_model(d)[1]['thresholds'] == [0.5]*20

def test_failed_swap_restores_old_sample(tmp_path, monkeypatch):
    d = make_pascal_sample(tmp_path/'p', n_images=6, n_test=1)
    _failing_swap(monkeypatch, d)
    with pytest.raises(OSError, match='No space'): make_pascal_sample(d, n_images=6, n_test=1, seed=3, overwrite=True)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ['.p'+SAMPLE_MARKER, 'p'] and json.loads(sample_marker(d).read_text())['seed'] == 0
    assert is_sample(d) and len(list(d.iterdir())) == 8

# --- `force` replaces only what the package made -------------------------------------------

def test_sample_force_refuses_user_folder(tmp_path):
    d = _user_folder(tmp_path/'work')
    with pytest.raises(FolderExistsError) as e: make_pascal_sample(d, n_images=6, n_test=1, overwrite=True)
    assert str(e.value) == f"{d} holds data and 1 more file, which multilabel_regress did not make: choose another folder or delete it yourself"
    assert isinstance(e.value, UserError) and _untouched(d)
    one = tmp_path/'one'; one.mkdir(); (one/'thesis.txt').write_text('mine')
    with pytest.raises(FolderExistsError, match='one holds thesis.txt, which multilabel_regress did not make'):
        make_biwi_sample(one, n_frames=1, overwrite=True)
    with pytest.raises(FolderExistsError, match='is a file, not a folder'): make_pascal_sample(one/'thesis.txt', overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['one', 'work']  # no temporary folder left

def test_sample_force_replaces_a_sample(tmp_path):
    d = make_biwi_sample(tmp_path/'b', n_frames=1)
    m = json.loads(sample_marker(d).read_text())
    assert m['what'] == 'biwi_head_pose' and m['seed'] == 0 and m['n_frames'] == 1 and 'version' in m
    assert m['stamp']['inode'] == d.stat().st_ino and not (d/SAMPLE_MARKER).exists()
    with pytest.raises(FolderExistsError, match=r'already exists: pass overwrite=True \(--force\)'): make_biwi_sample(d, n_frames=2)
    make_biwi_sample(d, n_frames=2, overwrite=True)
    assert len(list(d.glob('01/*_rgb.jpg'))) == 2 and sorted(p.name for p in tmp_path.iterdir()) == ['.b'+SAMPLE_MARKER, 'b']
    m = json.loads(sample_marker(d).read_text())
    assert m['n_frames'] == 2 and m['stamp']['mtime_ns'] == d.stat().st_mtime_ns and is_sample(d)

def test_sample_folder_holds_only_the_archive_layout(tmp_path):
    "A fresh sample lists the real archive's entries (FORMATS.md: pascal_2007 shows 8), its marker beside it."
    d = make_pascal_sample(tmp_path/'pascal_2007', n_images=6, n_test=1)
    assert sorted(p.name for p in d.iterdir()) == ['segmentation','test','test.csv','test.json','train','train.csv','train.json','valid.json']
    assert sample_marker(d) == tmp_path/'.pascal_2007.multilabel_regress_sample.json' and is_sample(d)

def test_stale_marker_does_not_make_a_user_folder_a_sample(tmp_path):
    "The user deletes a sample and puts their own folder at its name: the marker left beside it must not let --force delete it."
    d = make_pascal_sample(tmp_path/'p', n_images=6, n_test=1)
    shutil.rmtree(d); _user_folder(d)
    assert sample_marker(d).is_file() and not is_sample(d)
    with pytest.raises(FolderExistsError, match='which multilabel_regress did not make'): make_pascal_sample(d, n_images=6, n_test=1, overwrite=True)
    assert _untouched(d)

def test_sample_marker_inside_from_older_versions(tmp_path, monkeypatch):
    "A sample with its marker inside (older versions) still counts, and the cache moves the marker beside it."
    d = make_pascal_sample(tmp_path/'p', n_images=6, n_test=1)
    sample_marker(d).rename(d/SAMPLE_MARKER)
    assert is_sample(d)
    make_pascal_sample(d, n_images=6, n_test=1, seed=2, overwrite=True)
    assert json.loads(sample_marker(d).read_text())['seed'] == 2 and not (d/SAMPLE_MARKER).exists()
    monkeypatch.setenv('MULTILABEL_REGRESS_DATA', str(tmp_path/'cache'))
    p = get_pascal(n_images=6, n_test=1); sample_marker(p).rename(p/SAMPLE_MARKER)
    assert len(list(p.iterdir())) == 9
    assert get_pascal(n_images=6, n_test=1) == p and len(list(p.iterdir())) == 8
    assert json.loads(sample_marker(p).read_text())['stamp']['inode'] == p.stat().st_ino and is_sample(p)

def test_sample_into_empty_folder(tmp_path):
    (tmp_path/'e').mkdir()
    assert (make_pascal_sample(tmp_path/'e', n_images=6, n_test=1)/'train.csv').exists()

def test_model_force_refuses_user_folder(tmp_path, model):
    d = _user_folder(tmp_path/'home')
    for f in (lambda: check_model_dest(d, force=True), lambda: save_model(model, d, META, force=True)):
        with pytest.raises(FolderExistsError, match='holds data and 1 more file, which multilabel_regress did not make'): f()
    assert _untouched(d) and [p.name for p in tmp_path.iterdir()] == ['home']

def test_model_force_replaces_a_model(tmp_path, model):
    d = save_model(model, tmp_path/'m', META)
    assert is_model_folder(d) and check_model_dest(d, force=True) == 'replace' and check_model_dest(tmp_path/'new') == 'new'
    with pytest.raises(FolderExistsError, match=r'pass force=True \(--force\)'): check_model_dest(d)
    save_model(model, d, dict(META, thresholds=[0.2]*20), force=True)
    assert load_model(d)[1]['thresholds'] == [0.2]*20

def test_old_cached_sample_without_marker(tmp_path, monkeypatch):
    "Samples cached by versions before the marker keep working, and count as the package's."
    monkeypatch.setenv('MULTILABEL_REGRESS_DATA', str(tmp_path))
    p = get_pascal(n_images=6, n_test=1); sample_marker(p).unlink()
    m = (p/'train.csv').stat().st_mtime_ns
    assert get_pascal(n_images=6, n_test=1) == p and (p/'train.csv').stat().st_mtime_ns == m and is_sample(p)
    make_pascal_sample(p, n_images=6, n_test=1, overwrite=True)
    assert sample_marker(p).is_file() and is_sample(p)

# --- concurrent generation ------------------------------------------------------------------

def _digest(p):
    h = hashlib.sha256()
    for f in sorted(Path(p).rglob('*')):
        if f.is_file(): h.update(str(f.relative_to(p)).encode()); h.update(f.read_bytes())
    return h.hexdigest()

def _generate(root, barrier, q, kind):
    try:
        os.environ['MULTILABEL_REGRESS_DATA'] = root
        barrier.wait()
        p = get_pascal(n_images=24, n_test=3) if kind == 'pascal' else get_biwi(n_frames=1)
        ino = p.stat().st_ino
        q.put((str(p), ino, _digest(p), p.stat().st_ino))  # read it all: no one may remove it meanwhile
    except BaseException as e: q.put(repr(e))

@pytest.mark.parametrize('kind', ['pascal', 'biwi'])
def test_concurrent_generation_on_cold_cache(tmp_path, kind):
    n = 4; ctx = mp.get_context('fork'); barrier = ctx.Barrier(n); q = ctx.Queue()
    ps = [ctx.Process(target=_generate, args=(str(tmp_path), barrier, q, kind)) for _ in range(n)]
    for p in ps: p.start()
    res = [q.get(timeout=300) for _ in ps]
    for p in ps: p.join()
    assert all(isinstance(r, tuple) for r in res), res
    path = Path(res[0][0])
    assert {r[0] for r in res} == {str(path)} and sorted(p.name for p in (tmp_path/'samples').iterdir()) == sorted([path.name, sample_marker(path).name])
    assert is_sample(path) and json.loads(sample_marker(path).read_text())['stamp']['inode'] == path.stat().st_ino  # the winner's marker
    # every process read the same complete folder, the one still there: none was replaced under another's feet
    assert {r[1] for r in res} == {r[3] for r in res} == {path.stat().st_ino}
    assert {r[2] for r in res} == {_digest(path)}
    (check_pascal if kind == 'pascal' else check_biwi)(path)

@pytest.mark.parametrize('has_syncfs', [True, False])
def test_folder_flushed_to_disk_before_rename(tmp_path, monkeypatch, has_syncfs):
    import multilabel_regress.files as files
    calls = []; real_syncfs = files._syncfs
    monkeypatch.setattr(files, '_syncfs', lambda d: calls.append(('syncfs', Path(d).name)) or (has_syncfs and real_syncfs(d)))
    monkeypatch.setattr(files, '_fsync', lambda p: calls.append(('fsync', Path(p).name)))
    d = make_pascal_sample(tmp_path/'p', n_images=6, n_test=1)
    assert calls[0][0] == 'syncfs' and calls[0][1].startswith('.p.') and calls[-1] == ('fsync', tmp_path.name)
    if not has_syncfs: assert {p.name for p in d.rglob('*')} <= {n for k,n in calls if k == 'fsync'}  # each file, one by one

def test_write_atomic_to_a_folder(tmp_path):
    (tmp_path/'keep').write_text('x')
    with pytest.raises(UserError, match='is a folder: name a file to write'): write_atomic(tmp_path, '{}')
    assert [p.name for p in tmp_path.iterdir()] == ['keep']
