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

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from affectjax import objective as objective_lib
from affectjax import optim
from affectjax.config import check_choices, expect
from affectjax.data import source as source_lib, sources
from affectjax.data.source import ArraySource
from affectjax.data.sources import Splits, synthetic_arrays, view_seed
from affectjax.methods.base import Method, data_stream
from affectjax.methods.levasa import evaluate as levasa_eval
from affectjax.methods.levasa.objective import PLAYER, Context, eq3, variables
from affectjax.nn.vae import ChunkedVAE, Decoder

VARIANTS = ("vanilla", "continuous", "discrete")
VA_LOSSES = ("mse", "bce", "ce", "broadcast_mse")
NEEDS = ("has_images",)  # methods.validate checks it against sources.dataset_info
CHOICES = {
    "variant": VARIANTS,
    "model.arch": ("paper", "original"),
    "model.head": ("mlp", "linear"),
    "loss.kl": ("squared", "plain"),
    "loss.va_loss": VA_LOSSES,
    "data.annotation_transfer.reference": ("auto", "synthetic_faces", "affectnet_published"),
}


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
  objective_lib.check_config(config, ("main",))


def make_method(config, data: Splits, *, objective=None, objectives=None) -> Method:
  """LeVAsa from its config and the loaded splits; `objective` replaces Eq. 3 (objective.eq3's
  signature, affectjax.objective's contract; config.loss.fn names one from the command line)."""
  data = prepare_data(config, data)
  model = build_model(config)
  players = {PLAYER: optim.make_player(config.optim, config.train.num_steps)}
  phases = objective_lib.inject([objective_lib.Phase("main", eq3, (PLAYER,))], config,
                                objective, objectives)
  train_step = objective_lib.make_step(phases, players, Context(model, config))

  def init(key, batch):
    k_params, k_sample = jax.random.split(key)
    image = jnp.asarray(batch["data"]["image"])
    v = model.init({"params": k_params}, image, k_sample, train=False)
    params = {PLAYER: v["params"]}
    return objective_lib.State(step=jnp.zeros((), jnp.int32), params=params,
                               opt_state=objective_lib.init_opt_state(players, params),
                               aux=v.get("batch_stats"))

  def represent(state, batch):
    """{'mu': mean of q(z | x) = [z_v, z_a, z_z]} (the representation the paper evaluates)."""
    v = variables(state.params[PLAYER], state.aux)
    return {"mu": model.apply(v, jnp.asarray(batch["image"]), method=model.encode)[0]}

  return Method(init=init, train_step=train_step,
                streams=data_stream(data, config, keys=("image", "va")),
                evaluate=functools.partial(levasa_eval.evaluate, model=model, config=config),
                report=functools.partial(levasa_eval.report, model=model, config=config),
                represent=represent, data=data, phases=phases)


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
    reference = sources.dataset_info(data).va_reference
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
  return dataclasses.replace(splits, train=out["train"], test=out["test"], metadata=metadata)

