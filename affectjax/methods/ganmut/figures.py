"""GANmut figures: the learned conditional space (Figures 1 and 3), interpolation strips (Figure 4)
and a gamut grid of one identity across the space."""
from __future__ import annotations

import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from affectjax.affect.emotions import EMOTIONS  # noqa: E402

COLORS = ["#9e9e9e", "#f4c20d", "#3c78d8", "#ff6d01", "#8e44ad", "#27ae60", "#d62728", "#8c564b"]


def _img(a):
  return np.clip((np.asarray(a) + 1) / 2, 0, 1)


def _square_grid(n, flip=False):
  t = np.linspace(-1, 1, n)
  u, v = np.meshgrid(t, t[::-1] if flip else t)
  return u, v, np.stack([u.ravel(), v.ravel()], -1).astype(np.float32)


def space_map(params, src, config, space, path, gen, dprobs, n=31):
  """The emotion D_cls assigns to G(src, z) over the space, with the directions or modes."""
  u, v, z = _square_grid(n)
  p = dprobs(gen(np.repeat(src[None], len(z), 0), z))
  rgb = np.array([matplotlib.colors.to_rgb(COLORS[c]) for c in p.argmax(-1)])
  alpha = p.max(-1)
  canvas = (rgb * alpha[:, None] + (1 - alpha[:, None])).reshape(n, n, 3)
  if space.in_disc:
    canvas[(u ** 2 + v ** 2) > 1] = 1.0
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.imshow(canvas, origin="lower", extent=(-1, 1, -1, 1))
  if space.in_disc:
    ax.add_patch(plt.Circle((0, 0), 1, fill=False, color="k"))
  if space.neutral_radius:
    ax.add_patch(plt.Circle((0, 0), space.neutral_radius, fill=False, color="k", ls=":"))
  modes = space.modes(params)
  if modes is not None:  # GGANmut: one ellipse (1 std) per mode
    mus, covs = (np.asarray(a) for a in modes)
    for c in range(len(mus)):
      w, vec = np.linalg.eigh(covs[c])
      ang = np.degrees(np.arctan2(vec[1, 1], vec[0, 1]))
      ax.add_patch(matplotlib.patches.Ellipse(mus[c], 2 * np.sqrt(w[1]), 2 * np.sqrt(w[0]),
                                              angle=ang, fill=False, color=COLORS[c], lw=2))
      ax.text(*mus[c], EMOTIONS[c], ha="center", fontsize=8)
  else:  # GANmut: one arrow per learned direction
    for c, th in enumerate(np.asarray(space.directions(params)), start=1):
      ax.annotate("", (np.cos(th), np.sin(th)), (0, 0), arrowprops=dict(arrowstyle="->", lw=2,
                                                                          color=COLORS[c]))
      ax.text(1.08 * np.cos(th), 1.08 * np.sin(th), EMOTIONS[c], ha="center", fontsize=8)
  ax.set_xlim(-1.2, 1.2), ax.set_ylim(-1.2, 1.2)
  ax.set_title(f"{config.variant}: argmax D_cls(G(x, z)) (shade: confidence)")
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def strips(params, srcs, config, space, path, gen):
  """Neutral -> each emotion in 10 steps (Sec. 5.2), one block per source face."""
  nc = config.data.num_classes
  steps = np.linspace(0, 1, 11)
  rows = []
  for src in srcs:
    for c in range(1, nc):
      z = np.asarray(space.emotion_code(params, c, steps))
      imgs = gen(np.repeat(src[None], len(steps), 0), z)
      rows.append(np.concatenate([src] + list(imgs), 1))
  grid = np.concatenate(rows, 0)
  fig, ax = plt.subplots(figsize=(12, 12 * grid.shape[0] / grid.shape[1]))
  ax.imshow(_img(grid)), ax.axis("off")
  ax.set_title(f"{config.variant}: input | neutral -> " + ", ".join(EMOTIONS[1:nc]) + " (rows)")
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def gamut(params, src, config, space, path, gen, n=7):
  """One identity across the conditional space (one-hot spaces: each class code)."""
  if space.code_dim != 2:
    z = np.asarray(space.class_codes(params, np.arange(config.data.num_classes)))
    grid = np.concatenate([src] + list(gen(np.repeat(src[None], len(z), 0), z)), 1)
  else:
    _, _, z = _square_grid(n, flip=True)
    imgs = gen(np.repeat(src[None], len(z), 0), z)
    if space.in_disc:
      imgs[np.sum(z ** 2, -1) > 1.0 + 1e-6] = 1.0
    s = imgs.shape[1]
    grid = imgs.reshape(n, n, s, s, 3).transpose(0, 2, 1, 3, 4).reshape(n * s, n * s, 3)
  fig, ax = plt.subplots(figsize=(6, 6 * grid.shape[0] / grid.shape[1]))
  ax.imshow(_img(grid)), ax.axis("off")
  ax.set_title(f"{config.variant}: gamut of one identity (x right, y up)")
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def all_figures(params, x, y, config, space, workdir, gen, dprobs):
  """space.png (2-D spaces), interpolation.png and gamut.png; gen(x, z) and dprobs(images) are
  host functions over whole arrays (evaluate.host_functions)."""
  neutral = np.flatnonzero(y == 0)
  src = x[neutral[0] if len(neutral) else 0]
  if space.code_dim == 2:
    space_map(params, src, config, space, os.path.join(workdir, "space.png"), gen, dprobs)
  strips(params, x[[0, len(x) // 2]], config, space, os.path.join(workdir, "interpolation.png"), gen)
  gamut(params, src, config, space, os.path.join(workdir, "gamut.png"), gen)
