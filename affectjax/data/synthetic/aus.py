"""Expression model of the synthetic faces: action units, emotion mixtures, labels and VA.

Prototypes follow the EMFACS-style table of ../shared/REFERENCE.md ("Facial action units for the
synthetic faces"); VA centres and spreads are AffectNet's per-class statistics (same file,
affectjax.affect.affectnet_stats). Everything here is numpy on the host: it draws the ground truth
that the JAX renderer (render.py) then draws as pixels.
"""
from __future__ import annotations

import numpy as np

from affectjax.affect.affectnet_stats import VA_MEANS, VA_STDS
from affectjax.data.example import EMOTIONS, NUM_EMOTIONS

AU_NAMES = ("AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10", "AU12", "AU14", "AU15",
            "AU16", "AU17", "AU20", "AU23", "AU25", "AU26")
AU_INDEX = {name: i for i, name in enumerate(AU_NAMES)}
NUM_AUS = len(AU_NAMES)

# Below this intensity an expression is too faint to name: the clean label is neutral.
INTENSITY_THRESHOLD = 0.15
# Multiplicative per-image jitter of each active AU (people do not pose a prototype exactly).
AU_JITTER = 0.15


def _table(rows: dict) -> np.ndarray:
  out = np.zeros((NUM_EMOTIONS, NUM_AUS), np.float32)
  for emotion, aus in rows.items():
    for au, value in aus.items():
      out[EMOTIONS.index(emotion), AU_INDEX[f"AU{au}"]] = value
  return out


# One prototype per emotion at full intensity (REFERENCE.md's first column); values < 1 keep the
# face plausible when several AUs act on the same feature.
_DEFAULT = {
    "happy": {6: 0.8, 12: 1.0},
    "sad": {1: 0.9, 4: 0.5, 15: 1.0},
    "surprise": {1: 1.0, 2: 1.0, 5: 0.9, 26: 0.9},
    "fear": {1: 0.9, 2: 0.7, 4: 0.6, 5: 1.0, 20: 1.0, 26: 0.5},
    "disgust": {9: 1.0, 15: 0.6, 16: 0.7},
    "anger": {4: 1.0, 5: 0.6, 7: 0.8, 23: 1.0},
    "contempt": {12: 0.7, 14: 0.8},  # one side only (UNILATERAL), low intensity
}
# REFERENCE.md's "common variants" column (AU24 and AU11 are not modelled; 23 stands for 24).
_VARIANT = {
    "happy": {6: 0.8, 12: 1.0, 25: 0.6},
    "sad": {4: 0.6, 15: 1.0, 1: 0.6, 17: 0.6},
    "surprise": {1: 1.0, 2: 1.0, 25: 0.8, 26: 0.8},
    "fear": {1: 0.9, 2: 0.7, 4: 0.6, 5: 1.0, 7: 0.5, 20: 1.0, 25: 0.8},
    "disgust": {9: 1.0, 10: 0.8, 17: 0.7, 4: 0.4},
    "anger": {4: 1.0, 5: 0.6, 7: 0.8, 23: 1.0, 10: 0.5, 17: 0.6},
    "contempt": {12: 0.7, 14: 0.8},
}
PROTOTYPES = {"default": _table(_DEFAULT), "variant": _table(_VARIANT)}
# Contempt's AUs act on the face's right half (image right) only.
UNILATERAL = np.zeros((NUM_EMOTIONS,), bool)
UNILATERAL[EMOTIONS.index("contempt")] = True

# Where a label flips to under label noise: rows are the clean label, columns the noisy one
# (anger<->disgust, fear<->surprise, contempt->neutral/happy, sad<->neutral ...), rows sum to 1.
_CONFUSIONS = {
    "neutral": {"sad": 0.5, "contempt": 0.3, "happy": 0.1, "anger": 0.1},
    "happy": {"contempt": 0.4, "surprise": 0.4, "neutral": 0.2},
    "sad": {"neutral": 0.6, "fear": 0.2, "disgust": 0.2},
    "surprise": {"fear": 0.7, "happy": 0.2, "neutral": 0.1},
    "fear": {"surprise": 0.7, "sad": 0.2, "disgust": 0.1},
    "disgust": {"anger": 0.7, "sad": 0.2, "contempt": 0.1},
    "anger": {"disgust": 0.7, "contempt": 0.2, "fear": 0.1},
    "contempt": {"neutral": 0.4, "happy": 0.3, "anger": 0.3},
}
CONFUSION = np.zeros((NUM_EMOTIONS, NUM_EMOTIONS), np.float64)
for _src, _row in _CONFUSIONS.items():
  for _dst, _p in _row.items():
    CONFUSION[EMOTIONS.index(_src), EMOTIONS.index(_dst)] = _p


