"The package's layering: every module imports only modules listed below it in the table of layers (docs/reference.md), none inside a function, and no module is longer than the layering allows."
import ast, re, sys
from pathlib import Path
import pytest

PKG = Path(__file__).parents[1]/'multilabel_regress'
MODULES = sorted(p.stem for p in PKG.glob('*.py') if p.stem not in ('__init__', '_modidx'))

def _imports(m):
    "(module imported, line, inside a function or class?) for each import of one of ours in module `m`."
    tree = ast.parse((PKG/f'{m}.py').read_text()); res = []
    def walk(node, nested):
        for ch in ast.iter_child_nodes(node):
            if isinstance(ch, ast.ImportFrom):
                name = ('multilabel_regress.' + (ch.module or '')) if ch.level else (ch.module or '')
                if name.startswith('multilabel_regress.') and name != 'multilabel_regress.': res.append((name.split('.')[1], ch.lineno, nested))
            elif isinstance(ch, ast.Import):
                res.extend((a.name.split('.')[1], ch.lineno, nested) for a in ch.names if a.name.startswith('multilabel_regress.'))
            walk(ch, nested or isinstance(ch, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)))
    walk(tree, False)
    return res

def _table():
    "The table of layers in docs/reference.md: the modules, top down, with their layer."
    rows = re.findall(r'^\| (top|models|data|bottom) \| `[^`]+` \| `(\w+)` \|', (PKG.parent/'docs'/'reference.md').read_text(), re.M)
    return [m for _,m in rows], dict((m,l) for l,m in rows)

def test_table_lists_every_module_once():
    order,_ = _table()
    assert sorted(order) == MODULES and len(order) == len(set(order))

def test_imports_go_down_the_table():
    order,_ = _table(); pos = {m: i for i,m in enumerate(order)}
    up = [(m, d, line) for m in MODULES for d,line,_ in _imports(m) if pos[d] <= pos[m]]
    assert not up, f"imports of a module not below in the table of layers (docs/reference.md): {up}"

def test_no_import_inside_a_function():
    nested = [(m, d, line) for m in MODULES for d,line,inner in _imports(m) if inner]
    assert not nested, nested

def test_layers_in_order():
    order,layer = _table(); rank = dict(top=3, models=2, data=1, bottom=0)
    assert [rank[layer[m]] for m in order] == sorted((rank[layer[m]] for m in order), reverse=True)

@pytest.mark.parametrize('m', MODULES, ids=lambda m: f'{m}.py')
def test_module_size(m):
    n = len((PKG/f'{m}.py').read_text().splitlines())
    assert n <= (300 if m == 'cli' else 500), f"{m}.py has {n} lines: split it by job"

def test_the_check_sees_an_upward_import(tmp_path, monkeypatch):
    "The walk finds an import hidden in a function, and one of a module above."
    (tmp_path/'x.py').write_text("from multilabel_regress.cli import main\ndef f():\n    from .recipes import chapter\n")
    monkeypatch.setattr(sys.modules[__name__], "PKG", tmp_path)
    assert _imports('x') == [('cli', 1, False), ('recipes', 3, True)]

MACHINERY = ('fsync', 'st_ino', 'mmap_mode', 'O_EXCL', 'os.replace', 'lru_cache')

@pytest.mark.parametrize('nb', sorted((PKG.parent/'nbs').glob('0[0-5]_*.ipynb')), ids=lambda p: p.stem)
def test_chapter_notebooks_teach_the_chapter(nb):
    "File safety and cache machinery live in the appendices: the chapter notebooks' code never touches it."
    import json
    code = '\n'.join(''.join(c['source']) for c in json.loads(nb.read_text())['cells'] if c['cell_type'] == 'code')
    assert not [w for w in MACHINERY if w in code]
