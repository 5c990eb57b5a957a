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

import numpy as np

from affectjax import losses, optim
from affectjax.config import ConfigError, check_choices, expect
from affectjax.data import source as source_lib
from affectjax.data.source import ArraySource
from affectjax.data.sources import Splits, synthetic_arrays, view_seed
from affectjax.methods.base import Method, data_stream, resolve
from affectjax.nn.vae import ChunkedVAE, Decoder

VARIANTS = ("vanilla", "continuous", "discrete")
VA_LOSSES = ("mse", "bce", "ce", "broadcast_mse")
CHOICES = {
    "variant": VARIANTS,
    "model.arch": ("paper", "original"),
    "model.head": ("mlp", "linear"),
    "loss.kl": ("squared", "plain"),
    "loss.va_loss": VA_LOSSES,
    "data.annotation_transfer.reference": ("auto", "synthetic_faces", "affectnet_published"),
}


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
  """LeVAsa's own fields; one ConfigError line each (before any data is generated or read)."""
  check_choices(config, CHOICES)
  l, m = config.loss, config.model
  expect(not (config.variant == "continuous" and l.va_loss not in ("mse", "broadcast_mse")),
         f"config.loss.va_loss={l.va_loss!r}: the continuous variant needs 'mse' or 'broadcast_mse'")
  expect(not (config.variant == "discrete" and l.va_loss not in ("bce", "ce")),
         f"config.loss.va_loss={l.va_loss!r}: the discrete variant needs 'bce' or 'ce'")
  expect(not (m.arch == "original" and config.data.image_size != 64),
         f"config.data.image_size={config.data.image_size}: model.arch='original' (the public "
         "code's shapes) needs 64")
  side = 2 ** len(Decoder.channels)  # the paper arch halves the image once per conv layer
  expect(m.arch != "paper" or config.data.image_size % side == 0,
         f"config.data.image_size={config.data.image_size}: model.arch='paper' halves the image "
         f"{len(Decoder.channels)} times, so it needs a positive multiple of {side}")
  expect(len(m.chunk_sizes) == 3 and all(int(c) > 0 for c in m.chunk_sizes),
         f"config.model.chunk_sizes={tuple(m.chunk_sizes)}: expected three positive sizes (z_v, z_a, z_z)")
  expect(m.head_hidden > 0, f"config.model.head_hidden={m.head_hidden} must be > 0")
  for name in ("kl_weight", "va_weight"):
    expect(l[name] >= 0, f"config.loss.{name}={l[name]} must be >= 0")
  expect(l.va_levels > 0, f"config.loss.va_levels={l.va_levels} must be > 0")
  for name in ("ceiling_max_steps", "ceiling_eval_every", "ceiling_patience", "ceiling_batch_size"):
    expect(config.eval[name] > 0, f"config.eval.{name}={config.eval[name]} must be > 0")
  expect(config.data.annotation_transfer.levels >= 0,
         f"config.data.annotation_transfer.levels={config.data.annotation_transfer.levels} must be >= 0")
  try:
    resolve(l.fn, eq3_loss)
  except (ImportError, ValueError) as e:
    raise ConfigError(f"config.loss.fn={l.fn!r}: {e}") from None


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


eq3_loss = loss_fn  # the default (make_method's loss_fn argument shadows the name)


