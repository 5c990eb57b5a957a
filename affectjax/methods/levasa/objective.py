"""LeVAsa's objective (levasa.md Eqs. 1-3) in affectjax.objective's contract."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from affectjax import losses
from affectjax.nn.vae import ChunkedVAE
from affectjax.objective import Out

PLAYER = "vae"  # the one player: every parameter of the VAE and its heads


@dataclasses.dataclass(frozen=True)
class Context:
  """What the objective reads besides its arguments: the network and the config."""
  model: ChunkedVAE
  config: Any


def variables(params, batch_stats) -> dict:
  """Flax variables of the VAE (batch statistics only where the architecture has them)."""
  v = {"params": params}
  if batch_stats is not None:
    v["batch_stats"] = batch_stats
  return v


def va_regularisation(out: dict, va: jax.Array, *, variant: str, va_loss: str, levels: int,
                      chunk_sizes) -> jax.Array:
  """L_C per example (Eq. 2): L(r_v, v) + L(r_a, a); rows with unknown (NaN) VA contribute 0."""
  known = jnp.all(jnp.isfinite(va), axis=-1)
  va = jnp.where(known[:, None], va, 0.0)
  v, a = va[:, 0], va[:, 1]
  if va_loss == "broadcast_mse":
    cv = chunk_sizes[0]
    zv, za = out["z"][:, :cv], out["z"][:, cv:cv + chunk_sizes[1]]
    per = losses.va_broadcast_mse(zv, v) + losses.va_broadcast_mse(za, a)
  elif va_loss == "mse":
    per = losses.va_mse(out["r_v"], v) + losses.va_mse(out["r_a"], a)
  else:
    cls = jnp.clip(jnp.round(levels * va).astype(jnp.int32) + levels, 0, 2 * levels)
    fn = losses.va_bce if va_loss == "bce" else losses.va_cross_entropy
    per = fn(out["r_v"], cls[:, 0]) + fn(out["r_a"], cls[:, 1])
  return jnp.where(known, per, 0.0)


def eq3(params, aux, batch, key, step, ctx: Context) -> Out:
  """Eq. 3 averaged over the batch: L_R + lambda_KL L_KL (+ lambda_C L_C for LeVAsa).

  params {'vae': ...}; aux: the batch statistics (None for the paper's architecture)."""
  model, config = ctx.model, ctx.config
  l, x = config.loss, batch["data"]["image"]
  v = variables(params[PLAYER], aux)
  if aux is not None:
    out, updates = model.apply(v, x, key, train=True, mutable=["batch_stats"])
    new_stats = updates["batch_stats"]
  else:
    out, new_stats = model.apply(v, x, key, train=False), None
  recon = losses.squared_error(x, out["x_hat"])  # L_R
  kls = losses.chunked_kl(out["mu"], out["logvar"], tuple(config.model.chunk_sizes))
  kl = jnp.sum(jnp.square(kls), -1) if l.kl == "squared" else jnp.sum(kls, -1)  # Eq. 1
  total = recon + l.kl_weight * kl
  metrics = {"recon": recon.mean(), "kl": kl.mean(), "kl_plain": kls.sum(-1).mean()}
  if config.variant != "vanilla":
    reg = va_regularisation(out, batch["data"]["va"], variant=config.variant, va_loss=l.va_loss,
                            levels=l.va_levels, chunk_sizes=tuple(config.model.chunk_sizes))
    total = total + l.va_weight * reg  # Eq. 3
    metrics["va_reg"] = reg.mean()
  loss = total.mean()
  metrics["loss"] = loss
  return Out({PLAYER: loss}, metrics, new_stats)
