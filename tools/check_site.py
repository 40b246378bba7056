"""Check the built documentation site in a real headless browser (Debian's `chromium` + `chromedriver`).

`python tools/check_site.py [_site]` serves the site on localhost (as a web host would; MathJax 2
cannot load its fonts from file:// in Chromium), opens every page and prints what is
wrong: a console error, an image the browser could not decode, a link or resource that points to
a missing file or a missing anchor. It also writes screenshots to `_site_check/`. The same
functions run in tests/test_site.py.
"""
import shutil, sys, threading, time
from contextlib import contextmanager
from functools import lru_cache, partial
from http.server import ThreadingHTTPServer, SimpleHTTPRequestHandler
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit, unquote

ROOT = Path(__file__).resolve().parent.parent

def browser_paths():
    "Paths of chromium and chromedriver, or None where one is missing."
    b = shutil.which('chromium') or shutil.which('chromium-browser') or shutil.which('google-chrome')
    d = shutil.which('chromedriver')
    return (b, d) if b and d else None

def open_browser(width=1280, height=1000):
    "A headless Chromium driven by selenium, with the system chromedriver (no download)."
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    b, d = browser_paths()
    o = webdriver.ChromeOptions()
    o.binary_location = b
    for a in ('--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu',
              f'--window-size={width},{height}'):
        o.add_argument(a)
    o.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    return webdriver.Chrome(options=o, service=Service(executable_path=d))

class _Ids(HTMLParser):
    def __init__(self):
        super().__init__(); self.ids = set()
    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ('id', 'name') and v: self.ids.add(v)

@lru_cache(maxsize=None)
def page_ids(path:Path)->frozenset:
    "The `id`s (and `name`s) an HTML file defines: the anchors a link may point to."
    p = _Ids(); p.feed(path.read_text(errors='replace'))
    return frozenset(p.ids)

class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

@contextmanager
def serve(site:Path):
    "Serve `site` on a free localhost port for the duration of the block; yields its base URL."
    srv = ThreadingHTTPServer(('127.0.0.1', 0), partial(_Quiet, directory=str(site)))
    t = threading.Thread(target=srv.serve_forever, daemon=True); t.start()
    try: yield f'http://127.0.0.1:{srv.server_port}/'
    finally: srv.shutdown(); srv.server_close(); t.join()

def _broken_ref(url:str, site:Path, base:str):
    "Why `url` (absolute, as the browser resolved it) does not resolve inside `site` served at `base`, or None."
    u = urlsplit(url)
    if u.scheme in ('data', 'mailto', 'javascript'): return None
    if not url.startswith(base): return None if u.scheme in ('http', 'https') else 'outside the site'  # external: not checked offline
    p = site/unquote(urlsplit(url[len(base):]).path)
    if p.is_dir(): p = p/'index.html'
    if not p.is_file(): return 'missing file'
    if u.fragment and p.suffix == '.html' and unquote(u.fragment) not in page_ids(p): return f'missing anchor #{u.fragment}'
    return None

_JS_REFS = """return [].concat(
  [...document.querySelectorAll('a[href]')].map(e => ['link', e.href]),
  [...document.querySelectorAll('link[href]')].map(e => ['resource', e.href]),
  [...document.querySelectorAll('script[src]')].map(e => ['script', e.src]),
  [...document.images].map(e => ['img', e.src]))"""
_JS_IMGS = "return [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.src)"

def _benign(msg:str)->bool:
    "Console errors that are not the site's: Chromium's own favicon request, MathJax 2's font probe."
    # MathJax 2 (HTML-CSS output) tests web-font loading with an `about:blank` font; Chromium refuses
    # it with an error although the fonts then load and the math renders
    return '/favicon.ico ' in msg or "font at 'about:blank'" in msg or msg.startswith('about:blank ')

def load(driver, url:str, timeout=30):
    "Open `url` and wait until it (not the previous page) has loaded and MathJax has typeset it."
    driver.get(url)
    _wait_loaded(driver, url, timeout)

def _wait_loaded(driver, url, timeout=30):
    t0 = time.time()
    while driver.execute_script('return document.URL + " " + document.readyState') != f'{url} complete':
        if time.time() - t0 > timeout: raise TimeoutError(driver.current_url)
        time.sleep(0.05)
    # MathJax typesets after the load event: wait for its queue, so that its errors show up too
    driver.set_script_timeout(timeout)
    driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "if (window.MathJax && MathJax.Hub) MathJax.Hub.Queue(() => done(true)); else done(false);")

def check_page(driver, page:Path, site:Path, base:str)->list:
    "Problems on one page: console errors, undecoded images, links and resources that do not resolve."
    load(driver, base + page.relative_to(site).as_posix())
    rel = page.relative_to(site)
    res = [f'{rel}: console error: {e["message"]}' for e in driver.get_log('browser')
           if e['level'] == 'SEVERE' and not _benign(e['message'])]
    res += [f'{rel}: image not decoded: {src}' for src in driver.execute_script(_JS_IMGS)]
    seen = set()
    for kind, url in driver.execute_script(_JS_REFS):
        if (kind, url) in seen: continue
        seen.add((kind, url))
        why = _broken_ref(url, site, base)
        if why: res.append(f'{rel}: {kind} {url}: {why}')
    return res

def check_site(site:Path, driver, base:str)->list:
    "Problems on every HTML page of `site`, served at `base` (an empty list when all is well)."
    site = Path(site)
    page_ids.cache_clear()
    return [p for page in sorted(site.rglob('*.html')) for p in check_page(driver, page, site, base)]

def search(driver, base:str, term:str, timeout=30)->list:
    "The pages the site's own search page (served at `base`) lists for `term`, as relative URLs."
    load(driver, base + f'search.html?q={term}')
    t0 = time.time()
    while time.time() - t0 < timeout:
        links = driver.execute_script(
            "return [...document.querySelectorAll('#search-results ul.search li a')].map(a => a.getAttribute('href'))")
        done = driver.execute_script(
            "const s = document.querySelector('#search-results p.search-summary'); return s ? s.textContent : ''")
        if links or done: return links
        time.sleep(0.1)
    raise TimeoutError(f'search for {term!r} did not finish in {timeout}s')

def screenshot(driver, url:str, dest:Path):
    "Save a screenshot of the page at `url` (the whole page height, up to 4000 px) as `dest`."
    load(driver, url)
    w, h, frame = driver.execute_script('const d = document.documentElement;'
        'return [window.outerWidth, d.scrollHeight, window.outerHeight - window.innerHeight]')
    driver.set_window_size(w, min(4000, h) + frame)   # the window holds the whole page
    dest.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(dest))
    driver.set_window_size(1280, 1000)

if __name__ == '__main__':
    site = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT/'_site')
    d = open_browser()
    try:
        with serve(site) as base:
            probs = check_site(site, d, base)
            screenshot(d, base + 'index.html', ROOT/'_site_check'/'home.png')
    finally: d.quit()
    print('\n'.join(probs) or f'{site}: every page loads, images decode, internal links resolve')
    sys.exit(1 if probs else 0)
