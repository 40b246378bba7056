"""Write README.md from nbs/index.ipynb without Quarto (which nbdev_readme needs).

Markdown cells are copied, code cells become ```python blocks followed by their text output;
`#| hide` cells are left out. Run after re-running index.ipynb: `python tools/make_readme.py`.
"""
from pathlib import Path
from execnb.nbio import read_nb

def cell_md(c):
    src = c.source
    if c.cell_type == 'markdown': return src
    if c.cell_type != 'code' or any(l.strip() == '#| hide' for l in src.splitlines()): return None
    code = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
    out = []
    for o in c.get('outputs', []):
        t = o.get('text') or o.get('data', {}).get('text/plain')
        if t: out.append((''.join(t) if isinstance(t, list) else t).rstrip())
    return f'```python\n{code}\n```' + ''.join(f'\n\n```\n{t}\n```' for t in out)

def main():
    root = Path(__file__).parent.parent
    nb = read_nb(root/'nbs'/'index.ipynb')
    parts = [p for p in map(cell_md, nb.cells) if p]
    (root/'README.md').write_text('\n\n'.join(parts).replace('\n> ', '\n\n> ', 1) + '\n')

if __name__ == '__main__': main()
