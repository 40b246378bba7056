"""Run notebooks top to bottom, as nbdev_test does or as Jupyter's "Run All" does.

    python tools/run_nbs.py nbs/01_pascal_data.ipynb [more.ipynb ...] [--flags slow]
    python tools/run_nbs.py --run-all --offline --check nbs/*.ipynb

By default this is how the committed outputs are made: one real run per notebook, with nbs/ as
the working directory, `#| eval: false` cells and flagged cells (settings.ini `tst_flags`) left
unrun, and the outputs saved in place.

`--run-all` runs every code cell, as a reader's Run All in plain Jupyter does (there nbdev's
directives are only comments), so downloads and long runs must be guarded in Python. `--offline`
blocks the network for the notebooks and every process they start (loopback still works) and
fails a notebook that tried to reach it, even if the notebook caught the error. `--check` runs
without saving. `--hosted` runs them as a hosted notebook (Colab, Kaggle) would, where only the
package is installed: nbdev and execnb cannot be imported from the notebooks (tools/hosted). `--kernel`
runs each notebook in a Jupyter kernel (nbclient, ipykernel) instead of in execnb's shell; it is the
only way where execnb is not installed (the newest test leg). `--long` sets `MLR_LONG_RUN=1`, which the notebooks' `LONG_RUN` setting reads:
the committed outputs come from `--run-all --long`, a reader's Run All skips the long cells.
Notebooks run in separate processes, `--workers` at a time.
"""
import os, sys, time, argparse, tempfile, subprocess, importlib.util
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).parent.absolute()
HOSTED = HERE/'hosted'

def directives(src):
    return {l[3:].strip().split(':')[0].split()[0]: l[3:].strip() for l in src.splitlines()
            if l.startswith('#|') and l[3:].strip()}

def tst_flags():
    "settings.ini's `tst_flags`, read without nbdev (which the newest leg lacks)."
    import configparser
    cfg = configparser.ConfigParser(); cfg.read(HERE.parent/'settings.ini')
    return set(cfg['DEFAULT'].get('tst_flags', '').split())

def skipper(flags='', run_all=False):
    "A function of a cell's type and source: True for the cells not to run."
    skip = tst_flags() - set(flags.split())
    def no_run(cell_type, src):
        if cell_type != 'code': return True
        if 'nbdev_export(' in src: return True  # the export cell writes the library: never from a test
        if run_all: return False
        d = directives(src)
        if d.get('eval', '').replace(' ', '').lower() == 'eval:false': return True
        return bool(skip & set(d))
    return no_run

def run_one(fn, flags='', run_all=False, save=True, hosted=False):
    "Run the notebook `fn` in this process (execnb's shell); save its outputs unless `save` is False."
    from fastcore.xtras import working_directory
    from execnb.nbio import read_nb, write_nb
    from execnb.shell import CaptureShell
    no_run = skipper(flags, run_all)
    nb = read_nb(fn)
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs, c.execution_count = [], None
    sh = CaptureShell(fn.absolute(), mpl_format='png')
    if hosted:  # from here on the notebook's `import nbdev` fails, as in a hosted notebook
        spec = importlib.util.spec_from_file_location('mlr_hosted', HOSTED/'sitecustomize.py')
        m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); m.hide()
    with working_directory(fn.parent.absolute()):
        sh.run_all(nb, exc_stop=True, preproc=lambda c: no_run(c.cell_type, c.source))
    if save: write_nb(nb, fn)

def run_kernel(fn, flags='', run_all=False, save=True, timeout=3600):
    "Run the notebook `fn` in a fresh Jupyter kernel (nbclient), as Jupyter's Run All does; save its outputs unless `save` is False."
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(fn, as_version=4)
    no_run, kept = skipper(flags, run_all), {}
    for i,c in enumerate(nb.cells):
        if c.cell_type != 'code': continue
        c.outputs, c.execution_count = [], None
        if no_run(c.cell_type, c.source): kept[i], c.source = c.source, ''  # an empty cell runs nothing
    NotebookClient(nb, timeout=timeout, kernel_name='python3', resources={'metadata': {'path': str(fn.parent.absolute())}}).execute()
    for i,src in kept.items(): nb.cells[i].source = src
    if save: nbformat.write(nb, fn)

def run_child(fn, a):
    "Run one notebook in a child process; return (ok, seconds, message)."
    env = dict(os.environ, MLR_LONG_RUN='1' if a.long else '0')
    log, path = None, [p for p in env.get('PYTHONPATH', '').split(os.pathsep) if p]
    if a.offline:
        log = Path(tempfile.mkstemp(prefix='mlr-net-', suffix='.log')[1])
        path.insert(0, str(HERE/'offline'))
        env['MLR_NET_LOG'] = str(log)
    if a.hosted and a.kernel: path.insert(0, str(HOSTED))  # the kernel starts with nbdev hidden (and then the offline block)
    env['PYTHONPATH'] = os.pathsep.join(path)
    cmd = ([sys.executable, __file__, '--_one', str(fn), '--flags', a.flags] + ['--run-all']*a.run_all + ['--check']*a.check
           + ['--hosted']*a.hosted + ['--kernel']*a.kernel)
    t = time.time()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    secs, msg, ok = time.time()-t, '', r.returncode == 0
    if not ok: msg = (r.stdout + r.stderr).strip()[-3000:]
    if log:
        tries = log.read_text().strip(); log.unlink()
        if tries: ok, msg = False, f"tried to reach the network:\n{tries[:3000]}\n{msg}"
    return ok, secs, msg

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('nbs', nargs='+')
    p.add_argument('--flags', default='', help='flags to run anyway, e.g. "slow"')
    p.add_argument('--run-all', action='store_true', help="run every code cell, as Jupyter's Run All does")
    p.add_argument('--offline', action='store_true', help='block the network; fail a notebook that tries to use it')
    p.add_argument('--check', action='store_true', help='run without saving the outputs')
    p.add_argument('--long', action='store_true', help='run the long cells too (MLR_LONG_RUN=1)')
    p.add_argument('--hosted', action='store_true', help='nbdev and execnb unimportable from the notebooks, as in a hosted notebook')
    p.add_argument('--kernel', action='store_true', help="run in Jupyter kernels (nbclient); the default where execnb is missing")
    p.add_argument('--workers', type=int, default=1, help='notebooks run at once')
    p.add_argument('--_one', action='store_true', help=argparse.SUPPRESS)
    a = p.parse_args()
    try: a.kernel = a.kernel or importlib.util.find_spec('execnb') is None
    except ImportError: a.kernel = True  # hidden (tools/hosted)
    if a._one:
        if a.kernel: return run_kernel(Path(a.nbs[0]), a.flags, a.run_all, save=not a.check)
        return run_one(Path(a.nbs[0]), a.flags, a.run_all, save=not a.check, hosted=a.hosted)
    fns = [Path(f) for f in a.nbs]
    with ThreadPoolExecutor(a.workers) as ex:
        res = list(ex.map(lambda f: run_child(f, a), fns))
    bad = 0
    for f,(ok,secs,msg) in zip(fns, res):
        print(f"{f}: {'ok' if ok else 'FAILED'} in {secs:.0f} s" + (f"\n{msg}\n" if msg else ''), flush=True)
        bad += not ok
    if bad: sys.exit(f"{bad} of {len(fns)} notebooks failed")

if __name__ == '__main__': main()
