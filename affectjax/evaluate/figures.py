"""LeVAsa figures as PNGs (matplotlib, Agg): Figure 2 (ellipses), 3 (circumplex), 4 (reconstructions)."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

from affectjax.affect.ellipses import area_fraction  # noqa: E402
from affectjax.data.example import EMOTIONS  # noqa: E402

_COLORS = plt.get_cmap("tab10").colors


def _save(fig, path):
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)
  return path


def plot_ellipses(path, ellipses, names=EMOTIONS, samples=None):
  """Figure 2: each class's 1-std ellipse over the [-1, 1]^2 VA square, named at its centre.

  samples: optional (va [N, 2], labels [N]) drawn as dots in the class colours (e.g. sample_va's
  output). The title gives the measured mean area fraction (ellipses.area_fraction).
  """
  centers = np.asarray(ellipses.centers, np.float64)
  semi = np.asarray(ellipses.semi_axes, np.float64)
  fig, ax = plt.subplots(figsize=(6, 6))
  if samples is not None:
    va, labels = (np.asarray(x) for x in samples)
    ax.scatter(va[:, 0], va[:, 1], s=3, alpha=0.35, c=[_COLORS[int(k) % 10] for k in labels])
  for c, name in enumerate(names[:len(centers)]):
    if not np.all(np.isfinite(centers[c]) & np.isfinite(semi[c])):
      continue
    color = _COLORS[c % 10]
    ax.add_patch(Ellipse(centers[c], 2 * semi[c, 0], 2 * semi[c, 1], facecolor=color, alpha=0.3,
                         edgecolor=color, linewidth=1.5))
    ax.plot(*centers[c], "k+", ms=6)
    crowded = np.any(np.linalg.norm(centers[:c] - centers[c], axis=1) < 0.15)
    # A name whose centre sits next to an earlier one (contempt by anger) goes below it instead.
    ax.annotate(name, centers[c], textcoords="offset points", xytext=(4, -12 if crowded else 4),
                fontsize=9)
  ax.axhline(0, color="0.7", lw=0.6)
  ax.axvline(0, color="0.7", lw=0.6)
  ax.set(xlim=(-1, 1), ylim=(-1, 1), xlabel="valence", ylabel="arousal", aspect="equal")
  mean = area_fraction(ellipses)[1]
  ax.set_title(f"VA ellipses (1 std): mean area {100 * mean:.2f} % of the square")
  return _save(fig, path)


def _pca1(z, reference=None):
  """First principal component scores of z [N, d], sign chosen to correlate positively with
  `reference` when given (PCA's sign is arbitrary)."""
  z = np.asarray(z, np.float64).reshape(len(z), -1)
  zc = z - z.mean(axis=0)
  _, _, vt = np.linalg.svd(zc, full_matrices=False)
  s = zc @ vt[0]
  if reference is not None:
    ok = np.isfinite(reference)
    if ok.sum() > 1 and np.dot(s[ok] - s[ok].mean(), reference[ok] - reference[ok].mean()) < 0:
      s = -s
  return s


def plot_circumplex(path, panels: dict, names=EMOTIONS):
  """Figure 3: per panel, the latent circumplex (x = PCA-1 of z_v, y = PCA-1 of z_a) next to the
  true VA, both coloured by emotion.

  panels: title -> {"z_v": [N, d], "z_a": [N, d], "va": [N, 2], "labels": [N]} (labels -1 grey).
  A panel without any label (AFEW has no categories) is coloured by the angle of the true VA
  instead, so the latent's arrangement can still be compared with the true circumplex.
  """
  fig, axes = plt.subplots(len(panels), 2, figsize=(9, 4.2 * len(panels)), squeeze=False)
  for row, (title, p) in zip(axes, panels.items()):
    va, labels = np.asarray(p["va"], np.float64), np.asarray(p["labels"]).astype(int)
    latent = np.stack([_pca1(p["z_v"], va[:, 0]), _pca1(p["z_a"], va[:, 1])], axis=1)
    by_angle = bool(np.all(labels < 0))
    for ax, xy, sub in ((row[0], latent, "latent: PCA-1(z_v), PCA-1(z_a)"), (row[1], va, "true VA")):
      if by_angle:
        dots = ax.scatter(xy[:, 0], xy[:, 1], s=5, alpha=0.8, c=va_angle(va), cmap=_ANGLE_CMAP,
                          vmin=-180, vmax=180)
      else:
        for k in np.unique(labels):
          m = labels == k
          color = _COLORS[k % 10] if k >= 0 else "0.6"
          name = names[k] if 0 <= k < len(names) else "unknown"
          ax.scatter(xy[m, 0], xy[m, 1], s=5, alpha=0.6, color=color, label=name)
      ax.set_title(f"{title}: {sub}", fontsize=9)
      ax.set_xlabel("valence" if ax is row[1] else "z_v (PCA-1)")
      ax.set_ylabel("arousal" if ax is row[1] else "z_a (PCA-1)")
    row[1].set(xlim=(-1, 1), ylim=(-1, 1))
    if by_angle:
      fig.colorbar(dots, ax=row[1], label="angle of the true VA (degrees; 0 = positive valence)")
    else:
      row[1].legend(fontsize=7, markerscale=2, loc="lower right")
  fig.tight_layout()
  return _save(fig, path)


_ANGLE_CMAP = "hsv"  # cyclic (-180 and 180 degrees meet) and, unlike twilight, no near-white end


def va_angle(va) -> np.ndarray:
  """The angle of each [valence, arousal] point on the circumplex, in degrees in [-180, 180]."""
  va = np.asarray(va, np.float64)
  return np.degrees(np.arctan2(va[:, 1], va[:, 0]))


def _as_display(images, value_range=None):
  """uint8, or floats in value_range (None: [-1, 1] if any value < 0, else [0, 1]), as floats in
  [0, 1]; [N, H, W] or [N, H, W, C]."""
  x = np.asarray(images)
  if x.dtype == np.uint8:
    x = x.astype(np.float64) / 255.0
  else:
    x = x.astype(np.float64)
    lo, hi = value_range or ((-1.0, 1.0) if np.nanmin(x) < 0 else (0.0, 1.0))
    x = (x - lo) / (hi - lo)
  if x.ndim == 4 and x.shape[-1] == 1:
    x = x[..., 0]
  return np.clip(x, 0.0, 1.0)


def plot_reconstructions(path, rows: dict, max_cols: int = 8, value_range=None):
  """Figure 4: one row per entry (e.g. "original", then each model's reconstructions).

  Pass value_range=(-1, 1) for canonical float images; the default guesses it per row.
  """
  rows = {k: _as_display(v, value_range)[:max_cols] for k, v in rows.items()}
  ncols = max(len(v) for v in rows.values())
  fig, axes = plt.subplots(len(rows), ncols, figsize=(1.3 * ncols + 1.2, 1.4 * len(rows)),
                           squeeze=False)
  for ax_row, (name, imgs) in zip(axes, rows.items()):
    for j, ax in enumerate(ax_row):
      ax.set_xticks([])
      ax.set_yticks([])
      if j < len(imgs):
        ax.imshow(imgs[j], cmap="gray" if imgs.ndim == 3 else None, vmin=0, vmax=1)
      else:
        ax.axis("off")
    ax_row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
  return _save(fig, path)


# ---------------------------------------------------------------- image grids (Rb-VAE Figs. 3-4)

def image_grid(rows) -> np.ndarray:
  """[R][C] images in [-1, 1] (None: a blank cell) -> one [R h, C w, 3] canvas in [0, 1]."""
  h, w = next(im for r in rows for im in r if im is not None).shape[:2]
  canvas = np.ones((len(rows) * h, max(len(r) for r in rows) * w, 3), np.float32)
  for i, r in enumerate(rows):
    for j, im in enumerate(r):
      if im is not None:
        canvas[i * h:(i + 1) * h, j * w:(j + 1) * w] = np.clip((np.asarray(im) + 1) / 2, 0, 1)
  return canvas


def save_grid(path, canvas, title):
  """A canvas of image_grid as a PNG titled `title`, about one screen pixel per image pixel."""
  fig = plt.figure(figsize=(max(3.0, canvas.shape[1] / 40), max(3.0, canvas.shape[0] / 40) + 0.4))
  plt.imshow(canvas, interpolation="nearest")
  plt.axis("off")
  plt.title(title, fontsize=8)
  fig.savefig(path, dpi=100, bbox_inches="tight")
  plt.close(fig)
  return path
