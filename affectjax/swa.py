"""Stochastic weight averaging (Izmailov et al. 2018; dual_domain_fusion.md Sec. 4.2) as pure
functions over a params pytree: an equal-weight running mean of the weights along the trajectory.

BatchNorm's running statistics belong to the weights they were collected with, so after
averaging they must be recomputed for the SWA params (one pass over training batches,
recompute_batch_stats) before the SWA model is evaluated; the averaged params alone are not enough.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import jax
from flax import struct
import jax.numpy as jnp

__all__ = ["SWAState", "swa_init", "swa_update", "recompute_batch_stats"]


@struct.dataclass
class SWAState:
  """params: the running mean (float32 leaves); count: how many params it averages (int32 [])."""
  params: Any
  count: jax.Array


def swa_init(params) -> SWAState:
  """An empty average shaped like params (count 0): the first swa_update sets it to its params."""
  return SWAState(jax.tree_util.tree_map(lambda p: jnp.zeros(jnp.shape(p), jnp.float32), params),
                  jnp.zeros((), jnp.int32))


def swa_update(swa_state: SWAState, params, active=True) -> SWAState:
  """Adds params to the mean: mean += (params - mean) / (count + 1), count += 1.

  active: a bool (or traced bool scalar, so the update can sit inside a jitted step); when False
  the state is returned unchanged. E.g. active = (step >= swa_start) & (step % swa_every == 0).
  """
  active = jnp.asarray(active)
  n = swa_state.count.astype(jnp.float32) + 1.0
  mean = jax.tree_util.tree_map(
      lambda m, p: jnp.where(active, m + (jnp.asarray(p, jnp.float32) - m) / n, m),
      swa_state.params, params)
  return SWAState(mean, swa_state.count + active.astype(jnp.int32))


def recompute_batch_stats(apply_fn: Callable, params, batch_stats, batches: Iterable,
                          momentum: float = 0.9):
  """BatchNorm statistics of `params` as the equal-weight mean of per-batch statistics over
  `batches` (torch.optim.swa_utils.update_bn with momentum=None).

  apply_fn(variables, batch) -> (outputs, {"batch_stats": ...}) runs the model in training mode
  with mutable=["batch_stats"], e.g.
    lambda v, b: model.apply(v, b["image"], train=True, mutable=["batch_stats"]).
  batch_stats: any tree of the right structure (shapes only are used). momentum: the modules'
  BatchNorm momentum (ResNet18: 0.9): starting from zeros, one training-mode call stores
  (1 - momentum) x the batch mean and variance, which are divided back out. Returns the new
  batch_stats (float32).
  """
  zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(jnp.shape(s), jnp.float32), batch_stats)

  @jax.jit
  def one(params, batch):
    _, updates = apply_fn({"params": params, "batch_stats": zeros}, batch)
    return jax.tree_util.tree_map(lambda s: s / (1.0 - momentum), updates["batch_stats"])

  total, count = None, 0
  for batch in batches:
    stats = one(params, batch)
    total = stats if total is None else jax.tree_util.tree_map(jnp.add, total, stats)
    count += 1
  if count == 0:
    raise ValueError("recompute_batch_stats needs at least one batch")
  return jax.tree_util.tree_map(lambda s: s / count, total)
