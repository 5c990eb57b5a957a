"""Dual-domain mixed labels (dual_domain_fusion.md Sec. 3.1-3.2, Eqs. 1-4) and label noise.

Class statistics (priors, means, full 2x2 covariances per emotion) are computed once on the host
from the training split in numpy float64; the labels themselves (GMM, Euclid, fusion, noise) are
jax and jit-compatible, so a method can build them on the fly inside its train step.
Where the authors' public code differs (REFERENCE.md, "Dual-domain fusion"), a keyword names it.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from affectjax.affect.ellipses import labelled_va

__all__ = ["class_statistics", "gmm_labels", "euclid_labels", "fuse", "flip_labels",
           "va_only_labels"]

_LOG_2PI = float(np.log(2.0 * np.pi))


def class_statistics(labels, va, num_classes: int, within_std: bool = False,
                     reg_covar: float = 1e-6):
  """GMM parameters pi_k, mu_k, Sigma_k of Eq. 1, one Gaussian per class, from labelled VA rows.

  Rows with label -1 or non-finite VA are ignored. priors[k] = N_k / N over the kept rows.
  means and covs are the per-class sample mean and maximum-likelihood (ddof=0) covariance, with
  reg_covar added to the diagonal (as scikit-learn's GaussianMixture) so that a class whose points
  are collinear or identical still has a positive-definite covariance.
  within_std=True (the paper's Sec. 4.2, "computed within one standard deviation"; also the
  original code): means and covariances use only the class's points inside the box
  |v - mean_v| <= std_v, |a - mean_a| <= std_a of that class's own statistics (a class whose box
  holds no point keeps all of them); priors still count every row. A class with no rows gets
  prior 0 and NaN mean and covariance, which gmm_labels never assigns.
  Returns numpy float64 (priors [C], means [C, 2], covs [C, 2, 2]).
  """
  labels, va = labelled_va(labels, va, num_classes)
  if labels.size == 0:
    raise ValueError("class_statistics needs at least one row with a label and finite VA")
  counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
  priors = counts / counts.sum()
  means = np.full((num_classes, 2), np.nan)
  covs = np.full((num_classes, 2, 2), np.nan)
  for c in range(num_classes):
    rows = va[labels == c]
    if not len(rows):
      continue
    if within_std:
      inside = np.all(np.abs(rows - rows.mean(0)) <= rows.std(0), axis=1)
      if inside.any():  # the box can be empty (e.g. points on a cross): then keep every row
        rows = rows[inside]
    means[c] = rows.mean(0)
    centred = rows - means[c]
    covs[c] = centred.T @ centred / len(rows) + reg_covar * np.eye(2)
  return priors, means, covs


def _gmm_log_joint(va, priors, means, covs):
  """log pi_k + log N(x_n | mu_k, Sigma_k), [N, C]; -inf for classes without a Gaussian."""
  va = jnp.asarray(va, jnp.float32).reshape(-1, 2)
  priors = jnp.asarray(priors, jnp.float32)
  means = jnp.asarray(means, jnp.float32)
  covs = jnp.asarray(covs, jnp.float32)
  valid = (priors > 0) & jnp.all(jnp.isfinite(means), -1) & jnp.all(jnp.isfinite(covs), (-2, -1))
  means = jnp.where(valid[:, None], means, 0.0)
  covs = jnp.where(valid[:, None, None], covs, jnp.eye(2, dtype=jnp.float32))
  chol = jnp.linalg.cholesky(covs)  # [C, 2, 2], Sigma = L L^T
  diff = va[:, None, :] - means[None]  # [N, C, 2]
  # Mahalanobis distance via L^{-1} (x - mu), solved in closed form for the 2x2 lower triangle.
  z0 = diff[..., 0] / chol[None, :, 0, 0]
  z1 = (diff[..., 1] - chol[None, :, 1, 0] * z0) / chol[None, :, 1, 1]
  maha = jnp.square(z0) + jnp.square(z1)
  half_logdet = jnp.log(chol[:, 0, 0]) + jnp.log(chol[:, 1, 1])
  log_pdf = -0.5 * maha - half_logdet[None] - _LOG_2PI  # 2-D Gaussian: -(d/2) log 2 pi = -log 2 pi
  log_joint = jnp.log(jnp.where(valid, priors, 1.0))[None] + log_pdf
  return jnp.where(valid[None], log_joint, -jnp.inf)


@jax.jit
def gmm_labels(va, priors, means, covs) -> jax.Array:
  """Eq. 2: p(y | x_n)_GMM = pi_k N(x_n | mu_k, Sigma_k) / sum_j pi_j N(x_n | mu_j, Sigma_j).

  Returns [N, C]. Computed in log space (log-sum-exp over classes), so a point far from every
  Gaussian, whose densities all underflow, still gets a finite distribution. Rows with non-finite
  VA get NaN.
  """
  log_joint = _gmm_log_joint(va, priors, means, covs)
  p = jax.nn.softmax(log_joint, axis=-1)  # Eq. 2 (softmax = exp(log_joint - logsumexp))
  finite = jnp.all(jnp.isfinite(jnp.asarray(va, jnp.float32).reshape(-1, 2)), axis=-1)
  return jnp.where(finite[:, None], p, jnp.nan)


@functools.partial(jax.jit, static_argnames=("squared", "eps"))
def euclid_labels(va, means, squared: bool = True, eps: float = 1e-12) -> jax.Array:
  """Eq. 3, normalised: p_k proportional to max_j ||x_n - mu_j||^2 / ||x_n - mu_k||^2, [N, C].

  The max over j is one factor per row and cancels in the normalisation, so p_k is the
  inverse squared distance over its sum (computed as a softmax of -log d_k^2, scale-free). A point
  within sqrt(eps) of a centroid gets that class with probability 1 (split evenly where centroids
  coincide): the limit of Eq. 3, without dividing by zero. Classes with a NaN centroid get 0.
  squared=False uses the plain distance ||x - mu_k|| (the original code; REFERENCE.md).
  Rows with non-finite VA get NaN.
  """
  va = jnp.asarray(va, jnp.float32).reshape(-1, 2)
  means = jnp.asarray(means, jnp.float32)
  has_mean = jnp.all(jnp.isfinite(means), axis=-1)
  d2 = jnp.sum(jnp.square(va[:, None, :] - jnp.where(has_mean[:, None], means, 0.0)[None]), -1)
  d2 = jnp.where(has_mean[None], d2, jnp.inf)  # missing classes: infinitely far
  on_centroid = d2 <= eps
  logits = -jnp.log(jnp.maximum(d2, eps))  # Eq. 3: 1 / d^2 in log space
  if not squared:
    logits = 0.5 * logits  # 1 / d
  p = jax.nn.softmax(logits, axis=-1)
  hit = on_centroid.astype(jnp.float32)
  p = jnp.where(jnp.any(on_centroid, -1, keepdims=True),
                hit / jnp.maximum(jnp.sum(hit, -1, keepdims=True), 1.0), p)
  finite = jnp.all(jnp.isfinite(va), axis=-1)
  return jnp.where(finite[:, None], p, jnp.nan)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def fuse(labels_or_onehot, p_va, alpha, num_classes: int | None = None) -> jax.Array:
  """Eq. 4: p_fused = alpha p_GT + (1 - alpha) p_VA, [N, C].

  labels_or_onehot: int labels [N] (one-hot encoded with num_classes, default p_va's C) or a
  [N, C] distribution. alpha = 1 gives the one-hot labels, 0 the VA labels alone (Table 4); the
  original code's beta is this alpha. Rows without a usable side fall back to the other one: a
  label of -1 takes p_VA alone, a non-finite p_VA row takes p_GT alone; a row with neither is all
  zeros (its cross-entropy and cosine losses are then 0 with the classification losses here).
  """
  p_va = jnp.asarray(p_va, jnp.float32)
  c = p_va.shape[-1] if num_classes is None else num_classes
  gt = jnp.asarray(labels_or_onehot)
  if jnp.issubdtype(gt.dtype, jnp.integer):
    gt = jax.nn.one_hot(gt, c, dtype=jnp.float32)  # -1 -> all zeros
  gt = gt.astype(jnp.float32)
  if gt.shape != p_va.shape:
    raise ValueError(f"ground-truth labels {gt.shape} and p_va {p_va.shape} differ in shape")
  has_gt = jnp.sum(gt, -1, keepdims=True) > 0
  has_va = jnp.all(jnp.isfinite(p_va), -1, keepdims=True)
  p_va = jnp.where(has_va, p_va, 0.0)
  fused = alpha * gt + (1.0 - alpha) * p_va  # Eq. 4
  return jnp.where(has_gt & has_va, fused, jnp.where(has_gt, gt, p_va))


@functools.partial(jax.jit, static_argnames=("num_classes", "original", "return_mask"))
def flip_labels(key, labels, rate: float, num_classes: int, *, original: bool = False,
                return_mask: bool = False):
  """Synthetic categorical label noise (Sec. 5.1): a fraction `rate` of the labels moved to
  another class.

  Exactly round(rate * N) of the N known labels (label >= 0; -1 stays -1) are chosen without
  replacement, and each goes to one of the other num_classes - 1 classes uniformly, never to its
  own. original=True mimics the public code (REFERENCE.md): round(rate * N) rows drawn with
  replacement, each given a class uniform over all num_classes (so fewer rows change, and some
  "flips" keep their label). Returns the new labels [N] int32 (and the mask of rows that were
  picked when return_mask). jit-compatible.
  """
  labels = jnp.asarray(labels).astype(jnp.int32).reshape(-1)
  n = labels.shape[0]
  known = labels >= 0
  n_flip = jnp.round(rate * jnp.sum(known)).astype(jnp.int32)
  k_pick, k_class = jax.random.split(key)
  if original:
    known_idx = jnp.nonzero(known, size=n, fill_value=0)[0]
    draws = jax.random.randint(k_pick, (n,), 0, jnp.maximum(jnp.sum(known), 1))
    rows = known_idx[draws]
    new_class = jax.random.randint(k_class, (n,), 0, num_classes)
    use = jnp.arange(n) < n_flip  # the first n_flip draws (a row drawn twice keeps one of them)
    rows = jnp.where(use, rows, n)  # out of range: dropped by the scatter
    out = labels.at[rows].set(new_class, mode="drop")
    picked = jnp.zeros(n, bool).at[rows].set(True, mode="drop")
  else:
    score = jnp.where(known, jax.random.uniform(k_pick, (n,)), jnp.inf)
    rank = jnp.argsort(jnp.argsort(score))  # a uniformly random order of the known rows
    picked = known & (rank < n_flip)
    shift = jax.random.randint(k_class, (n,), 1, num_classes)  # 1..C-1: never the same class
    out = jnp.where(picked, (labels + shift) % num_classes, labels)
  return (out, picked) if return_mask else out


@jax.jit
def va_only_labels(va, priors, means, covs):
  """Labels for a VA-only dataset (Aff-Wild, Sec. 4.1/5.1) from another dataset's GMM.

  p = gmm_labels(va, ...) with the (e.g. AffectNet training) statistics, and the categorical
  label its argmax. Returns (labels [N] int32, -1 where VA is not finite; p [N, C]).
  """
  p = gmm_labels(va, priors, means, covs)
  finite = jnp.all(jnp.isfinite(p), axis=-1)
  labels = jnp.argmax(jnp.where(finite[:, None], p, 0.0), axis=-1).astype(jnp.int32)
  return jnp.where(finite, labels, -1), p
