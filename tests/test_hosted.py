"""The notebooks as a learner runs them in a hosted notebook (Colab, Kaggle) or a fresh Jupyter: only the package
installed, no nbdev, each notebook Run All in a fresh Jupyter kernel, offline.

tools/hosted hides nbdev and execnb from the kernel (they raise ImportError, as where they are not installed), and
tools/offline blocks the network, so the install cell must find the package and do nothing. `scripts/test.sh` runs
every notebook this way before pytest and sets `MLR_NOTEBOOKS_RAN=hosted`; then the run here is skipped, not repeated.
"""
import os, sys, json, subprocess, textwrap, importlib.util
from pathlib import Path
import pytest

ROOT = Path(__file__).parent.parent
NUMBERED = sorted((ROOT/'nbs').glob('[0-9]*.ipynb'))
HOSTED = ROOT/'tools'/'hosted'
needs_kernel = pytest.mark.skipif(importlib.util.find_spec('nbclient') is None or importlib.util.find_spec('ipykernel') is None,
                                  reason='running notebooks in a kernel needs nbclient and ipykernel')

def _cells(nb): return [c for c in json.loads(nb.read_text())['cells']]
def _src(c): return ''.join(c['source'])

@pytest.mark.parametrize('nb', NUMBERED, ids=lambda f: f.name)
def test_runs_without_nbdev(nb):
    "Every numbered notebook: a python3 kernelspec, a Colab link, an install cell first, nbdev only behind a guard."
    d = json.loads(nb.read_text()); cells = d['cells']
    assert d['metadata'].get('kernelspec', {}).get('name') == 'python3'
    assert f'colab.research.google.com/github/multilabel-regress/multilabel_regress/blob/main/nbs/{nb.name}' in _src(cells[1])
    code = [c for c in cells if c['cell_type'] == 'code']
    first = _src(code[0])
    assert 'try: import multilabel_regress' in first and 'git+https://github.com/multilabel-regress/multilabel_regress' in first
    for c in code:
        for l in _src(c).splitlines():
            if 'import nbdev' in l or 'from nbdev' in l or 'import execnb' in l:
                assert l.startswith('try:'), f'{nb.name}: an unguarded nbdev import: {l!r}'
            assert "rcParams['figure.dpi']" not in l, f'{nb.name}: a reduced figure.dpi: {l!r}'

def _kernel_run(code, tmp_path):
    "Run `code` as a one-cell notebook with tools/run_nbs.py in a kernel; return the result and the cell's text output."
    (tmp_path/'nbs').mkdir(exist_ok=True); f = tmp_path/'nbs'/'x.ipynb'
    f.write_text(json.dumps({'cells': [{'cell_type': 'code', 'metadata': {}, 'outputs': [], 'execution_count': None, 'id': '0a1b2c3d',
                                        'source': textwrap.dedent(code)}],
                             'metadata': {'kernelspec': {'name': 'python3', 'display_name': 'python3', 'language': 'python'}},
                             'nbformat': 4, 'nbformat_minor': 5}))
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'run_nbs.py'), '--run-all', '--offline', '--kernel', '--hosted', str(f)],
                       capture_output=True, text=True, cwd=ROOT)
    out = ''.join(''.join(o.get('text', '')) for o in json.loads(f.read_text())['cells'][0]['outputs']) if r.returncode == 0 else ''
    return r, out

@needs_kernel
def test_hosted_kernel_hides_nbdev(tmp_path):
    "With --hosted the kernel cannot import nbdev or execnb (even where they are installed); the network stays blocked."
    r, out = _kernel_run("""
        for m in ('nbdev', 'nbdev.showdoc', 'execnb'):
            try: __import__(m); print(m, 'imported')
            except ImportError: print(m, 'ImportError')
        import multilabel_regress, fastcore; print('fastcore imported')
        """, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert out == 'nbdev ImportError\nnbdev.showdoc ImportError\nexecnb ImportError\nfastcore imported\n', out
    r, out = _kernel_run("""
        import socket
        try: socket.create_connection(('93.184.216.34', 80), timeout=5)
        except OSError: pass
        """, tmp_path)  # tools/offline's block, chained after tools/hosted, still reports the attempt
    assert r.returncode != 0 and 'tried to reach the network' in r.stdout and '93.184.216.34' in r.stdout, r.stdout + r.stderr

@needs_kernel
def test_guarded_cells_run_without_nbdev(tmp_path):
    "The first notebook's install, show_doc and export cells, run in a hosted kernel: no install, no error, no export."
    cells = [_src(c) for c in _cells(ROOT/'nbs'/'09_models.ipynb') if c['cell_type'] == 'code']
    install = cells[0]
    showdoc = next(s for s in cells if 'nbdev.showdoc' in s)
    export = next(s for s in cells if 'nbdev_export(' in s)
    quiet = next(s for s in cells if 'filterwarnings' in s)   # the notebook's own: fastai's import-time notice
    r, out = _kernel_run('\n'.join([install, quiet, showdoc, "print('show_doc:', show_doc(print))",
                                    export.replace('nbdev.nbdev_export()', "print('exported')"), "print('done')"]), tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert out == 'show_doc: None\ndone\n', out

@pytest.mark.skipif(os.environ.get('MLR_NOTEBOOKS_RAN') == 'hosted', reason='scripts/test.sh ran every notebook this way already')
@needs_kernel
@pytest.mark.parametrize('nb', NUMBERED, ids=lambda f: f.name)
def test_run_all_hosted(nb):
    "Run All, as in a hosted notebook: a fresh kernel, no nbdev, offline."
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'run_nbs.py'), '--run-all', '--offline', '--check', '--hosted', '--kernel', str(nb)],
                       capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, MLR_SOURCE='sample'))
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]
