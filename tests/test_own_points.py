"""`06_points` on a folder of one's own: the notebook's one setting (`source`, and `COCO_FILE` beside it) pointed at a
points folder that is not the sample, run top to bottom as a hosted notebook's Run All does (no nbdev, network blocked).

Two folders a learner could bring: five points with other names (two left/right pairs, one on the middle line) in a
points.csv and no COCO file; and a copy of the faces' folder with its COCO keypoints file named in `COCO_FILE`. Neither
carries a sample marker. What is checked: every cell runs (the notebook's own tests included), and the folder is read,
never written to.
"""
import json, os, shutil, subprocess, sys, importlib.util
from pathlib import Path
import pandas as pd, pytest
from multilabel_regress.points import make_points_sample

ROOT = Path(__file__).parent.parent
NB = ROOT/'nbs'/'06_points.ipynb'
RENAME = {'nose_tip': 'snout', 'left_eye_1': 'eye_left', 'right_eye_1': 'eye_right', 'left_mouth_corner': 'mouth_left', 'right_mouth_corner': 'mouth_right'}

def _with_source(tmp, source, coco):
    "A copy of 09 whose settings cell names `source` and `COCO_FILE`, as a learner would edit it."
    nb = json.loads(NB.read_text()); cells = [c for c in nb['cells'] if c['cell_type'] == 'code' and ''.join(c['source']).startswith("source = 'sample'")]
    assert len(cells) == 1, 'the settings cell of 09 starts with source = ...'
    lines = ''.join(cells[0]['source']).splitlines(keepends=True)
    assert lines[1].startswith('COCO_FILE = None')
    cells[0]['source'] = [f"source = {str(source)!r}\n", f"COCO_FILE = {str(coco) if coco else None!r}\n", *lines[2:]]
    f = tmp/NB.name; f.write_text(json.dumps(nb)); return f

def _run(nb):
    kernel = [] if importlib.util.find_spec('execnb') else ['--kernel']  # the newest leg has no execnb: a Jupyter kernel
    return subprocess.run([sys.executable, str(ROOT/'tools'/'run_nbs.py'), '--run-all', '--offline', '--check', '--hosted', *kernel, str(nb)],
                          capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, MLR_POINTS_STEPS='30'))  # a short training: the cells, not the figures

@pytest.fixture(scope='module')
def faces(tmp_path_factory): return make_points_sample(tmp_path_factory.mktemp('gen')/'faces', n_images=40)

@pytest.mark.skipif(importlib.util.find_spec('execnb') is None and importlib.util.find_spec('nbclient') is None, reason='running a notebook needs execnb or nbclient')
@pytest.mark.parametrize('kind', ['csv_five_points', 'csv_and_coco'])
def test_points_notebook_on_own_folder(faces, tmp_path, kind, tree_state):
    own = tmp_path/'own'/('animals' if kind == 'csv_five_points' else 'faces_copy'); own.mkdir(parents=True)
    df = pd.read_csv(faces/'points.csv')
    if kind == 'csv_five_points':
        shutil.copytree(faces/'crops', own/'crops')
        keep = ['fname'] + [f'{n}_{a}' for n in RENAME for a in 'xy']
        df[keep].rename(columns={f'{n}_{a}': f'{m}_{a}' for n,m in RENAME.items() for a in 'xy'}).to_csv(own/'points.csv', index=False)
        coco = None
    else:
        for d in ('crops', 'images'): shutil.copytree(faces/d, own/d)
        shutil.copy(faces/'points.csv', own/'points.csv'); coco = own/'keypoints.json'; shutil.copy(faces/'faces_coco.json', coco)
    assert not [p for p in own.rglob('*') if 'sample' in p.name]
    before = tree_state(own)
    r = _run(_with_source(tmp_path, own, coco))
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
    assert tree_state(own) == before, 'the own folder was written to'

def test_tree_state_sees_writes(tmp_path, tree_state):
    "The check above notices a changed file, a new empty folder, and a file made and removed again."
    import time
    (tmp_path/'d').mkdir(); (tmp_path/'d'/'a.txt').write_text('a'); s0 = tree_state(tmp_path)
    time.sleep(0.05); (tmp_path/'d'/'tmp').write_text('x'); (tmp_path/'d'/'tmp').unlink()
    assert tree_state(tmp_path) != s0 and tree_state(tmp_path)['d/'] != s0['d/']
    s1 = tree_state(tmp_path); (tmp_path/'d'/'models').mkdir(); assert 'd/models/' in tree_state(tmp_path) and 'd/models/' not in s1
    s2 = tree_state(tmp_path); time.sleep(0.05); (tmp_path/'d'/'a.txt').write_text('b'); assert tree_state(tmp_path)['d/a.txt'] != s2['d/a.txt']
