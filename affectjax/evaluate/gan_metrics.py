"""Metrics of ganmut.md Section 5 computed from classifier outputs (host, numpy)."""
from __future__ import annotations

import numpy as np

__all__ = ["smoothness_score", "is_monotone", "ambiguous_targets", "reconstruction_error",
           "per_class_accuracy", "angular_agreement", "similarity_agreement"]


def smoothness_score(probs_along_path, eps=1e-6):
  """Max one-interval increase of the target softmax over its total range (Sec. 5.2, Table 1).

  probs_along_path: [..., J] softmax score C(c | x_{c, rho_j}) along rho_0 < ... < rho_{J-1}.
  Returns [...]: max_j (s_{j+1} - s_j) / (max_j s_j - min_j s_j); lower is smoother: 1/(J-1) is the
  smoothest rising ramp, 1 an abrupt switch. A path that does not rise overall (s_{J-1} - s_0 <=
  eps: it falls or stays flat) never expresses the emotion and scores 1, the worst value.

  Nothing scores below the ramp: a path with s_{J-1} > s_0 rises by max - min over at most J-1
  intervals from its minimum to its maximum (or, when the maximum comes first, by more than the
  range over the intervals before the maximum and after the minimum), so max increase >= range /
  (J-1). The paper's text alone (clipping a negative increase to 0) would score a falling path 0,
  better than any ramp.
  """
  s = np.asarray(probs_along_path, np.float64)
  inc = np.max(np.diff(s, axis=-1), axis=-1)
  rng = np.max(s, axis=-1) - np.min(s, axis=-1)
  rises = (s[..., -1] - s[..., 0]) > eps
  return np.where(rises & (rng > eps), inc / np.maximum(rng, eps), 1.0)


def is_monotone(probs_along_path, tol=0.01):
  """True where the target softmax never falls by more than `tol` in one interval and rises overall
  by more than `tol` (a path that expresses the emotion more at every step): [..., J] -> [...]."""
  s = np.asarray(probs_along_path, np.float64)
  return np.all(np.diff(s, axis=-1) >= -tol, axis=-1) & ((s[..., -1] - s[..., 0]) > tol)


def ambiguous_targets(probs, top_k, batch_size=16):
  """ERE targets (Sec. 5.3): in each batch of `batch_size` test images, the image whose k-th
  highest classifier softmax score is largest (the most ambiguous at level k).

  probs: [N, C]. Returns indices [N // batch_size] into probs.
  """
  p = np.asarray(probs)
  nb = len(p) // batch_size
  kth = np.sort(p[: nb * batch_size], axis=-1)[:, -top_k].reshape(nb, batch_size)
  return np.arange(nb) * batch_size + np.argmax(kth, axis=-1)


def reconstruction_error(candidate_probs, target):
  """min over grid codes of the MSE between classifier softmax of G(x, code) and the target (Sec.
  5.3): candidate_probs [K, C], target [C] -> (min MSE, argmin)."""
  mse = np.mean((np.asarray(candidate_probs, np.float64) - np.asarray(target, np.float64)) ** 2, -1)
  i = int(np.argmin(mse))
  return float(mse[i]), i


def per_class_accuracy(pred, labels, num_classes):
  """Accuracy (%) per true class (Table 3); NaN for a class absent from labels."""
  pred, labels = np.asarray(pred), np.asarray(labels)
  out = np.full(num_classes, np.nan)
  for c in range(num_classes):
    m = labels == c
    if m.any():
      out[c] = 100.0 * np.mean(pred[m] == c)
  return out


def _wrap(a):
  return (a + np.pi) % (2 * np.pi) - np.pi


def angular_agreement(learned, true):
  """How well learned emotion angles match true (e.g. valence-arousal) angles, up to a rotation and
  a reflection of the learned space (its orientation is arbitrary).

  Returns (mean absolute angular error in degrees after the best alignment, cyclic order match:
  True when sorting by learned angle gives the true cyclic order up to rotation and reflection).
  """
  learned, true = np.asarray(learned, np.float64), np.asarray(true, np.float64)
  best = np.inf
  for sign in (1.0, -1.0):
    d = _wrap(true - sign * learned)
    rot = np.angle(np.mean(np.exp(1j * d)))  # circular-mean rotation
    for r in (rot, *d):  # the circular mean and every one-to-one anchor
      best = min(best, float(np.mean(np.abs(_wrap(true - sign * learned - r)))))
  order_t = list(np.argsort(np.mod(true, 2 * np.pi)))
  order_l = list(np.argsort(np.mod(learned, 2 * np.pi)))
  n = len(order_t)
  rots = [order_l[i:] + order_l[:i] for i in range(n)]
  match = any(r == order_t or r[::-1] == order_t for r in rots)
  return np.degrees(best), bool(match)


def similarity_agreement(angles, features):
  """Pearson r over pairs i < j between cos(angle_i - angle_j) (how alike two learned directions
  are) and the cosine similarity of feature rows i and j (e.g. the emotions' AU prototypes): 1 when
  emotions with similar AUs get similar directions. Invariant to rotating or reflecting the space.
  angles [K], features [K, F] -> float (NaN when either similarity is constant)."""
  a = np.asarray(angles, np.float64)
  f = np.asarray(features, np.float64)
  f = f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-12)
  i, j = np.triu_indices(len(a), k=1)
  sa, sf = np.cos(a[i] - a[j]), np.sum(f[i] * f[j], -1)
  if np.std(sa) < 1e-12 or np.std(sf) < 1e-12:
    return float("nan")
  return float(np.corrcoef(sa, sf)[0, 1])
