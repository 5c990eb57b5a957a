"""GANmut figures: the learned conditional space (Figures 1 and 3), interpolation strips (Figure 4)
and a gamut grid of one identity across the space."""
from __future__ import annotations

import os

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from affectjax.affect import conditional as cs  # noqa: E402
from affectjax.data.example import EMOTIONS  # noqa: E402

COLORS = ["#9e9e9e", "#f4c20d", "#3c78d8", "#ff6d01", "#8e44ad", "#27ae60", "#d62728", "#8c564b"]


def _img(a):
  return np.clip((np.asarray(a) + 1) / 2, 0, 1)


def _gen(generate, g_net, x, codes, bs=64):
  out = [np.asarray(generate(g_net, x[i:i + bs], np.asarray(codes[i:i + bs], np.float32)))
         for i in range(0, len(x), bs)]
  return np.concatenate(out)


def space_map(state, src, config, path, generate, d_probs, n=31):
  """The emotion D_cls assigns to G(src, z) over the space, with the directions or modes."""
  kind, nc = config.model.space, config.data.num_classes
  t = np.linspace(-1, 1, n)
  u, v = np.meshgrid(t, t)
  z = np.stack([u.ravel(), v.ravel()], -1).astype(np.float32)
  g_net, space = state.g_params["net"], state.g_params["space"]
  imgs = _gen(generate, g_net, np.repeat(src[None], len(z), 0), z)
  p = np.concatenate([np.asarray(d_probs(state.d_params, imgs[i:i + 128]))
                      for i in range(0, len(imgs), 128)])
  rgb = np.array([matplotlib.colors.to_rgb(COLORS[c]) for c in p.argmax(-1)])
  alpha = p.max(-1)
  canvas = (rgb * alpha[:, None] + (1 - alpha[:, None])).reshape(n, n, 3)
  if kind == "linear":
    canvas[(u ** 2 + v ** 2) > 1] = 1.0
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.imshow(canvas, origin="lower", extent=(-1, 1, -1, 1))
  if kind == "linear":
    ax.add_patch(plt.Circle((0, 0), 1, fill=False, color="k"))
    ax.add_patch(plt.Circle((0, 0), config.loss.tau, fill=False, color="k", ls=":"))
    for c, th in enumerate(np.asarray(space["theta"]), start=1):
      ax.annotate("", (np.cos(th), np.sin(th)), (0, 0), arrowprops=dict(arrowstyle="->", lw=2,
                                                                          color=COLORS[c]))
      ax.text(1.08 * np.cos(th), 1.08 * np.sin(th), EMOTIONS[c], ha="center", fontsize=8)
  else:
    mus = np.asarray(cs.mode_means(space["w"]))
    covs = np.asarray(cs.mode_covariances(space["log_eigs"], space["angle"]))
    for c in range(nc):
      w, vec = np.linalg.eigh(covs[c])
      ang = np.degrees(np.arctan2(vec[1, 1], vec[0, 1]))
      ax.add_patch(matplotlib.patches.Ellipse(mus[c], 2 * np.sqrt(w[1]), 2 * np.sqrt(w[0]),
                                              angle=ang, fill=False, color=COLORS[c], lw=2))
      ax.text(*mus[c], EMOTIONS[c], ha="center", fontsize=8)
  ax.set_xlim(-1.2, 1.2), ax.set_ylim(-1.2, 1.2)
  ax.set_title(f"{config.variant}: argmax D_cls(G(x, z)) (shade: confidence)")
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def strips(state, srcs, config, path, generate):
  """Neutral -> each emotion in 10 steps (Sec. 5.2), one block per source face."""
  from affectjax.methods.ganmut_eval import emotion_code
  nc = config.data.num_classes
  steps = np.linspace(0, 1, 11)
  rows = []
  for src in srcs:
    for c in range(1, nc):
      z = emotion_code(state.g_params["space"], config, c, steps)
      imgs = _gen(generate, state.g_params["net"], np.repeat(src[None], 11, 0), z)
      rows.append(np.concatenate([src] + list(imgs), 1))
  grid = np.concatenate(rows, 0)
  fig, ax = plt.subplots(figsize=(12, 12 * grid.shape[0] / grid.shape[1]))
  ax.imshow(_img(grid)), ax.axis("off")
  ax.set_title(f"{config.variant}: input | neutral -> " + ", ".join(EMOTIONS[1:nc]) + " (rows)")
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def gamut(state, src, config, path, generate, n=7):
  """One identity across the conditional space (StarGAN: its C one-hot conditions)."""
  kind = config.model.space
  if kind == "stargan":
    z = np.eye(config.data.num_classes, dtype=np.float32)
    imgs = _gen(generate, state.g_params["net"], np.repeat(src[None], len(z), 0), z)
    grid = np.concatenate([src] + list(imgs), 1)
  else:
    t = np.linspace(-1, 1, n)
    u, v = np.meshgrid(t, t[::-1])
    z = np.stack([u.ravel(), v.ravel()], -1).astype(np.float32)
    imgs = _gen(generate, state.g_params["net"], np.repeat(src[None], len(z), 0), z)
    if kind == "linear":
      imgs[np.sum(z ** 2, -1) > 1.0 + 1e-6] = 1.0
    s = imgs.shape[1]
    grid = imgs.reshape(n, n, s, s, 3).transpose(0, 2, 1, 3, 4).reshape(n * s, n * s, 3)
  fig, ax = plt.subplots(figsize=(6, 6 * grid.shape[0] / grid.shape[1]))
  ax.imshow(_img(grid)), ax.axis("off")
  ax.set_title(f"{config.variant}: gamut of one identity (x right, y up)")
  fig.savefig(path, dpi=120, bbox_inches="tight")
  plt.close(fig)


def all_figures(state, x, y, config, workdir, generate, d_probs):
  neutral = np.flatnonzero(y == 0)
  src = x[neutral[0] if len(neutral) else 0]
  if config.model.space != "stargan":
    space_map(state, src, config, os.path.join(workdir, "space.png"), generate, d_probs)
  strips(state, x[[0, len(x) // 2]], config, os.path.join(workdir, "interpolation.png"), generate)
  gamut(state, src, config, os.path.join(workdir, "gamut.png"), generate)
