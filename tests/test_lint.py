"""The library reads as fastai's does: no line over 120 characters, nothing pyflakes finds, and no `_private` name
imported from another module of ours (make it public and documented, or move the code where it belongs).

The modules not tidied yet are listed below, per check; their tests are expected to fail (`xfail(strict=True)`), so a
module that becomes clean fails its test until it leaves the list. Shrink the lists; never add to them."""
import ast
from pathlib import Path
import pytest

PKG = Path(__file__).parents[1]/'multilabel_regress'
MODULES = sorted(p.stem for p in PKG.glob('*.py') if p.stem != '_modidx')  # `_modidx.py` is nbdev's index, not code
MAX = 120

# modules still to tidy, per check: none since issue 31; the lists stay, empty, and may only stay so
LONG_LINES_NOT_YET = set()
PYFLAKES_NOT_YET = set()
PRIVATE_IMPORTS_NOT_YET = set()

def _params(not_yet):
    "Every module, those in `not_yet` expected to fail (strictly: a module that passes must leave the list)."
    mark = pytest.mark.xfail(strict=True, reason='not tidied yet: remove it from the list once it passes')
    return [pytest.param(m, marks=mark) if m in not_yet else m for m in MODULES]

def _ids(m): return f'{m}.py'

def long_lines(src:str)->list:
    "(line number, length) of each line of `src` longer than `MAX`, outside the `__all__` that nbdev writes."
    # nbdev wraps its `__all__` list at 120 characters and then puts `__all__ = ` in front: generated, not written
    res,in_all = [],False
    for i,l in enumerate(src.splitlines(), 1):
        if l.startswith('__all__ = ['): in_all = True
        if len(l) > MAX and not in_all: res.append((i, len(l)))
        if in_all and l.rstrip().endswith(']'): in_all = False
    return res

def private_imports(src:str)->list:
    "(line number, module, name) of each `_name` imported from a module of this package."
    res = []
    for node in ast.walk(ast.parse(src)):
        if not isinstance(node, ast.ImportFrom): continue
        ours = node.level > 0 or (node.module or '').split('.')[0] == 'multilabel_regress'
        if not ours: continue
        for a in node.names:
            if a.name.startswith('_') and not (a.name.startswith('__') and a.name.endswith('__')):
                res.append((node.lineno, node.module or '.', a.name))
    return res

def pyflakes_findings(path:Path)->list:
    "What pyflakes reports about the file `path`, one line each."
    api = pytest.importorskip('pyflakes.api', reason='pyflakes checks the library: pip install pyflakes')
    from pyflakes.reporter import Reporter
    import io
    out,err = io.StringIO(),io.StringIO()
    api.checkPath(str(path), Reporter(out, err))
    return [l for l in (out.getvalue() + err.getvalue()).splitlines() if l.strip()]

@pytest.mark.parametrize('m', _params(LONG_LINES_NOT_YET), ids=_ids)
def test_no_long_lines(m):
    found = long_lines((PKG/f'{m}.py').read_text())
    where = ', '.join(f'line {i} ({n})' for i,n in found)
    assert not found, f"{m}.py: {len(found)} lines over {MAX} characters: {where}"

@pytest.mark.parametrize('m', _params(PYFLAKES_NOT_YET), ids=_ids)
def test_pyflakes_clean(m):
    found = pyflakes_findings(PKG/f'{m}.py')
    assert not found, f"pyflakes on {m}.py:\n" + '\n'.join(found)

@pytest.mark.parametrize('m', _params(PRIVATE_IMPORTS_NOT_YET), ids=_ids)
def test_no_private_imports(m):
    found = private_imports((PKG/f'{m}.py').read_text())
    where = ', '.join(f'line {i}: {n} from {s}' for i,s,n in found)
    assert not found, f"{m}.py imports private names of ours: {where}"

def test_lists_name_modules():
    "The lists name modules that exist: a module renamed or removed leaves them."
    for s in (LONG_LINES_NOT_YET, PYFLAKES_NOT_YET, PRIVATE_IMPORTS_NOT_YET): assert s <= set(MODULES), s - set(MODULES)

def test_the_checks_see_what_they_should(tmp_path):
    "Each check finds its kind of offence, and lets the rest pass."
    src = ("from .files import _fig, write_atomic\n"
           "from multilabel_regress.samples import (\n    make_sample, _background)\n"
           "from . import __version__\nimport os\n"
           f"x = '{'a'*(MAX-6)}'\ny = '{'b'*(MAX-5)}'\n")
    assert private_imports(src) == [(1, 'files', '_fig'), (2, 'multilabel_regress.samples', '_background')]
    assert long_lines(src) == [(7, MAX+1)]
    assert long_lines("__all__ = ['" + 'a'*MAX + "',\n           'b']\n" + 'c'*(MAX+1)) == [(3, MAX+1)]
    (tmp_path/'m.py').write_text(src)
    found = pyflakes_findings(tmp_path/'m.py')
    assert any("'os' imported but unused" in l for l in found) and any('_fig' in l for l in found)
