"""Pretrain `xresnet_small`'s body offline: single-label classification of generated object kinds.

    python bench/pretrain_body.py                      # the shipped body: seed 0, 16,000 images, 4 epochs
    python bench/pretrain_body.py --out /tmp/body      # somewhere else (the shipped files stay as they are)
    python bench/pretrain_body.py --images 2000 --epochs 1   # a quick look

The task is unlike the chapter's: 64 kinds (8 shapes x 8 colour families), one object an image, drawn plain or with
one of five textures at random (dots, checks, stripes, rings, an outline: the texture says nothing about the kind),
on backgrounds of coloured noise, tiles, stripes or a flat colour, from seeds the samples never use. Four shapes are
like the samples' (disc, box, triangle, moon); the colour families, textures and backgrounds are not. It is not
ImageNet: the body has seen edges, textures, colours and shapes, never a photograph.
The same seed, torch version and thread count give the same weights.
It writes `xresnet_small_body.safetensors` (the body, fp16) and `xresnet_small_body.md` (its card) to --out,
and prints the time it took and the sha256 that `archs.BODY_SHA256` must hold.
"""
import argparse, hashlib, math, time, os
from pathlib import Path
import numpy as np, torch
from torch import nn
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ('disc', 'box', 'triangle', 'pentagon', 'arrow', 'ell', 'tee', 'moon')
COLOURS = ('red', 'orange', 'yellow', 'green', 'cyan', 'blue', 'magenta', 'white')   # families: each a range of colours
TEXTURES = ('plain', 'dots', 'checks', 'hstripes', 'rings', 'outline')   # drawn at random: not part of the kind
KINDS = [(s, c) for s in SHAPES for c in COLOURS]   # 64 kinds; the samples draw 20, each one fixed colour
HUES = dict(red=0, orange=30, yellow=55, green=120, cyan=180, blue=225, magenta=295)   # degrees
SIDE = 64                                            # pretraining images are 64x64
IMAGENET = (torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225]))  # as the chapter's loaders


def _poly(shape, r, a, cx, cy):
    "The corners of `shape`, radius `r`, turned by `a`, centred at (`cx`, `cy`)."
    pts = dict(box=[(1, 1), (-1, 1), (-1, -1), (1, -1)], triangle=[(0, -1), (.95, .8), (-.95, .8)],
               pentagon=[(math.cos(t), math.sin(t)) for t in np.arange(5) * 2 * math.pi / 5],
               arrow=[(-1, -.3), (.2, -.3), (.2, -.8), (1, 0), (.2, .8), (.2, .3), (-1, .3)],
               ell=[(-.8, -1), (-.2, -1), (-.2, .4), (.8, .4), (.8, 1), (-.8, 1)],
               tee=[(-1, -1), (1, -1), (1, -.4), (.3, -.4), (.3, 1), (-.3, 1), (-.3, -.4), (-1, -.4)])[shape]
    ca, sa = math.cos(a), math.sin(a)
    return [(cx + r * (x * ca - y * sa), cy + r * (x * sa + y * ca)) for x, y in pts]


