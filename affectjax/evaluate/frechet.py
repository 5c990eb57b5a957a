"""Frechet distance between Gaussian fits of two feature sets (FED, ganmut.md Sec. 5): float64, host."""
from __future__ import annotations

import numpy as np

__all__ = ["gaussian_stats", "frechet_from_stats", "frechet_distance"]


def gaussian_stats(feats):
  """Mean and (unbiased) covariance of features [N, D], in float64."""
  f = np.asarray(feats, np.float64).reshape(len(feats), -1)
  return f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))


def _sqrtm_psd(a):
  """Symmetric PSD square root by eigen-decomposition (negative round-off eigenvalues clipped)."""
  w, v = np.linalg.eigh((a + a.T) / 2)
  return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_from_stats(mu1, cov1, mu2, cov2):
  """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).

  tr((S1 S2)^(1/2)) = tr((S1^(1/2) S2 S1^(1/2))^(1/2)), whose argument is symmetric PSD, so both
  roots are eigen-decompositions (no complex round-off as with sqrtm of the non-symmetric S1 S2).
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
  r1 = _sqrtm_psd(cov1)
  tr_mean = np.trace(_sqrtm_psd(r1 @ cov2 @ r1))
  d = float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * tr_mean)
  return max(d, 0.0)


def frechet_distance(feats_a, feats_b):
  """Frechet distance of Gaussian fits to features [Na, D] and [Nb, D] (FED when the features are
  the evaluator classifier's penultimate layer)."""
  return frechet_from_stats(*gaussian_stats(feats_a), *gaussian_stats(feats_b))
