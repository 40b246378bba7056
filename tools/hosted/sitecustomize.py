"""Make nbdev and execnb unimportable, as in a hosted notebook (Colab, Kaggle) where only the package was installed.

Imported automatically when this folder is on PYTHONPATH (Python imports `sitecustomize` at start-up, the
first one on the path only): it hides the modules, then runs the next `sitecustomize.py` on the path (e.g.
tools/offline's), so that both can be on. `tools/run_nbs.py --hosted` puts it on a kernel's path, or calls
`hide()` itself after importing the runner's own tools.
"""
import os, sys, importlib.abc, importlib.util
from pathlib import Path

HIDDEN = ('nbdev', 'execnb')

class _Hidden(importlib.abc.MetaPathFinder):
    "A finder, first on `sys.meta_path`, that refuses the hidden packages as if they were not installed."
    def find_spec(self, name, path=None, target=None):
        top = name.partition('.')[0]
        if top in HIDDEN: raise ModuleNotFoundError(f"No module named {top!r} (hidden: a hosted notebook has only the package)", name=name)
        return None

def hide():
    "Hide `HIDDEN` from now on in this process, including modules already imported (they import afresh, and fail)."
    if not any(isinstance(f, _Hidden) for f in sys.meta_path): sys.meta_path.insert(0, _Hidden())
    for m in [m for m in sys.modules if m.partition('.')[0] in HIDDEN]: del sys.modules[m]

def _chain():
    "Run the next `sitecustomize.py` on `sys.path` after this one's folder."
    here = Path(__file__).parent.resolve()
    dirs = [Path(p or '.').resolve() for p in sys.path]
    for d in dirs[dirs.index(here)+1:] if here in dirs else []:
        f = d/'sitecustomize.py'
        if f.is_file():
            spec = importlib.util.spec_from_file_location('_chained_sitecustomize', f)
            spec.loader.exec_module(importlib.util.module_from_spec(spec)); return

if __name__ == 'sitecustomize':
    hide(); _chain()