def _background(rng, side):
    "Coloured noise, tiles, stripes or a flat colour with noise: none of them the samples' muted gradients."
    kind = rng.integers(4)
    if kind == 3:
        im = np.zeros((side, side, 3)) + rng.uniform(40, 215, 3) + rng.normal(0, 10, (side, side, 3))
        return Image.fromarray(np.clip(im, 0, 255).astype(np.uint8))
    if kind == 0:
        small = rng.uniform(0, 255, (side // 8, side // 8, 3)).astype(np.uint8)
        return Image.fromarray(small).resize((side, side), Image.BILINEAR)
    im = np.zeros((side, side, 3)) + rng.uniform(40, 215, 3)
    c2 = rng.uniform(40, 215, 3)
    p = int(rng.integers(4, 16))
    yy, xx = np.mgrid[:side, :side]
    sel = ((xx // p + yy // p) % 2 == 0) if kind == 1 else ((xx + yy * rng.uniform(-1, 1)) // p % 2 == 0)
    im[sel] = c2
    im += rng.normal(0, 8, im.shape)
    return Image.fromarray(np.clip(im, 0, 255).astype(np.uint8))


def colour(rng, family):
    "An RGB colour of `family`: a hue within 12 degrees of the family's, saturation and value at random; or a white."
    if family == 'white': return tuple(int(v) for v in rng.integers(215, 256, 3))
    h = (HUES[family] + rng.uniform(-12, 12)) % 360 / 60
    sat, val = rng.uniform(.55, 1), rng.uniform(.55, 1)
    x = sat * (1 - abs(h % 2 - 1))
    rgb = [(sat, x, 0), (x, sat, 0), (0, sat, x), (0, x, sat), (x, 0, sat), (sat, 0, x)][int(h) % 6]
    return tuple(int(255 * val * (1 - sat + v)) for v in rgb)


def draw(rng, kind, side=SIDE):
    "One image (uint8 [side, side, 3]): one object of `KINDS[kind]`, a texture, size, place and angle at random."
    shape, family = KINDS[kind]
    tex = TEXTURES[rng.integers(len(TEXTURES))]
    img = _background(rng, side)
    r = rng.uniform(.14, .36) * side
    cx, cy = rng.uniform(r, side - r, 2)
    a = rng.uniform(0, 2 * math.pi)
    col = colour(rng, family)
    dark = tuple(int(v * .4) for v in col)
    m = Image.new('L', (side, side), 0)
    d = ImageDraw.Draw(m)
    box = [cx - r, cy - r, cx + r, cy + r]
    if shape == 'disc': d.ellipse(box, fill=255)
    elif shape == 'moon':
        d.ellipse(box, fill=255)
        o = .55 * r
        d.ellipse([cx - r + o * math.cos(a), cy - r + o * math.sin(a), cx + r + o * math.cos(a),
                   cy + r + o * math.sin(a)], fill=0)
    else: d.polygon(_poly(shape, r, a, cx, cy), fill=255)
    fill = Image.new('RGB', (side, side), col)
    fd = ImageDraw.Draw(fill)
    p = max(3, int(r // 3))
    if tex == 'dots':
        for y in range(0, side, p):
            for x in range((y // p % 2) * p // 2, side, p): fd.ellipse([x, y, x + p / 2.5, y + p / 2.5], fill=dark)
    elif tex == 'checks':
        for y in range(0, side, p):
            for x in range((y // p % 2) * p, side, 2 * p): fd.rectangle([x, y, x + p - 1, y + p - 1], fill=dark)
    elif tex == 'hstripes':
        for y in range(0, side, p): fd.rectangle([0, y, side, y + p // 2 - 1], fill=dark)
    elif tex == 'rings':
        for k in range(int(2 * r), 0, -p): fd.ellipse([cx - k, cy - k, cx + k, cy + k], outline=dark, width=max(1, p // 3))
    elif tex == 'outline':
        inner = m.filter(ImageFilter.MinFilter(2 * max(1, p // 2) + 1))
        fill.paste(img, (0, 0), inner)   # only a rim of colour: the background shows inside
    img.paste(fill, (0, 0), m)
    return np.asarray(img)


def make_images(n, seed):
    "`n` images and their kinds, from `seed` (each image its own stream: any order gives the same set)."
    ys = np.random.default_rng([seed, 1]).integers(len(KINDS), size=n)
    xs = np.stack([draw(np.random.default_rng([seed, 2, i]), int(k)) for i, k in enumerate(ys)])
    return torch.from_numpy(xs).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(ys)


def batches(x, y, bs, g, train):
    "Normalised float batches of `x`, shuffled with `g` and flipped at random for training."
    idx = torch.randperm(len(x), generator=g) if train else torch.arange(len(x))
    m, s = IMAGENET
    for i in range(0, len(x) - (bs - 1 if train else 0), bs):
        j = idx[i:i + bs]
        xb = (x[j].float() / 255 - m[:, None, None]) / s[:, None, None]
        if train:
            flip = torch.rand(len(j), generator=g) < .5
            xb[flip] = xb[flip].flip(-1)
        yield xb, y[j]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--images', type=int, default=16000, help='training images (a tenth more are drawn to validate)')
    p.add_argument('--epochs', type=int, default=4)
    p.add_argument('--lr', type=float, default=4e-3)
    p.add_argument('--bs', type=int, default=64)
    p.add_argument('--seed', type=int, default=0, help='the images come from seed 1000+SEED (the samples use 0)')
    p.add_argument('--out', default=str(Path(__file__).resolve().parents[1] / 'multilabel_regress' / 'weights'))
    a = p.parse_args()
    from multilabel_regress.archs import xresnet_small, BODY_FILE, body_state
    t0 = time.time()
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    x, y = make_images(a.images, 1000 + a.seed)
    vx, vy = make_images(a.images // 10, 2000 + a.seed)
    t_draw = time.time() - t0
    print(f'{len(x)} training and {len(vx)} validation images of {len(KINDS)} kinds drawn in {t_draw:.0f} s', flush=True)
    model = xresnet_small(n_out=len(KINDS))
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=1e-2)
    steps = a.epochs * (len(x) // a.bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, a.lr, total_steps=steps, pct_start=.25)
    g, loss_f = torch.Generator().manual_seed(a.seed), nn.CrossEntropyLoss()
    for ep in range(a.epochs):
        t = time.time()
        model.train()
        tot = n = 0
        for xb, yb in batches(x, y, a.bs, g, True):
            loss = loss_f(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            tot, n = tot + loss.item() * len(yb), n + len(yb)
        model.eval()
        with torch.no_grad():
            acc = torch.cat([(model(xb).argmax(1) == yb) for xb, yb in batches(vx, vy, 256, g, False)]).float().mean()
        print(f'epoch {ep}: train loss {tot / n:.4f}, valid accuracy {float(acc):.4f} ({len(KINDS)} kinds), '
              f'{time.time() - t:.0f} s', flush=True)
    secs = time.time() - t0
    from safetensors.torch import save_file
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    f = out / BODY_FILE
    tmp = f.with_suffix('.tmp')
    save_file(body_state(model), str(tmp), metadata=dict(arch='xresnet_small', task=f'{len(KINDS)}-kind shape and colour classification',
                                                         seed=str(a.seed)))
    os.replace(tmp, f)
    sha = hashlib.sha256(f.read_bytes()).hexdigest()
    card = f"""# xresnet_small body, pretrained on generated shapes

- **What**: the body (every layer before the pooling) of `archs.xresnet_small`, fp16, safetensors ({f.stat().st_size/1e6:.1f} MB).
- **Task**: single-label classification of 64 generated object kinds (8 shapes x 8 colour families: {', '.join(SHAPES)};
  {', '.join(COLOURS)}), one object an image, its texture ({', '.join(TEXTURES)}), shade, size, place and angle
  at random, on coloured noise, tiles, stripes or a flat colour; 64x64 pixels, ImageNet's mean and standard deviation (as the chapter's loaders normalise).
- **Data**: {len(x)} training images from seed {1000 + a.seed}, {len(vx)} validation images from seed {2000 + a.seed};
  four shapes are like the samples' (disc, box, triangle, moon), but the colours (families of shades here, one
  fixed colour per class there), the textures and the backgrounds are not, nor are the seeds (the samples' images
  come from seed 0).
- **Training**: {a.epochs} epochs, AdamW, one cycle to {a.lr:g}, batch {a.bs}, random flips;
  valid accuracy {float(acc):.4f} ({len(KINDS)} kinds, chance {1/len(KINDS):.3f}); {secs:.0f} s on {torch.get_num_threads()} CPU threads
  (`python bench/pretrain_body.py --seed {a.seed}`; the cores were shared with other jobs: a quiet machine is faster;
  not measured on a GPU).
- **sha256**: `{sha}` (checked before loading: `archs.BODY_SHA256`).
- **Not ImageNet**: the body has never seen a photograph. It gives the sample's small models a start on edges,
  textures and shapes; on the real data the ResNets start from torchvision's ImageNet weights.
"""
    (out / 'xresnet_small_body.md').write_text(card)
    print(f'wrote {f} ({f.stat().st_size/1e6:.2f} MB) and its card in {secs:.0f} s on {torch.get_num_threads()} threads')
    print(f'sha256 {sha}')


if __name__ == '__main__': main()
