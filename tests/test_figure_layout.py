"""The report figures are readable: drawn as `mlr evaluate --report`, `keypoint_report` and the notebooks draw them (at the
figure's own 100 dpi and at the notebooks' 80), no panel's text (title, axis labels, tick labels, colour bar) runs into
another panel's or off the canvas. Each figure is made from the generated samples' real files."""
import numpy as np, pytest, torch
from fastai.vision.all import get_image_files
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from multilabel_regress.keypoint import plot_worst_frames, plot_error_by_position, plot_angle_errors, plot_worst_poses
from multilabel_regress.multilabel import (plot_class_scores, plot_confusion, plot_multilabel_top_losses, plot_false_positives,
                                           multilabel_confusion, false_positives_given)
from multilabel_regress.samples import VOC_CLASSES

def layout_faults(fig:Figure, dpi:float)->list:
    "Where the panels' boxes with their text (`Axes.get_tightbbox`) and the figure's own texts cross each other or leave the canvas, drawn at `dpi`: a list of descriptions."
    fig.set_dpi(dpi); canvas = FigureCanvasAgg(fig); canvas.draw(); r = canvas.get_renderer()
    W,H = canvas.get_width_height(); tol = 1.0  # pixels
    boxes = [(f'panel {k}', ax.get_tightbbox(r)) for k,ax in enumerate(fig.axes) if ax.get_visible()]
    boxes += [(f'text {k} ({t.get_text()[:20]!r})', t.get_window_extent(r)) for k,t in enumerate(fig.texts) if t.get_visible() and t.get_text()]
    out = [f"{k} leaves the canvas: {b.bounds} in {W}x{H}" for k,b in boxes
           if b.x0 < -tol or b.y0 < -tol or b.x1 > W+tol or b.y1 > H+tol]
    for i,(k,a) in enumerate(boxes):
        for l,b in boxes[i+1:]:
            w,h = min(a.x1, b.x1)-max(a.x0, b.x0), min(a.y1, b.y1)-max(a.y0, b.y0)
            if w > tol and h > tol: out.append(f"{k} and {l} overlap by {w:.0f}x{h:.0f} px")
    return out

def test_layout_faults_sees_an_overlap():
    "The check itself: two panels whose titles and labels are crammed into a small figure are reported, a roomy figure is not."
    for size,bad in (((3, 2.2), True), ((8, 6), False)):
        fig = Figure(figsize=size, dpi=100); axs = fig.subplots(2, 1)
        for ax in axs: ax.set_title('a title of some length\nover two lines'); ax.set_xlabel('an axis label\nover two lines\nand a third')
        if not bad: fig.set_layout_engine('constrained')
        assert bool(layout_faults(fig, 100)) == bad, layout_faults(fig, 100)
    fig = Figure(figsize=(4, 3), dpi=100); ax = fig.subplots(); ax.set_title('x'); ax.set_position([0.1, 0.1, 0.8, 0.95])  # the title above the top
    assert any('leaves the canvas' in s for s in layout_faults(fig, 100))
    fig = Figure(figsize=(4, 3), dpi=100, layout='constrained'); fig.subplots(); fig.text(0.5, 0.5, 'over the panel')  # a figure text counts too
    assert any(s.startswith('panel 0 and text 0') for s in layout_faults(fig, 100)), layout_faults(fig, 100)

@pytest.fixture(scope='module')
def frames(biwi):
    "Six frames of the held-out person, with true centres and angles drawn near the sample's, and predictions off by a few units."
    fs = sorted(get_image_files(biwi/'13'))[:3] + sorted(get_image_files(biwi/'07'))[:3]
    g = torch.Generator().manual_seed(0)
    ctrs = torch.tensor([[340., 280.]]*6) + torch.randn(6, 2, generator=g)*20
    angles = torch.randn(6, 3, generator=g)*30
    return fs, ctrs, ctrs + torch.randn(6, 2, generator=g)*12, angles, angles + torch.randn(6, 3, generator=g)*20

@pytest.fixture(scope='module')
def labelled(pascal):
    "Twelve PASCAL sample images, random probabilities and targets over the 20 classes (every class has a positive)."
    fs = sorted(get_image_files(pascal/'train'))[:12]
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(12, 20, generator=g); targs = (torch.rand(12, 20, generator=g) < .2).float()
    targs[torch.arange(12).repeat(2)[:20], torch.arange(20)] = 1.
    return fs, probs, targs

