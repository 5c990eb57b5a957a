"""LeVAsa evaluation on held-out identities: encodings, alignment, probes, tables and figures."""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from affectjax.data import pipeline


def _variables(state):
  v = {"params": state.params}
  if state.batch_stats is not None:
    v["batch_stats"] = state.batch_stats
  return v


def encode(state, source, *, model, config, limit=None, reconstruct=False) -> dict:
  """mu (z = mu at evaluation, as the paper), head outputs and annotations for a whole split."""
  chunk = tuple(config.model.chunk_sizes)

  @jax.jit
  def fn(variables, images):
    mu, logvar = model.apply(variables, images, method=model.encode)
    out = {"mu": mu, "logvar": logvar}
    if model.head_dim:
      out["r_v"], out["r_a"] = model.apply(variables, mu, method=model.heads)
    if reconstruct:
      x_hat = model.apply(variables, mu, method=model.decode)
      out["pixel_mse"] = jnp.mean(jnp.square(x_hat - images), axis=(1, 2, 3))
    return out

  variables = _variables(state)

  def batch_fn(batch):
    out = dict(fn(variables, jnp.asarray(batch["image"])))
    out.update(va=batch["va"], label=batch["label"], factors=batch["factors"])
    return out

  res = pipeline.map_batches(batch_fn, source, config.eval.batch_size, limit=limit)
  a, b = chunk[0], chunk[0] + chunk[1]
  res["z_v"], res["z_a"], res["z_z"] = res["mu"][:, :a], res["mu"][:, a:b], res["mu"][:, b:]
  return res


def head_va(enc: dict, config) -> np.ndarray | None:
  """LeVAsa's VA readout [N, 2] from its heads (expected level for discrete heads), else None."""
  if "r_v" not in enc:
    return None
  if enc["r_v"].shape[-1] == 1:
    return np.concatenate([enc["r_v"], enc["r_a"]], -1)
  levels = config.loss.va_levels
  grid = np.arange(-levels, levels + 1) / levels
  sm = lambda x: np.exp(x - x.max(-1, keepdims=True)) / np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)
  return np.stack([sm(enc["r_v"]) @ grid, sm(enc["r_a"]) @ grid], -1)


def evaluate(state, data, workdir, *, model, config) -> dict:
  """Cheap periodic metrics on the held-out split."""
  enc = encode(state, data.test, model=model, config=config, limit=1024, reconstruct=True)
  out = {"pixel_mse": float(enc["pixel_mse"].mean())}
  pred = head_va(enc, config)
  known = np.all(np.isfinite(enc["va"]), -1)
  if pred is not None and known.any():
    err = pred[known] - enc["va"][known]
    out["va_mse_valence"], out["va_mse_arousal"] = (float(x) for x in np.mean(err**2, 0))
  return out


def report(state, data, workdir, *, model, config) -> dict:
  raise NotImplementedError
