"""The documentation site: built from nbs/ with tools/build_site.py, checked in headless Chromium.

The site is built once per session into `_site/` (what `python tools/build_site.py` makes);
screenshots of the home page and of a chapter go to `_site_check/`. Without chromium,
chromedriver or the docs packages these tests skip, unless MLR_REQUIRE_BROWSER=1 (CI sets it),
which turns the skip into a failure.
"""
import importlib, json, os, re, shutil, sys
from html.parser import HTMLParser
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import check_site as cs

# Sphinx, MyST and nbdev announce their own API deprecations while building; not this project's
pytestmark = pytest.mark.filterwarnings('ignore::DeprecationWarning', 'ignore::PendingDeprecationWarning')

def _need(ok, why):
    if ok: return
    if os.environ.get('MLR_REQUIRE_BROWSER') == '1': pytest.fail(f'{why} (MLR_REQUIRE_BROWSER=1)')
    pytest.skip(why)

def _have(mod): return importlib.util.find_spec(mod) is not None

@pytest.fixture(scope='session')
def bs():
    "tools/build_site.py, when the docs packages are installed."
    _need(all(map(_have, ('sphinx', 'myst_nb', 'furo', 'jupyter_server_mathjax'))),
          "the docs packages (sphinx, myst-nb, furo, jupyter-server-mathjax) are not installed")
    import build_site
    return build_site

@pytest.fixture(scope='session')
def site(bs):
    "The site, built from the notebooks as they are now."
    return bs.build(ROOT/'_site', ROOT/'_site_build')

@pytest.fixture(scope='session')
def driver():
    _need(_have('selenium'), 'selenium is not installed')
    _need(cs.browser_paths(), 'chromium and chromedriver are not installed (apt-get install chromium chromium-driver)')
    d = cs.open_browser()
    yield d
    d.quit()

@pytest.fixture(scope='session')
def base(site):
    with cs.serve(site) as url: yield url

def test_site_notebooks_order(bs, tmp_path):
    "Numbered notebooks in name order after index, appendices included; private ones left out."
    for n in ['index', '_private', '10_appendix_b', '01_b', '00_a', '1a_appendix_c', '02_c']:
        (tmp_path/f'{n}.ipynb').write_text('{}')
    assert [p.stem for p in bs.site_notebooks(tmp_path)] == ['index', '00_a', '01_b', '02_c', '10_appendix_b', '1a_appendix_c']

def _nb(cells, tmp_path):
    nb = {'cells': [{'cell_type': t, 'metadata': {}, 'source': s, **({'outputs': o, 'execution_count': None} if t == 'code' else {})}
                    for t, s, o in cells], 'metadata': {}, 'nbformat': 4, 'nbformat_minor': 5}
    p = tmp_path/'02_x.ipynb'
    p.write_text(json.dumps(nb))
    return p

def test_prepare_nb_directives(bs, tmp_path):
    "nbdev's directives are applied as nbdev_docs applies them; exported names get their show_doc."
    out = [{'output_type': 'stream', 'name': 'stdout', 'text': ['shown\n']}]
    p = _nb([('markdown', '# X\n> summary [a](nbs/01_x.ipynb), [b](docs/reference.md#tests), [c](../nbs/02_y.ipynb)', None),
             ('code', '#| default_exp bce', []),
             ('code', '#| hide\nsecret = 1', []),
             ('code', '#| export\ndef binary_cross_entropy(inputs, targets): pass', []),
             ('code', '#| echo: false\nprint("shown")', out),
             ('code', '#| output: false\nx = 1\nx', out),
             ('code', '#| include: false\ngone = 2', [])], tmp_path)
    nb, mod = bs.prepare_nb(p)
    assert mod == 'bce'
    assert nb['cells'][0]['source'].endswith('[a](01_x.ipynb), [b](reference.md#tests), [c](02_y.ipynb)')  # within the site
    cells = nb['cells']
    srcs = '\n'.join(c['source'] for c in cells)
    assert 'secret' not in srcs and 'gone' not in srcs and '#|' not in srcs
    assert 'def binary_cross_entropy(inputs, targets): pass' not in srcs   # exported source: hidden, its doc shown
    doc = [c for c in cells if c['cell_type'] == 'markdown' and '### binary_cross_entropy' in c['source']]
    assert len(doc) == 1
    assert '# activations (logits), any shape' in doc[0]['source']            # docments, from the real module
    assert 'Binary cross-entropy on logits' in doc[0]['source']             # docstring
    echo, outp = [c for c in cells if c['cell_type'] == 'code']
    assert echo['metadata']['tags'] == ['remove-input'] and echo['outputs'] == out
    assert outp['metadata']['tags'] == ['remove-output'] and outp['source'] == 'x = 1\nx'

def _numbered(): return [p.stem for p in sorted((ROOT/'nbs').glob('[0-9]*.ipynb'))]

def test_page_per_notebook(site, driver, base):
    "A page per notebook, in the sidebar in numbered order, then the reference pages, chained by prev/next links."
    names = _numbered()
    for n in ['index', 'api', 'reference', 'search'] + names: assert (site/f'{n}.html').is_file(), n
    cs.load(driver, base + 'index.html')
    side = driver.execute_script("return [...document.querySelectorAll('.sidebar-tree a.reference')].map(a => a.getAttribute('href'))")
    assert side == [f'{n}.html' for n in names] + ['api.html', 'reference.html']
    chain = ['index'] + names + ['api', 'reference']
    for prev, page, nxt in zip(chain, chain[1:], chain[2:]):
        cs.load(driver, base + f'{page}.html')
        got = driver.execute_script("return ['a.prev-page', 'a.next-page'].map(s => document.querySelector(s)?.getAttribute('href'))")
        assert got == [f'{prev}.html', f'{nxt}.html'], page

