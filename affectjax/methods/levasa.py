"""LeVAsa and the Vanilla VAE (../shared/papers/levasa.md, Section 2.2).

Latent z = [z_v, z_a, z_z] with N(0, I) priors on every chunk. The Vanilla VAE minimises
L_R + lambda_KL * L_KL; LeVAsa adds projection heads r_v = h_v(z_v), r_a = h_a(z_a) and the
VA-regularisation L_C (Eq. 2): L_total = L_R + lambda_KL L_KL + lambda_C L_C (Eq. 3).

Switches that mimic the public code (../shared/REFERENCE.md) instead of the paper:
loss.kl='plain' (KL not squared), loss.va_loss='broadcast_mse' (no heads: every z_v dimension
regressed on v), loss.va_loss='ce' with model.head='linear' (discrete heads Linear(32, K) + CE),
model.arch='original' (the code's conv shapes), loss.kl_weight=0 for the Vanilla VAE.
"""
from __future__ import annotations

import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp

from affectjax import losses, optim
from affectjax.methods.base import Method
from affectjax.nn.vae import ChunkedVAE

VARIANTS = ("vanilla", "continuous", "discrete")
VA_LOSSES = ("mse", "bce", "ce", "broadcast_mse")


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  batch_stats: Any


def num_va_levels(config) -> int:
  """K discrete VA classes: round(levels * va) in -levels..levels."""
  return 2 * config.loss.va_levels + 1


def build_model(config) -> ChunkedVAE:
  m, l = config.model, config.loss
  if config.variant == "vanilla" or l.va_loss == "broadcast_mse":
    head_dim = 0
  else:
    head_dim = 1 if l.va_loss == "mse" else num_va_levels(config)
  return ChunkedVAE(tuple(m.chunk_sizes), config.data.image_size, arch=m.arch, head_dim=head_dim,
                    head_hidden=m.head_hidden, head_linear=(m.head == "linear"))


def validate(config):
  if config.variant not in VARIANTS:
    raise ValueError(f"config.variant={config.variant!r}; LeVAsa variants are {VARIANTS}")
  if config.loss.va_loss not in VA_LOSSES:
    raise ValueError(f"config.loss.va_loss={config.loss.va_loss!r}; expected one of {VA_LOSSES}")
  if config.variant == "continuous" and config.loss.va_loss not in ("mse", "broadcast_mse"):
    raise ValueError("continuous VA needs loss.va_loss mse or broadcast_mse")
  if config.variant == "discrete" and config.loss.va_loss not in ("bce", "ce"):
    raise ValueError("discrete VA needs loss.va_loss bce or ce")
  if config.model.arch == "original" and config.data.image_size != 64:
    raise ValueError("model.arch='original' (the public code's shapes) needs data.image_size=64")
  if len(config.model.chunk_sizes) != 3:
    raise ValueError("model.chunk_sizes must give the sizes of z_v, z_a, z_z")


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


def loss_fn(params, batch_stats, batch, key, *, model: ChunkedVAE, config, train: bool = True):
  """Eq. 3, averaged over the batch. Returns (loss, (metrics, new batch_stats))."""
  l = config.loss
  variables = {"params": params}
  if batch_stats is not None:
    variables["batch_stats"] = batch_stats
  if batch_stats is not None and train:
    out, updates = model.apply(variables, batch["image"], key, train=True, mutable=["batch_stats"])
    new_stats = updates["batch_stats"]
  else:
    out, new_stats = model.apply(variables, batch["image"], key, train=False), batch_stats
  recon = losses.squared_error(batch["image"], out["x_hat"])  # L_R
  kls = losses.chunked_kl(out["mu"], out["logvar"], tuple(config.model.chunk_sizes))
  kl = jnp.sum(jnp.square(kls), -1) if l.kl == "squared" else jnp.sum(kls, -1)  # Eq. 1
  total = recon + l.kl_weight * kl
  metrics = {"recon": recon.mean(), "kl": kl.mean(), "kl_plain": kls.sum(-1).mean()}
  if config.variant != "vanilla":
    reg = va_regularisation(out, batch["va"], variant=config.variant, va_loss=l.va_loss,
                            levels=l.va_levels, chunk_sizes=tuple(config.model.chunk_sizes))
    total = total + l.va_weight * reg  # Eq. 3
    metrics["va_reg"] = reg.mean()
  loss = total.mean()
  metrics["loss"] = loss
  return loss, (metrics, new_stats)


def make_method(config) -> Method:
  validate(config)
  model = build_model(config)
  tx = optim.make_optimizer(config.optim, config.train.num_steps)
  compute_loss = functools.partial(loss_fn, model=model, config=config)

  def init(key, batch):
    k_params, k_sample = jax.random.split(key)
    variables = model.init({"params": k_params}, jnp.asarray(batch["image"]), k_sample, train=False)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params),
                      batch_stats=variables.get("batch_stats"))

  def train_step(state, batch, key):
    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)
    (_, (metrics, stats)), grads = grad_fn(state.params, state.batch_stats, batch, key)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = jax.tree.map(lambda p, u: p + u, state.params, updates)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         batch_stats=stats), metrics

  from affectjax.methods import levasa_eval
  return Method(init=init, train_step=train_step,
                evaluate=functools.partial(levasa_eval.evaluate, model=model, config=config),
                report=functools.partial(levasa_eval.report, model=model, config=config))
