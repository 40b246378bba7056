"""Run notebooks top to bottom and save their outputs in place, skipping the cells that nbdev_test skips.

    python tools/run_nbs.py nbs/01_pascal_data.ipynb [more.ipynb ...] [--flags slow]

This is how the committed outputs are made: one real run per notebook, with nbs/ as the working
directory, `#| eval: false` cells and flagged cells (settings.ini `tst_flags`) left unrun.
"""
import sys, time, argparse
from pathlib import Path
from fastcore.xtras import working_directory
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from nbdev.config import get_config

def directives(src):
    return {l[3:].strip().split(':')[0].split()[0]: l[3:].strip() for l in src.splitlines()
            if l.startswith('#|') and l[3:].strip()}

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('nbs', nargs='+'); p.add_argument('--flags', default='', help='flags to run anyway, e.g. "slow"')
    a = p.parse_args()
    skip = set(get_config().tst_flags.split()) - set(a.flags.split())
    for fn in map(Path, a.nbs):
        nb = read_nb(fn)
        def no_run(c):
            if c.cell_type != 'code': return True
            d = directives(c.source)
            if 'nbdev_export(' in c.source: return True
            if d.get('eval', '').replace(' ', '').lower() == 'eval:false': return True
            return bool(skip & set(d))
        t = time.time()
        for c in nb.cells:
            if c.cell_type == 'code': c.outputs, c.execution_count = [], None
        sh = CaptureShell(fn.absolute(), mpl_format='png')
        with working_directory(fn.parent.absolute()):
            sh.run_all(nb, exc_stop=True, preproc=no_run)
        write_nb(nb, fn)
        print(f'{fn}: {time.time()-t:.0f} s')

if __name__ == '__main__': main()