def sample_expressions(rng: np.random.Generator, n: int, compound_fraction: float,
                       neutral_fraction: float, intensity_min: float = INTENSITY_THRESHOLD,
                       intensity_max: float = 1.0):
  """Draws (mixture [n, 8], intensity [n]) for n images.

  Each image has a primary expressive emotion (uniform over the 7 non-neutral ones); a
  `compound_fraction` of images mix in a second one with weight in [0.2, 0.45] (so the primary
  stays the argmax). The neutral column of the mixture is always 0: neutrality is low intensity.
  A `neutral_fraction` of images get intensity U(0, INTENSITY_THRESHOLD) (labelled neutral), the
  rest U(intensity_min, intensity_max), the expressive range (INTENSITY_THRESHOLD <= min <= max).
  """
  k = NUM_EMOTIONS - 1
  primary = rng.integers(0, k, n)
  secondary = (primary + rng.integers(1, k, n)) % k  # uniform over the other six
  w2 = rng.uniform(0.2, 0.45, n) * (rng.random(n) < compound_fraction)
  mix = np.zeros((n, NUM_EMOTIONS), np.float32)
  rows = np.arange(n)
  mix[rows, primary + 1] = 1.0 - w2
  mix[rows, secondary + 1] += w2
  is_neutral = rng.random(n) < neutral_fraction
  t = INTENSITY_THRESHOLD
  intensity = np.where(is_neutral, rng.uniform(0.0, t, n),
                       rng.uniform(intensity_min, intensity_max, n))
  return mix, intensity.astype(np.float32)


def action_units(mix, intensity, jitter, prototypes: str = "default"):
  """AU intensities of each face half: (left [n, 17], right [n, 17]) in [0, 1].

  au = clip(intensity * jitter * sum_e mix_e * P_e, 0, 1), P the prototype table; contempt's
  part is added to the right half only. `jitter` [n, 17] is a multiplicative factor near 1.
  """
  table = PROTOTYPES[prototypes]
  both = mix[:, ~UNILATERAL] @ table[~UNILATERAL]
  one = mix[:, UNILATERAL] @ table[UNILATERAL]
  scale = intensity[:, None] * jitter
  left = np.clip(scale * both, 0.0, 1.0)
  right = np.clip(scale * (both + one), 0.0, 1.0)
  return left.astype(np.float32), right.astype(np.float32)


def clean_labels(mix, intensity) -> np.ndarray:
  """Argmax of the mixture; neutral (0) where intensity < INTENSITY_THRESHOLD."""
  return np.where(intensity < INTENSITY_THRESHOLD, 0, np.argmax(mix, -1)).astype(np.int32)


def valence_arousal(mix, intensity, z) -> np.ndarray:
  """True VA [n, 2] in [-1, 1] from the mixture, the intensity t and a spread draw z [n, 2].

  With c_e, s_e = VA_MEANS[e], VA_STDS[e] and m = sum_e mix_e c_e, s = sum_e mix_e s_e:
    va = c_neutral + t (m - c_neutral) + ((1 - t) s_neutral + t s) * z,   z ~ N(0, I) clipped to 2,
  clipped to [-1, 1]: a full-intensity pure expression is spread around its AffectNet centre with
  its AffectNet std, a faint one lies near neutral's centre with neutral's std.
  """
  t = intensity[:, None].astype(np.float64)
  c0, s0 = VA_MEANS[0], VA_STDS[0]
  centre = c0 + t * (mix @ VA_MEANS - c0)
  spread = (1.0 - t) * s0 + t * (mix @ VA_STDS)
  return np.clip(centre + spread * np.clip(z, -2.0, 2.0), -1.0, 1.0).astype(np.float32)


def noisy_labels(rng: np.random.Generator, labels, rate: float) -> np.ndarray:
  """Replaces each label with probability `rate` by a confusable one drawn from CONFUSION."""
  labels = np.asarray(labels)
  flip = rng.random(labels.shape) < rate
  cdf = np.cumsum(CONFUSION[labels], -1)
  u = rng.random(labels.shape)[:, None]
  other = np.minimum((u > cdf).sum(-1), NUM_EMOTIONS - 1)
  return np.where(flip, other, labels).astype(np.int32)
