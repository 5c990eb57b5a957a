"""LeVAsa annotation transfer (levasa.md, Algorithm 1): per-emotion VA ellipses, sampling, labelling.

An ellipse per class has centre (mu_v, mu_a) and axis-aligned semi-axes (sigma_v, sigma_a), one
standard deviation each (REFERENCE.md, "AffectNet per-class valence/arousal statistics").
Fitting runs on the host in numpy (float64); sampling and labelling are jax and jit-compatible.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class Ellipses(NamedTuple):
  """One axis-aligned ellipse per class (a NamedTuple, hence a pytree).

  centers: [C, 2] (valence, arousal) means; NaN for a class without reference rows.
  semi_axes: [C, 2] (valence, arousal) standard deviations; NaN likewise.
  counts: [C] reference rows per class (-1 where built from published statistics).
  """
  centers: np.ndarray
  semi_axes: np.ndarray
  counts: np.ndarray


def labelled_va(labels, va, num_classes: int):
  """The rows with a label and finite VA, as (int64 labels [M], float64 va [M, 2]); a clear error
  for a VA array of the wrong shape or a label outside -1 (unknown) .. num_classes - 1."""
  labels = np.asarray(labels).reshape(-1)
  va = np.asarray(va, np.float64)
  if va.shape != (labels.shape[0], 2):
    raise ValueError(f"va must be [N, 2] with N = {labels.shape[0]} labels; got shape {va.shape}")
  bad = (labels < -1) | (labels >= num_classes)
  if bad.any():
    raise ValueError(f"labels must be -1 (unknown) or in 0..{num_classes - 1}; "
                     f"got {np.unique(labels[bad])[:5].tolist()}")
  keep = (labels >= 0) & np.all(np.isfinite(va), axis=1)
  return labels[keep].astype(np.int64), va[keep]


def fit_ellipses(labels, va, num_classes: int, ddof: int = 0) -> Ellipses:
  """Alg. 1 lines 1-3: group the reference set by label, per-group VA mean and std, axis-aligned.

  ddof=0 is the population std (numpy's default); the original notebook used pandas' default
  ddof=1 (sample std), which differs by a factor sqrt(n / (n - 1)) (negligible for AffectNet).
  Rows with label -1 or any non-finite VA are ignored. A class with no rows (fewer than ddof + 1)
  gets a NaN centre and semi-axes; sample_va refuses to sample it.
  """
  labels, va = labelled_va(labels, va, num_classes)
  counts = np.bincount(labels, minlength=num_classes)
  centers = np.full((num_classes, 2), np.nan)
  semi_axes = np.full((num_classes, 2), np.nan)
  for c in range(num_classes):
    rows = va[labels == c]
    if len(rows) > ddof:  # a std needs more than ddof rows
      centers[c] = rows.mean(axis=0)
      semi_axes[c] = rows.std(axis=0, ddof=ddof)
  return Ellipses(centers, semi_axes, counts)


def from_stats(means, stds) -> Ellipses:
  """Ellipses from published per-class statistics, e.g. affectnet_stats.VA_MEANS / VA_STDS."""
  means = np.asarray(means, np.float64)
  stds = np.asarray(stds, np.float64)
  if means.ndim != 2 or means.shape[1] != 2 or means.shape != stds.shape:
    raise ValueError(f"means and stds must both be [C, 2]; got {means.shape} and {stds.shape}")
  if np.any(stds[np.isfinite(stds)] < 0):
    raise ValueError("stds must be non-negative")
  return Ellipses(means, stds, np.full(means.shape[0], -1, np.int64))


def _concrete(x):
  """x as numpy, or None while it is being traced (then checks are skipped)."""
  try:
    return np.asarray(x)
  except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
    return None


def _check_sampleable(ellipses: Ellipses, labels) -> None:
  labels, centers = _concrete(labels), _concrete(ellipses.centers)
  semi = _concrete(ellipses.semi_axes)
  if labels is None or centers is None or semi is None:
    return
  c = centers.shape[0]
  if labels.size and (labels.min() < 0 or labels.max() >= c):
    raise ValueError(f"sample_va needs labels in 0..{c - 1}; got values "
                     f"{np.unique(labels[(labels < 0) | (labels >= c)])[:5].tolist()}")
  empty = ~np.all(np.isfinite(centers) & np.isfinite(semi), axis=1)
  asked = np.intersect1d(np.nonzero(empty)[0], labels)
  if asked.size:
    raise ValueError(f"classes {asked.tolist()} have no ellipse (no reference rows); "
                     "cannot sample VA for them")


def sample_va(key, ellipses: Ellipses, labels, clip: bool = False) -> jax.Array:
  """Alg. 1 line 4: VA drawn uniformly inside the ellipse of each row's label, [N, 2].

  r ~ U(0, 1), theta ~ U(0, 2 pi); x = sqrt(r) cos theta, y = sqrt(r) sin theta;
  v = x sigma_v + mu_v, a = y sigma_a + mu_a. sqrt(r) makes the density uniform by area.
  clip=True clips to [-1, 1]; the original does not clip (default False).
  """
  _check_sampleable(ellipses, labels)
  labels = jnp.asarray(labels).reshape(-1)
  k_r, k_theta = jax.random.split(key)
  r = jax.random.uniform(k_r, labels.shape)
  theta = jax.random.uniform(k_theta, labels.shape, maxval=2 * jnp.pi)
  unit = jnp.sqrt(r)[:, None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], axis=-1)
  centers = jnp.asarray(ellipses.centers, jnp.float32)[labels]
  semi = jnp.asarray(ellipses.semi_axes, jnp.float32)[labels]
  va = centers + unit * semi
  return jnp.clip(va, -1.0, 1.0) if clip else va


def discretize_va(va, levels: int = 10) -> jax.Array:
  """Alg. 1 line 5: round(levels * va) as int32; levels=10 is the original's round(10 v), -10..10.

  jnp.round rounds halves to even, as Python's round() in the original does. NaN VA must be
  removed first (its integer cast is undefined).
  """
  return jnp.round(levels * jnp.asarray(va)).astype(jnp.int32)


def undiscretize_va(dva, levels: int = 10) -> jax.Array:
  """Inverse of discretize_va up to rounding: integer levels back to VA in [-1, 1]."""
  return jnp.asarray(dva).astype(jnp.float32) / levels


def va_to_class_index(dva, levels: int = 10) -> jax.Array:
  """Discrete VA -levels..levels to class indices 0..2*levels (the offset the original omitted)."""
  return jnp.asarray(dva).astype(jnp.int32) + levels


def nearest_label(ellipses: Ellipses, va, normalized: bool = False) -> jax.Array:
  """Alg. 1 line 6: the class whose centre is nearest (Euclidean) to each VA row, [N] int32.

  normalized=True (not in the paper) measures distance in units of each class's semi-axes,
  ((v - mu_v) / sigma_v)^2 + ((a - mu_a) / sigma_a)^2, so a wide ellipse claims more of the plane.
  Classes without an ellipse are never chosen; rows with non-finite VA get -1.
  """
  va = jnp.asarray(va, jnp.float32).reshape(-1, 2)
  centers = jnp.asarray(ellipses.centers, jnp.float32)
  diff = va[:, None, :] - centers[None]
  if normalized:
    diff = diff / jnp.asarray(ellipses.semi_axes, jnp.float32)[None]
  d2 = jnp.sum(jnp.square(diff), axis=-1)
  d2 = jnp.where(jnp.isnan(d2), jnp.inf, d2)  # empty classes never win
  labels = jnp.argmin(d2, axis=-1).astype(jnp.int32)
  return jnp.where(jnp.all(jnp.isfinite(va), axis=-1), labels, -1)


def area_fraction(ellipses: Ellipses, box=((-1.0, 1.0), (-1.0, 1.0))):
  """Per-class and mean fraction of the VA box covered by each 1-std ellipse, pi a b / box area.

  levasa.md Sec. 2.1 says "on average 3 %"; with AffectNet's published stds (REFERENCE.md) the mean
  is 1.95 % of the [-1, 1]^2 square over the 7 classes with published stds (1.951 %; with the
  assumed contempt stds of affectnet_stats the 8-class mean is 1.949 %, also 1.95 %). As a fraction
  of the unit disc it is a * b: 2.48 %, REFERENCE.md's 2.5 %. Returns (per_class [C], mean over
  classes that have an ellipse), numpy float64.
  """
  (v0, v1), (a0, a1) = box
  semi = np.asarray(ellipses.semi_axes, np.float64)
  per_class = np.pi * semi[:, 0] * semi[:, 1] / ((v1 - v0) * (a1 - a0))
  return per_class, float(np.nanmean(per_class))
