"""Class-weighted classification and VA-regression losses of dual-domain fusion
(dual_domain_fusion.md Sec. 3.3, Eqs. 5-9). Per-example unless noted.

The paper writes one W_k in each loss. With a soft (fused) target y, Eq. 6's W_k y log p is read
term by term, -sum_k W_k y_k log p_k (the weight of each class on that class's share of the target;
as PyTorch's weighted cross-entropy with probability targets); Eq. 7's single weight is then the
target's expected class weight sum_k W_k y_k. Both equal W of the true class for a one-hot target.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["class_weights", "weighted_cross_entropy", "cosine_loss", "weighted_l2",
           "dual_domain_loss"]


@functools.partial(jax.jit, static_argnames=("num_classes",))
def class_weights(labels, num_classes: int) -> jax.Array:
  """Eq. 5: W_k = N_max / N_k from the training labels, [C] float32 (all ones when balanced).

  Labels of -1 are not counted. A class with no training rows gets weight 0 (it has no targets).
  """
  counts = jnp.sum(jax.nn.one_hot(jnp.asarray(labels).reshape(-1), num_classes), axis=0)
  return jnp.where(counts > 0, jnp.max(counts) / jnp.maximum(counts, 1.0), 0.0)


def weighted_cross_entropy(logits, targets, class_weights) -> jax.Array:
  """Eq. 6 per example: -sum_k W_k y_k log softmax(logits)_k, [N, C] x [N, C] x [C] -> [N].

  targets are distributions (fused labels) or one-hot rows; Eq. 6's 1/N is the caller's mean.
  """
  logp = jax.nn.log_softmax(jnp.asarray(logits).astype(jnp.float32), axis=-1)
  w = jnp.asarray(class_weights, jnp.float32)
  return -jnp.sum(w * targets * logp, axis=-1)  # Eq. 6


def cosine_loss(probs, targets, class_weights, labels=None, eps: float = 1e-8) -> jax.Array:
  """Eq. 7 per example: W (1 - cos(y, p)), [N, C] x [N, C] x [C] -> [N].

  W = sum_k W_k y_k (the target's expected class weight) by default; given int labels [N], W is
  the weight of each row's label (1 for label -1). cos = y.p / (|y| |p|), 0 for a zero target.
  """
  probs = jnp.asarray(probs, jnp.float32)
  targets = jnp.asarray(targets, jnp.float32)
  w = jnp.asarray(class_weights, jnp.float32)
  norms = jnp.linalg.norm(probs, axis=-1) * jnp.linalg.norm(targets, axis=-1)
  sim = jnp.sum(probs * targets, axis=-1) / jnp.maximum(norms, eps)
  row_w = jnp.sum(w * targets, axis=-1) if labels is None else _label_weights(w, labels)
  return row_w * (1.0 - sim)  # Eq. 7


def _label_weights(class_weights, labels):
  labels = jnp.asarray(labels).reshape(-1)
  return jnp.where(labels >= 0, class_weights[jnp.clip(labels, 0, None)], 1.0)


def weighted_l2(pred, target, class_weights, labels) -> jax.Array:
  """Eq. 8 per example: W_{label} ||x_n - x_hat_n||_2^2, [N, 2] x [N, 2] x [C] x [N] -> [N].

  Label -1 has weight 1. A row with non-finite target VA contributes 0 (and no gradient).
  """
  pred = jnp.asarray(pred).astype(jnp.float32)
  target = jnp.asarray(target, jnp.float32)
  ok = jnp.all(jnp.isfinite(target), axis=-1)
  diff = jnp.where(ok[:, None], pred - jnp.nan_to_num(target), 0.0)
  w = _label_weights(jnp.asarray(class_weights, jnp.float32), labels)
  return jnp.where(ok, w * jnp.sum(jnp.square(diff), axis=-1), 0.0)  # Eq. 8


def dual_domain_loss(logits, va_pred, targets, va_target, class_weights, labels, *,
                     ce_weight: float = 1.0, cos_weight: float = 1.0, l2_weight: float = 1.0):
  """Eq. 9: L = L_2 + L_CE + L_CS, each the mean over the rows that carry its target.

  logits [N, C], va_pred [N, 2] (the tanh head), targets [N, C] fused labels (fuse()), va_target
  [N, 2] (NaN where unknown), class_weights [C] (class_weights()), labels [N] int (the true or,
  for VA-only data, argmax class; weights Eq. 8). L_CE and L_CS average over rows whose target is
  not all zeros, L_2 over rows with finite VA (the paper's 1/N when every row has both).
  The *_weight multipliers are 1 in the paper. Returns (scalar loss, {"ce", "cos", "l2"}).
  """
  targets = jnp.asarray(targets, jnp.float32)
  has_t = (jnp.sum(targets, axis=-1) > 0).astype(jnp.float32)
  has_va = jnp.all(jnp.isfinite(jnp.asarray(va_target, jnp.float32)), -1).astype(jnp.float32)
  probs = jax.nn.softmax(jnp.asarray(logits).astype(jnp.float32), axis=-1)
  ce = jnp.sum(has_t * weighted_cross_entropy(logits, targets, class_weights))
  cos = jnp.sum(has_t * cosine_loss(probs, targets, class_weights))
  l2 = jnp.sum(weighted_l2(va_pred, va_target, class_weights, labels))
  ce, cos = ce / jnp.maximum(jnp.sum(has_t), 1.0), cos / jnp.maximum(jnp.sum(has_t), 1.0)
  l2 = l2 / jnp.maximum(jnp.sum(has_va), 1.0)
  total = l2_weight * l2 + ce_weight * ce + cos_weight * cos  # Eq. 9
  return total, {"ce": ce, "cos": cos, "l2": l2}