def test_every_page_in_browser(site, driver, base):
    "Every page loads without console errors, every image decodes, every internal link resolves."
    assert cs.check_site(site, driver, base) == []
    shots = ROOT/'_site_check'
    cs.screenshot(driver, base + 'index.html', shots/'home.png')
    cs.screenshot(driver, base + f'{_numbered()[4]}.html', shots/'chapter.png')
    assert (shots/'home.png').stat().st_size > 10_000 and (shots/'chapter.png').stat().st_size > 10_000

def test_figures_and_hidden_cells(site, driver, base):
    "Each chapter shows its PNG figures and typeset math; hidden cells and directive comments do not appear."
    for n in _numbered():
        nb = json.loads((ROOT/'nbs'/f'{n}.ipynb').read_text())
        n_png = sum('image/png' in o.get('data', {}) for c in nb['cells'] for o in c.get('outputs', []))
        cs.load(driver, base + f'{n}.html')
        imgs = driver.execute_script("return [...document.querySelectorAll('article img')].filter(i => i.naturalWidth > 0).length")
        assert imgs >= n_png, n
        text = driver.execute_script('return document.querySelector("article").innerText')
        assert '#|' not in text and 'from nbdev.showdoc import' not in text, n
        assert '\\(' not in text, f'{n}: math left as TeX source (MathJax did not run)'

def test_api_reference(site, driver, base):
    "The API page documents every exported name: heading, signature with docments, docstring."
    cs.load(driver, base + 'api.html')
    heads = driver.execute_script("return [...document.querySelectorAll('article h3')].map(h => h.firstChild.textContent.trim())")
    import multilabel_regress
    names = []
    for m in sorted(multilabel_regress._modidx.d['syms']):
        names += importlib.import_module(m).__all__
    assert sorted(heads) == sorted(names)
    text = driver.execute_script('return document.querySelector("article").innerText')
    assert '# an image `frame_XXXXX_rgb.jpg`' in text                        # a docment of get_ctr
    assert "Project the head centre" in text                                   # its docstring

def test_search_finds_exported_name(site, driver, base):
    "The site's search page finds `get_ctr` in the API reference and in its chapter."
    hits = cs.search(driver, base, 'get_ctr')
    assert 'api.html#get-ctr' in hits
    assert any(h.startswith('04_biwi_data.html') for h in hits)

def test_checker_reports_damage(site, driver, tmp_path):
    "On a copy with a broken image, a link to a missing page and a missing anchor, the checker reports each."
    bad = tmp_path/'site'
    shutil.copytree(site, bad)
    page = bad/f'{_numbered()[0]}.html'
    html = page.read_text()
    img = next(bad.glob('_images/*.png'))
    assert f'_images/{img.name}' in html or any(f'_images/{img.name}' in p.read_text() for p in bad.glob('*.html'))
    img.write_bytes(b'not a png')
    html = html.replace('href="index.html"', 'href="no_such_page.html"', 1)
    html = html.replace('href="api.html"', 'href="api.html#no-such-anchor"', 1)
    page.write_text(html)
    with cs.serve(bad) as url: probs = cs.check_site(bad, driver, url)
    assert any('image not decoded' in p and img.name in p for p in probs)
    assert any(p.startswith(page.name) and 'no_such_page.html: missing file' in p for p in probs)
    assert any(p.startswith(page.name) and 'missing anchor #no-such-anchor' in p for p in probs)

class _Page(HTMLParser):
    "The links of a page's main text (its `<article>`), and the text of each row of its tables."
    def __init__(self):
        super().__init__(); self.depth, self.links, self.rows = 0, [], []
    def handle_starttag(self, tag, attrs):
        if tag == 'article': self.depth += 1
        if not self.depth: return
        if tag == 'a' and dict(attrs).get('href'): self.links.append(dict(attrs)['href'])
        if tag == 'tr': self.rows.append([])
        if tag in ('td', 'th') and self.rows: self.rows[-1].append('')
    def handle_endtag(self, tag):
        if tag == 'article': self.depth -= 1
    def handle_data(self, data):
        if self.depth and self.rows and self.rows[-1]: self.rows[-1][-1] += data

def _page(path:Path)->_Page:
    p = _Page(); p.feed(path.read_text()); return p

def test_reference_page(site):
    "docs/reference.md is a page: the home page links to it, it renders the table of bad inputs, its links resolve."
    assert 'reference.html' in _page(site/'index.html').links          # from the README's text, not only the sidebar
    ref = _page(site/'reference.html')
    md = (ROOT/'docs'/'reference.md').read_text()
    table = md.split('<!-- bad-inputs -->')[1].split('<!-- /bad-inputs -->')[0].strip().splitlines()[2:]
    rows = [[c.strip() for c in r] for r in ref.rows]
    assert ['input', 'exit', 'what mlr says (on stderr)'] in rows
    assert len([r for r in rows if len(r) == 3 and r[1] in ('1', '2')]) == len(table) == 21
    assert ['mlr trian', '2', "usage, then invalid choice: 'trian'"] in rows
    local = [h.split('#')[0] for h in ref.links if not re.match(r'[a-z]+:|#', h)]
    assert local and all((site/h).is_file() for h in local), [h for h in local if not (site/h).is_file()]
    assert {'09_models.html', '13_distributed.html'} <= set(local)   # `../nbs/x.ipynb` became the notebook's page
