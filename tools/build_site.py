"""Build the documentation site from nbs/ into _site/, offline: `python tools/build_site.py`.

Open `_site/index.html` in a browser. Pages: the home page from `nbs/index.ipynb` (what README.md
holds), then every numbered notebook (`nbs/[0-9]*.ipynb`) in name order, with no list to keep up
to date, then an API reference for every name in each module's `__all__`, then the hand-written
pages of `docs/` (`docs/reference.md`). Links written for GitHub and a clone (`nbs/x.ipynb`,
`docs/x.md`, `../nbs/x.ipynb`) become links between the site's pages.

nbdev's own `nbdev_docs` needs Quarto; this renders the same notebooks with Sphinx + MyST-NB
(config in docs/conf.py). The notebooks are first prepared the way nbdev prepares them for
Quarto, with nbdev's own processors: `#| hide` and `#| export` cells are left out, each exported
name gets its `show_doc` (signature with docments, docstring), directive lines are removed;
`#| echo: false` keeps only the outputs and `#| output: false` only the code. Nothing is executed:
the committed outputs (figures included) are what the pages show.
"""
import argparse, importlib, json, re, shutil
import jupyter_server_mathjax
from pathlib import Path
from execnb.nbio import read_nb
from nbdev.process import NBProcessor
from nbdev.processors import (populate_language, add_show_docs, strip_ansi, hide_line, filter_stream_,
                              rm_header_dash, rm_export, clean_magics, hide_, strip_hidden_metadata, _default_exp)
from nbdev.showdoc import show_doc, DocmentTbl

ROOT = Path(__file__).resolve().parent.parent
LIB = 'multilabel_regress'
_re_quarto_dir = re.compile(r'\A(?:[ \t]*#\|.*(?:\n|\Z))+')
_re_showdoc = re.compile(r'^\s*show_doc\((.+)\)\s*$')

def site_notebooks(nbs:Path)->list:
    "`index.ipynb`, then every numbered notebook in name order (chapters, then appendices)."
    return [nbs/'index.ipynb'] + sorted(nbs.glob('[0-9]*.ipynb'))

def doc_md(obj, level=3)->str:
    "`show_doc`'s markdown for `obj` (signature with docments, docstring), without its leading rule."
    md = show_doc(obj, title_level=level)._repr_markdown_()
    return re.sub(r'^\s*---\s*\n', '', md)   # docutils refuses a section that starts with a rule

_re_nb_link = re.compile(r'\]\((?:\.\./)?nbs/(?=[\w.-]+\.ipynb)')   # README's `nbs/x.ipynb`, docs/'s `../nbs/x.ipynb`
_re_doc_link = re.compile(r'\]\(docs/(?=[\w.-]+\.md)')               # README's `docs/x.md`

def _site_links(md:str)->str:
    "Links to files of the repository (`nbs/x.ipynb`, `docs/x.md`) made links between the site's pages."
    return _re_doc_link.sub('](', _re_nb_link.sub('](', md))

def _md_cell(src): return {'cell_type': 'markdown', 'metadata': {}, 'source': src}

def _render_show_doc(cell, ns):
    "Turn a `show_doc(x)` cell into a markdown cell holding its documentation, computed from `ns`."
    m = _re_showdoc.match(cell['source'])
    if cell['cell_type'] != 'code' or not m: return cell
    try: obj = eval(m.group(1), ns)
    except Exception as e: raise ValueError(f'cannot document `{m.group(1)}`: {e!r}') from e
    return _md_cell(doc_md(obj))

def _finish(cell, ns):
    "Apply the display directives nbdev leaves to Quarto, and return a plain notebook cell (or None)."
    d = getattr(cell, 'directives_', None) or {}
    if d.get('include:') == ['false']: return None
    if cell['cell_type'] != 'code':
        return _md_cell(_site_links(cell['source'])) if cell['cell_type'] == 'markdown' else None
    out = _render_show_doc(cell, ns)
    if out is not cell: return out
    tags = (['remove-input'] if d.get('echo:') == ['false'] else []) + (['remove-output'] if d.get('output:') == ['false'] else [])
    outs = cell.get('outputs', [])
    src = _re_quarto_dir.sub('', cell['source'])   # nbdev leaves Quarto's `#| key: value` lines in
    if not src.strip() and not outs: return None
    return {'cell_type': 'code', 'execution_count': None, 'metadata': {'tags': tags} if tags else {},
            'outputs': outs, 'source': src}

PROCS = [populate_language, add_show_docs, strip_ansi, hide_line, filter_stream_, rm_header_dash,
         rm_export, clean_magics, hide_, strip_hidden_metadata]

def package_names()->dict:
    "Every public name of the package's modules (their `__all__`), by name."
    mods = sorted(p.stem for p in (ROOT/LIB).glob('[a-z]*.py'))
    names = {}
    for m in mods:
        mod = importlib.import_module(f'{LIB}.{m}')
        names.update({n: getattr(mod, n) for n in getattr(mod, '__all__', [])})
    return names

