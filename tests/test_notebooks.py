"Notebook outputs are for reading, and the offline check really blocks the network."
import os, re, sys, json, subprocess, textwrap
from pathlib import Path
import pytest

ROOT = Path(__file__).parent.parent
NBS = sorted((ROOT/'nbs').glob('*.ipynb'))
OFFLINE = ROOT/'tools'/'offline'

def _texts(nb):
    "(cell index, output text) for every text output of the notebook `nb`."
    for i,c in enumerate(json.loads(nb.read_text())['cells']):
        for o in c.get('outputs', []):
            t = o.get('text', '')
            d = o.get('data', {})
            for k in ('text/plain', 'text/html', 'text/markdown'): t += ''.join(d.get(k, ''))
            if o.get('output_type') == 'error': t += 'ERROR ' + o.get('ename', '') + ': ' + o.get('evalue', '')
            yield i, ''.join(t)

# what a reader should never see in a committed output, and why
BAD = {'an error output': r'^ERROR ',
       'progress-bar residue': r'\u2588|<progress|\|#+\s*\|',
       'a warning': r'\w+Warning:',
       'a path of the build machine': r'\.venv/|/tmp/tmp|site-packages/|/root/|/work/|/home/\w+/'}

@pytest.mark.parametrize('nb', NBS, ids=lambda f: f.name)
def test_outputs_readable(nb):
    found = [f"cell {i}: {what}: {m.group(0)!r}" for i,t in _texts(nb)
             for what,pat in BAD.items() for m in [re.search(pat, t, re.M)] if m]
    assert not found, f"{nb.name} outputs a reader would stumble on (rerun the notebook after fixing):\n" + '\n'.join(found)

def test_notebooks_weigh_little():
    tot = sum(f.stat().st_size for f in NBS)
    assert tot < 2e6, f"the notebooks weigh {tot/1e6:.2f} MB together (the limit: 2 MB): smaller or fewer figures, photographs as JPEG (`images.compact_figures` does it for matplotlib figures)"

def _py(code, **env):
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(OFFLINE), **env))

def test_offline_blocks_and_logs(tmp_path):
    log = tmp_path/'net.log'
    r = _py("""
        import urllib.request, socket
        try: urllib.request.urlopen('https://files.fast.ai/data/examples/mnist_tiny.tgz', timeout=5)
        except OSError as e: print('refused:', e)
        try: socket.create_connection(('93.184.216.34', 80), timeout=5)
        except OSError as e: print('refused:', e)
        """, MLR_NET_LOG=str(log))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('refused: ') == 2 and 'network blocked' in r.stdout
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and 'files.fast.ai' in lines[0] and '93.184.216.34' in lines[1]

def test_offline_keeps_loopback(tmp_path):
    r = _py("""
        import socket
        s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()
        c = socket.create_connection(s.getsockname(), timeout=5); print('connected')
        print(socket.getaddrinfo('localhost', 80)[0][4][0])
        """, MLR_NET_LOG=str(tmp_path/'net.log'))
    assert r.returncode == 0 and 'connected' in r.stdout, r.stderr
    assert not (tmp_path/'net.log').exists()

def test_run_all_fails_a_notebook_that_downloads(tmp_path):
    "The Run-All runner reports a notebook that reaches for the network, even when the notebook catches the error."
    pytest.importorskip('execnb', reason='the notebook tools (nbdev, execnb) are in the pinned leg only')
    nb = {'cells': [{'cell_type': 'code', 'metadata': {}, 'outputs': [], 'execution_count': None, 'source':
            "#| eval: false\nimport urllib.request\ntry: urllib.request.urlopen('https://example.org', timeout=5)\nexcept OSError: pass"}],
          'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    (tmp_path/'nbs').mkdir(); f = tmp_path/'nbs'/'x.ipynb'; f.write_text(json.dumps(nb))
    run = lambda *a: subprocess.run([sys.executable, str(ROOT/'tools'/'run_nbs.py'), '--check', *a, str(f)],
                                    capture_output=True, text=True, cwd=ROOT)
    assert run().returncode == 0                     # as nbdev_test: the `eval: false` cell is skipped
    r = run('--run-all', '--offline')                # as Run All: it runs, and its download is caught
    assert r.returncode != 0 and 'tried to reach the network' in r.stdout and 'example.org' in r.stdout
