"""Figures of the synthetic faces (matplotlib PNGs)."""
from __future__ import annotations

import numpy as np

from affectjax.data.example import EMOTIONS
from affectjax.data.synthetic import faces
from affectjax.data.synthetic.generate import synthesize


def emotion_grid(seed: int = 0, identities: int = 3, intensities=(0.33, 0.66, 1.0),
                 image_size: int = 64) -> np.ndarray:
  """Frontal faces uint8 [identities, len(intensities), 8, H, W, 3] of every pure emotion."""
  ids = faces.sample_identities(seed, identities)
  e, t, i = np.meshgrid(np.arange(len(EMOTIONS)), np.asarray(intensities, np.float32),
                        np.arange(identities), indexing="ij")
  e, t, i = e.ravel(), t.ravel(), i.ravel()
  mix = np.eye(len(EMOTIONS), dtype=np.float32)[e]
  pose, light = faces.frontal(len(e))
  images, _, _, _ = synthesize(ids, i, mix, np.where(e == 0, 0.0, t), pose, light, image_size)
  shape = (len(EMOTIONS), len(intensities), identities) + images.shape[1:]
  return images.reshape(shape).transpose(2, 1, 0, 3, 4, 5)


def save_emotion_grid(path: str, seed: int = 0, identities: int = 3,
                      intensities=(0.33, 0.66, 1.0), image_size: int = 64) -> None:
  """Writes a PNG: one column per emotion, one row per (identity, intensity)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  grid = emotion_grid(seed, identities, intensities, image_size)
  rows, cols = identities * len(intensities), len(EMOTIONS)
  fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.35 * rows), squeeze=False)
  for r in range(rows):
    person, level = divmod(r, len(intensities))
    for c in range(cols):
      ax = axes[r, c]
      ax.imshow(grid[person, level, c], interpolation="nearest")
      ax.set_xticks([]); ax.set_yticks([])
      if r == 0:
        ax.set_title(EMOTIONS[c], fontsize=9)
      if c == 0:
        ax.set_ylabel(f"id {person}\nt={intensities[level]:.2f}", fontsize=8)
  fig.tight_layout(pad=0.3)
  fig.savefig(path, dpi=100)
  plt.close(fig)