def make_method(config, data: Splits, *, loss_fn=None) -> Method:
  """LeVAsa from its config and the loaded splits; `loss_fn` replaces Eq. 3 (same signature as
  `loss_fn` above; config.loss.fn names one from the command line)."""
  data = prepare_data(config, data)
  model = build_model(config)
  player = optim.make_player(config.optim, config.train.num_steps)
  compute_loss = functools.partial(loss_fn or resolve(config.loss.fn, eq3_loss),
                                   model=model, config=config)

  def init(key, batch):
    k_params, k_sample = jax.random.split(key)
    image = jnp.asarray(batch["data"]["image"])
    variables = model.init({"params": k_params}, image, k_sample, train=False)
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=player.init(params),
                      batch_stats=variables.get("batch_stats"))

  def train_step(state, batch, key):
    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)
    (_, (metrics, stats)), grads = grad_fn(state.params, state.batch_stats, batch["data"], key)
    params, opt_state = player.update(grads, state.opt_state, state.params, state.step)
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                         batch_stats=stats), metrics

  def represent(state, batch):
    """mu of q(z | x) = [z_v, z_a, z_z] (the representation the paper evaluates)."""
    variables = {"params": state.params}
    if state.batch_stats is not None:
      variables["batch_stats"] = state.batch_stats
    return model.apply(variables, jnp.asarray(batch["image"]), method=model.encode)[0]

  from affectjax.methods import levasa_eval
  return Method(init=init, train_step=train_step,
                streams=data_stream(data, config, keys=("image", "va")),
                evaluate=functools.partial(levasa_eval.evaluate, model=model, config=config),
                report=functools.partial(levasa_eval.report, model=model, config=config),
                represent=represent, data=data)


# ---------------------------------------------------------------- Algorithm 1 (data preparation)

def prepare_data(config, splits: Splits) -> Splits:
  """The splits LeVAsa trains on: VA by annotation transfer where asked (Algorithm 1)."""
  transfer = config.data.annotation_transfer
  return transfer_va(splits, config.data, config.seed) if transfer.enabled else splits


def transfer_va(splits: Splits, data, seed: int) -> Splits:
  """LeVAsa Algorithm 1, lines 1-5: VA for the examples that have a label but no VA.

  Reference ellipses: the AffectNet-like synthetic set (synthetic data), AffectNet's published
  statistics (REFERENCE.md), or reference='auto' for the first on synthetic data and the second
  on real data. Examples that already carry VA keep it (then the transfer is a no-op).
  """
  import jax
  from affectjax.affect import ellipses as ell

  transfer = data.annotation_transfer
  reference = transfer.reference
  if reference == "auto":
    reference = "synthetic_faces" if data.name == "synthetic_faces" else "affectnet_published"
  if reference == "synthetic_faces":
    ref = synthetic_arrays(data, seed, "affectnet_like")
    fitted = ell.fit_ellipses(ref["label"], ref["va"], data.num_classes)
  elif reference == "affectnet_published":
    from affectjax.affect import affectnet_stats
    c = data.num_classes
    fitted = ell.from_stats(affectnet_stats.VA_MEANS[:c], affectnet_stats.VA_STDS[:c])
  else:
    raise ValueError(f"config.data.annotation_transfer.reference={reference!r} is unknown; "
                     "expected auto, synthetic_faces or affectnet_published")
  key = jax.random.key(view_seed(seed, "annotation_transfer"))
  out, filled = {}, 0
  for i, (name, split) in enumerate((("train", splits.train), ("test", splits.test))):
    read = (lambda k: split.arrays[k]) if isinstance(split, ArraySource) else (
        lambda k: source_lib.read_field(split, k))
    labels, va = read("label"), read("va").astype(np.float32)
    missing = ~np.all(np.isfinite(va), axis=-1)
    if np.any(labels[missing] < 0):
      raise ValueError(f"annotation transfer needs a label where VA is unknown; "
                       f"{int(np.sum(labels[missing] < 0))} {name} examples have neither")
    if not missing.any():
      out[name] = split
      continue
    sampled = np.asarray(ell.sample_va(jax.random.fold_in(key, i), fitted, np.maximum(labels, 0)))
    if transfer.levels:  # Alg. 1 line 5: discretise by scaling and rounding
      sampled = np.asarray(ell.undiscretize_va(ell.discretize_va(sampled, transfer.levels), transfer.levels))
    va[missing] = sampled[missing]
    filled += int(missing.sum())
    out[name] = source_lib.WithFields(split, {"va": va})
  if not filled:
    return splits
  metadata = dict(splits.metadata, ellipses=fitted, va_levels=transfer.levels,
                  va_source=f"annotation transfer from {reference} ({filled} examples)")
  return Splits(out["train"], out["test"], metadata)

