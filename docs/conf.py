# Sphinx configuration for the documentation site built by `python tools/build_site.py`.
# The pages are the notebooks in nbs/, prepared by tools/build_site.py (nbdev directives applied,
# API docs inserted) and rendered by MyST-NB from their committed outputs: nothing is executed.
import multilabel_regress

project = 'multilabel_regress'
author = 'multilabel_regress developers'
copyright = '2026 onwards, multilabel_regress developers'
release = version = multilabel_regress.__version__

extensions = ['myst_nb']
nb_execution_mode = 'off'            # render the outputs committed in the notebooks, as nbdev_docs does
nb_output_stderr = 'remove'          # progress bars and warnings are not part of the chapter
nb_merge_streams = True
nb_render_markdown_format = 'myst'   # show_doc's markdown outputs hold headings and code blocks
myst_enable_extensions = ['colon_fence', 'dollarmath', 'attrs_inline']
myst_heading_anchors = 3
suppress_warnings = ['myst.header', 'mystnb.unknown_mime_type', 'misc.highlighting_failure']

root_doc = 'index'
exclude_patterns = ['_build', '**.ipynb_checkpoints']
html_theme = 'furo'                  # sidebar, prev/next links and a search box; no CDN: works offline
html_title = 'multilabel_regress'
html_static_path = []
# MathJax from the jupyter-server-mathjax wheel, copied into _static/mathjax by tools/build_site.py:
# Sphinx's default loads it from a CDN, which an offline reader (and the browser test) cannot reach
mathjax_path = 'mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full'
mathjax2_config = {'tex2jax': {'inlineMath': [['\\(', '\\)']], 'displayMath': [['\\[', '\\]']],
                               'processEscapes': False, 'processEnvironments': False,
                               'processClass': 'math|output_area'},   # Sphinx marks <body> tex2jax_ignore
                   # the wheel ships only the STIX-Web fonts, as the Jupyter notebook configures them
                   'HTML-CSS': {'availableFonts': [], 'webFont': 'STIX-Web', 'imageFont': None}}
html_copy_source = False             # no _sources/ copy of each notebook (they are large)
html_show_sourcelink = False