@pytest.mark.parametrize('dpi', [100, 80])
@pytest.mark.parametrize('name', ['worst_frames', 'error_by_position', 'angle_errors', 'worst_poses'])
def test_keypoint_figures_readable(frames, name, dpi):
    fs,ctrs,pctr,angles,pang = frames
    fig = dict(worst_frames=lambda: plot_worst_frames(fs, pctr, ctrs),
               error_by_position=lambda: plot_error_by_position(fs, ctrs, (pctr-ctrs).norm(dim=1)),
               angle_errors=lambda: plot_angle_errors(pang, angles),
               worst_poses=lambda: plot_worst_poses(fs, pang, angles, ctrs))[name]()
    assert layout_faults(fig, dpi) == []

@pytest.mark.parametrize('dpi', [100, 80])
@pytest.mark.parametrize('name', ['class_scores', 'confusion', 'top_losses', 'false_positives'])
def test_multilabel_figures_readable(labelled, name, dpi):
    fs,probs,targs = labelled; vocab = list(VOC_CLASSES)
    fig = dict(class_scores=lambda: plot_class_scores(probs, targs, vocab),
               confusion=lambda: plot_confusion(multilabel_confusion(probs, targs, 0.5), vocab),
               top_losses=lambda: plot_multilabel_top_losses(fs, probs, targs, vocab, 0.5, k=6),
               false_positives=lambda: plot_false_positives(false_positives_given(probs, targs, 0.5), targs, vocab))[name]()
    assert layout_faults(fig, dpi) == []

@pytest.mark.parametrize('seed', range(5))
def test_top_loss_text_keeps_every_true_class(seed):
    "Under a top-loss image: lines no wider than asked, at most `most` class lines, every true class kept (a missed class is the point), the rest counted."
    from multilabel_regress.multilabel import _decided
    g = np.random.default_rng(seed); c = 20; vocab = list(VOC_CLASSES)
    p = torch.tensor(g.random(c), dtype=torch.float32); t = torch.tensor(g.random(c) < .3, dtype=torch.float32); th = [0.3]*c
    lines = _decided(p, t, th, vocab, width=46, most=6)
    shown = [l.split(':')[0] for l in lines if ' > ' in l or ' <= ' in l]
    involved = [v for j,v in enumerate(vocab) if t[j] or p[j] > th[j]]
    assert all(len(l) <= 46 for l in lines), lines
    assert len(shown) == min(6, len(involved)) and set(shown) <= set(involved)
    trues = sorted([v for j,v in enumerate(vocab) if t[j]], key=lambda v: -float(p[vocab.index(v)]))
    assert set(trues[:6]) <= set(shown)  # the true classes first (all of them when they fit, else the most probable)
    assert shown == sorted(shown, key=lambda v: -float(p[vocab.index(v)]))  # in the order of probability
    more = [l for l in lines if l.startswith('... and')]
    assert (more == []) == (len(involved) <= 6) and (not more or more[0].split()[2] == str(len(involved)-len(shown)))
    listed = ' '.join(l for l in lines if not (' > ' in l or ' <= ' in l or l.startswith('...')))
    assert all(v in listed for v in involved)  # the 'true:' and 'predicted:' lines name every class, wrapped

@pytest.mark.parametrize('dpi', [100, 80])
@pytest.mark.parametrize('name', ['sweep', 'pr', 'points'])
def test_chapter_report_figures_readable(labelled, frames, name, dpi):
    "`mlr chapter`'s own figures (threshold_sweep.png, pr_curves.png, keypoints.png)."
    from multilabel_regress.recipes import _sweep_figure, _pr_figure, _points_figure
    _,probs,targs = labelled; fs,ctrs,pctr,_,_ = frames
    fig = dict(sweep=lambda: _sweep_figure(probs, targs), pr=lambda: _pr_figure(probs, targs, list(VOC_CLASSES)),
               points=lambda: _points_figure(fs, pctr, ctrs))[name]()
    assert layout_faults(fig, dpi) == []