def prepare_nb(path:Path)->tuple:
    "The notebook at `path` as nbdev prepares it for its docs, and its module name (or None)."
    nb = read_nb(path)
    mod = _default_exp(nb)
    ns = {'show_doc': show_doc, **package_names()}   # a notebook may show a name another module defines
    if mod: ns.update(vars(importlib.import_module(f'{LIB}.{mod}')))
    NBProcessor(nb=nb, procs=PROCS).process()
    cells = [c for c in (_finish(c, ns) for c in nb.cells) if c]
    meta = {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'},
            'language_info': {'name': 'python'}}
    return {'cells': cells, 'metadata': meta, 'nbformat': 4, 'nbformat_minor': 4}, mod

def api_page(mods:list)->str:
    "Markdown for the API reference: every name in each module's `__all__`, in notebook order."
    res = ['# API reference', '',
           "Every name each module exports (its `__all__`): the signature, with each parameter's comment "
           '(docments), and the docstring. The notebook named under each module explains and tests them.']
    for nbname, mod in mods:
        m = importlib.import_module(f'{LIB}.{mod}')
        res += ['', f'## {LIB}.{mod}', '', f'Explained in [{nbname}]({nbname}.ipynb).']
        for name in m.__all__:
            obj = getattr(m, name)
            res += ['', doc_md(obj, level=3) if callable(obj) else f'### {name}\n\n```python\n{name} = {obj!r:.300}\n```']
            tbl = DocmentTbl(obj) if callable(obj) else None
            try: has = tbl is not None and tbl.has_docment
            except Exception: has = False
            if has: res += ['', tbl._repr_markdown_()]
    return '\n'.join(res) + '\n'

def _write(p:Path, text:str):
    "Write `text` to `p` only when it changed, so Sphinx rebuilds only changed pages."
    if not p.exists() or p.read_text() != text: p.write_text(text)

def doc_pages(docs:Path)->list:
    "The hand-written pages: every markdown file of `docs`, in name order."
    return sorted(docs.glob('*.md'))

def stage(nbs:Path, src:Path, docs:Path=None)->list:
    "Write the prepared pages into `src` (the notebooks of `nbs`, the markdown of `docs`); return their names in order."
    src.mkdir(parents=True, exist_ok=True)
    paths = site_notebooks(nbs)
    pages = doc_pages(docs or nbs.parent/'docs')
    refs = ['api'] + [o.stem for o in pages]   # after the notebooks, under "Reference"
    names, mods = [], []
    for p in paths:
        nb, mod = prepare_nb(p)
        if p.stem == 'index':
            toc, ref = '\n'.join(o.stem for o in paths[1:]), '\n'.join(refs)
            nb['cells'].append(_md_cell(f'```{{toctree}}\n:hidden:\n:caption: Notebooks\n\n{toc}\n```\n\n'
                                        f'```{{toctree}}\n:hidden:\n:caption: Reference\n\n{ref}\n```'))
        elif mod: mods.append((p.stem, mod))
        _write(src/p.name, json.dumps(nb, indent=1, ensure_ascii=False))
        names.append(p.stem)
    _write(src/'api.md', api_page(mods))
    for p in pages: _write(src/p.name, _site_links(p.read_text()))
    for o in src.iterdir():   # pages of notebooks and docs that no longer exist
        if o.stem not in names + refs: o.unlink()
    return names + refs

def build(out:Path=ROOT/'_site', work:Path=ROOT/'_site_build', nbs:Path=ROOT/'nbs', quiet=True)->Path:
    "Build the site from `nbs` into `out` (`work` keeps Sphinx's cache between builds)."
    from sphinx.cmd.build import build_main
    pages = stage(nbs, work/'src'); listed = work/'pages.txt'
    same = listed.is_file() and listed.read_text().split() == pages  # Sphinx rewrites only changed pages: a new or removed page leaves the others' prev/next links stale
    args = ['-b', 'html', '-c', str(ROOT/'docs'), '-d', str(work/'doctrees'), '-W', '--keep-going',
            str(work/'src'), str(work/'html')] + (['-q'] if quiet else []) + ([] if same else ['-E', '-a'])
    # MyST-NB keeps its image files next to Sphinx's output folder, hence html/ inside `work`
    if not same: shutil.rmtree(work/'html', ignore_errors=True)   # a page renamed or removed leaves no page or image behind
    if build_main(args): raise RuntimeError('sphinx-build failed (warnings count as errors): see above')
    listed.write_text('\n'.join(pages) + '\n')
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(work/'html', out, ignore=shutil.ignore_patterns('.buildinfo', '.doctrees'))
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent/'static', out/'_static'/'mathjax')  # see docs/conf.py
    return out

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', default=str(ROOT/'_site'), help='folder to write the site into')
    a = ap.parse_args()
    print(f'site: {build(Path(a.out), quiet=False)/"index.html"}')
