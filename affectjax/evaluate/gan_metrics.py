"""Metrics of ganmut.md Section 5 computed from classifier outputs (host, numpy)."""
from __future__ import annotations

import numpy as np

__all__ = ["smoothness_score", "ambiguous_targets", "reconstruction_error", "per_class_accuracy",
           "angular_agreement"]


def smoothness_score(probs_along_path, eps=1e-12):
  """Max one-interval increase of the target softmax over its total range (Sec. 5.2, Table 1).

  probs_along_path: [..., J] softmax score C(c | x_{c, rho_j}) along rho_0 < ... < rho_{J-1}.
  Returns [...]: max_j (s_{j+1} - s_j) / (max_j s_j - min_j s_j); 1 is an abrupt switch, 1/(J-1)
  the smoothest monotone ramp. A flat path (zero range) scores 1 (no gradual expression at all).
  """
  s = np.asarray(probs_along_path, np.float64)
  inc = np.max(np.diff(s, axis=-1), axis=-1)
  rng = np.max(s, axis=-1) - np.min(s, axis=-1)
  return np.where(rng > eps, np.clip(inc, 0, None) / np.maximum(rng, eps), 1.0)


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
