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

README = ROOT/'README.md'
_re_link = re.compile(r'\]\(([^)\s]+)\)')

def _tracked():
    "The files git tracks in the repository, or None where git or the repository is missing."
    try: r = subprocess.run(['git', 'ls-files'], capture_output=True, text=True, cwd=ROOT)
    except OSError: return None
    return set(r.stdout.splitlines()) if r.returncode == 0 else None

def _relative_links(md:str)->list:
    "The targets of the markdown links in `md` that point into the repository, without their anchors."
    return [u.split('#')[0] for u in _re_link.findall(md) if not re.match(r'[a-z]+:|#', u)]

def test_readme_starts_a_reader():
    "README.md is a first page: short, names the first notebook, lists every notebook, links only files a clone has."
    text = README.read_text()
    assert len(text.split()) <= 1050, f'README.md has {len(text.split())} words: move reference material to docs/reference.md'
    assert '(nbs/01_pascal_data.ipynb)' in text, 'README.md does not say which notebook to open first'
    assert '_site/' not in ''.join(_re_link.findall(text)), 'README.md links into _site/, which a clone lacks'
    tracked = _tracked()
    if tracked is None: pytest.skip('git ls-files is unavailable here')
    for doc in (README, ROOT/'docs'/'reference.md'):   # relative links resolve to tracked files, on GitHub and in a clone
        rel = doc.parent.relative_to(ROOT)
        missing = [u for u in _relative_links(doc.read_text())
                   if os.path.normpath(rel/u) not in tracked]
        assert not missing, f'{doc.name} links to files the repository does not track: {missing}'
    listed = re.findall(r'^\| \[`(\w+)`\]\(nbs/\1\.ipynb\) \|', text, re.M)
    numbered = [p.stem for p in sorted((ROOT/'nbs').glob('[0-9]*.ipynb'))]
    assert sorted(listed) == numbered, f'the notebooks table and nbs/ differ: {set(listed) ^ set(numbered)}'

def test_readme_gives_the_main_commands_time():
    "README.md says how long `bash scripts/main.sh` takes, measured (no `XX` placeholder left)."
    text = README.read_text()
    # the time on the line above the command: the command's own line stays the one .ci/run runs
    assert re.search(r'# about \d+ minutes[^\n]*\nbash scripts/main\.sh\n', text), 'no measured time for scripts/main.sh'
    assert re.search(r'# about \d+ minutes[^\n]*\nbash scripts/test\.sh\n', text), 'no measured time for scripts/test.sh'
    assert 'about XX' not in text   # (`frame_XXXXX_rgb.jpg` names a file, not a placeholder)
