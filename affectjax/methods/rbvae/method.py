"""Rb-VAE and sRb-VAE, and the unsupervised baselines of Table 1 (../shared/papers/rbvae.md).

Two input streams: 'unlabelled' images x ~ p^u(x) and 'reference' images x_r ~ p^r(x) whose target
factors are constant (untransformed digits, neutral faces). Variants (config.variant):
- rbvae  (Eq. 3): E_u[KL(q(z|x) q(e|x) || p(z) p(e)) - log p(x|z, e)]
                  + E_r[KL(q(z|x_r) || p(z)) - log p(x_r|z_r, e_r)], with a learned reference vector e_r;
- srbvae (Eqs. 8-10, Algorithm 1): the symmetric KL by two density-ratio discriminators d_xi(x, z, e)
  (unlabelled pairs) and d_gamma(x, z) (reference pairs), plus the explicit reconstruction terms of
  Sec. 4.3; four players (encoders psi, generator theta with e_r, d_xi, d_gamma), each with its own
  optax optimiser;
- vae, beta_vae, dip_vae_i, dip_vae_ii, svae: one encoder q(z|x) and G(z) on the same networks,
  unsupervised: they train on the unlabelled and the reference batch together (y unused).
p(x|.) is a Laplace with scale lambda = 0.01 (Sec. 5.2). Every player: Adam(1e-4, 0.5, 0.99, 1e-8),
batch 36 per stream (Sec. 5.2). The objectives are in objective.py, the evaluation (Table 1,
Figs. 3-4) in evaluate.py.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import math

import jax
import jax.numpy as jnp
import numpy as np

from affectjax import objective as objective_lib
from affectjax import optim
from affectjax.config import check_choices, expect
from affectjax.data import source as source_lib
from affectjax.data.source import ArraySource, subset
from affectjax.data.sources import Splits
from affectjax.methods.base import Method, Stream
from affectjax.methods.rbvae import objective as rb_obj
# by name: the package's attribute `evaluate` is the function, not the module
from affectjax.methods.rbvae.evaluate import evaluate as evaluate_model, read as _read, report as report_model
from affectjax.nn import rbvae as nets

VARIANTS = ("vae", "beta_vae", "svae", "dip_vae_i", "dip_vae_ii", "rbvae", "srbvae")
REFERENCE_BASED = ("rbvae", "srbvae")
ADVERSARIAL = ("svae", "srbvae")
PHASE = "main"  # every variant trains in one phase (config.loss.fn replaces its objective)
NEEDS = ("has_images",)  # methods.validate checks it against sources.dataset_info
CHOICES = {
    "variant": VARIANTS,
    # how the reference set is found in the training split: auto -> the split's is_reference
    # field when it marks any example, else the neutral label; neutral -> label 0 (the clean label
    # on synthetic faces)
    "data.reference": ("auto", "is_reference", "neutral"),
}


# ---------------------------------------------------------------- networks and players

def player_names(variant: str) -> tuple[str, ...]:
  if variant == "srbvae":
    return ("encoders", "generator", "d_xi", "d_gamma")
  if variant == "svae":
    return ("encoders", "generator", "d_gamma")  # one d(x, z): d_gamma's architecture (no e)
  return ("encoders", "generator")


def networks(config) -> dict:
  m = config.model
  ch, dt = tuple(m.channels), jnp.dtype(m.dtype)
  out = {"generator": nets.Generator(ch, m.base_size, 3, dt)}
  if config.variant in REFERENCE_BASED:
    out["encoders"] = nets.RbEncoder(m.z_dim, m.e_dim, ch, m.encoder_hidden, dt)
  else:
    out["encoders"] = nets.Encoder(m.z_dim, ch, m.encoder_hidden, dt)
  disc = functools.partial(nets.Discriminator, ch, m.disc_hidden, m.disc_latent_hidden,
                           m.disc_dropout, dt)
  for name in player_names(config.variant)[2:]:
    out[name] = disc()
  return out


def players(config) -> dict:
  """One optax player per parameter group (affectjax.optim.make_player), all from config.optim."""
  return {name: optim.make_player(config.optim, config.train.num_steps)
          for name in player_names(config.variant)}


# ---------------------------------------------------------------- validation and data

def validate(config):
  """Rb-VAE's own fields; one ConfigError line each (before any data is generated or read)."""
  check_choices(config, CHOICES)
  m, l = config.model, config.loss
  for name in ("z_dim", "e_dim", "encoder_hidden", "disc_hidden", "disc_latent_hidden", "base_size"):
    expect(isinstance(m[name], int) and m[name] > 0, f"config.model.{name}={m[name]!r} must be a positive integer")
  expect(len(m.channels) >= 1 and all(int(c) > 0 for c in m.channels),
         f"config.model.channels={tuple(m.channels)}: expected positive widths")
  side = m.base_size * 2 ** (len(m.channels) - 1)
  expect(side == config.data.image_size,
         f"config.data.image_size={config.data.image_size}: model.base_size * 2^(len(channels) - 1)"
         f" = {side} must equal it")
  expect(0.0 <= m.disc_dropout < 1.0, f"config.model.disc_dropout={m.disc_dropout} must be in [0, 1)")
  expect(m.dtype in ("float32", "bfloat16"), f"config.model.dtype={m.dtype!r}: expected 'float32' or 'bfloat16'")
  expect(l.laplace_scale > 0, f"config.loss.laplace_scale={l.laplace_scale} must be > 0")
  for name in ("beta", "dip_lambda", "dip_lambda_d", "recon_weight"):
    expect(l[name] >= 0, f"config.loss.{name}={l[name]} must be >= 0")
  expect(config.train.batch_size > 1, f"config.train.batch_size={config.train.batch_size} must be > 1")
  d = config.data
  expect(d.num_digits >= 0, f"config.data.num_digits={d.num_digits} must be >= 0 (0: all)")
  expect(d.probe_copies >= 0, f"config.data.probe_copies={d.probe_copies} must be >= 0 (0: auto)")
  expect(config.train.epochs >= 0,
         f"config.train.epochs={config.train.epochs} must be >= 0 (0: train.num_steps as given)")
  expect(0.0 < d.probe_fraction < 1.0, f"config.data.probe_fraction={d.probe_fraction} must be in (0, 1)")
  for name in ("num_figure_rows", "max_probe_examples"):
    expect(config.eval[name] >= 0, f"config.eval.{name}={config.eval[name]} must be >= 0")
  objective_lib.check_config(config, (PHASE,))


def neutral_mask(source, info) -> np.ndarray:
  """Neutral examples (label 0): the clean label on synthetic faces, the given label otherwise."""
  names = tuple(info.factor_names)
  if info.rendered and "clean_label" in names:
    return _read(source, "factors")[:, names.index("clean_label")].astype(np.int64) == 0
  return _read(source, "label").astype(np.int64) == 0


def reference_mask(config, splits: Splits) -> np.ndarray:
  """Which training examples form the reference set (config.data.reference)."""
  rule = config.data.reference
  marked = None
  if rule in ("auto", "is_reference"):
    try:
      marked = _read(splits.train, "is_reference").astype(bool)
    except KeyError:
      marked = None
    if rule == "is_reference" and (marked is None or not marked.any()):
      raise ValueError("config.data.reference='is_reference': the training split marks no "
                       "example as is_reference")
  mask = marked if marked is not None and marked.any() else neutral_mask(splits.train, splits.info)
  if mask.all() or not mask.any():
    raise ValueError(f"the training split has {int(mask.sum())} reference and "
                     f"{int((~mask).sum())} unlabelled examples; both sets must be non-empty "
                     f"(config.data.reference={rule!r})")
  return mask


def prepare_data(config, splits: Splits) -> Splits:
  """Marks is_reference on the training split (faces: neutral -> reference, expressive ->
  unlabelled) and finds the two probe splits (Splits.probe_fit; test = probe_score): a source
  without them has its test split halved at random (seeded by config.seed): by person when it
knows identities, else by row."""
  mask = reference_mask(config, splits)
  train = splits.train
  if isinstance(train, ArraySource):
    train = ArraySource({**train.arrays, "is_reference": mask}, dict(train.metadata))
  else:
    train = source_lib.WithFields(train, {"is_reference": mask})
  meta = dict(splits.metadata, num_reference=int(mask.sum()), num_unlabelled=int((~mask).sum()))
  test, probe_fit = splits.test, splits.probe_fit
  if probe_fit is None:
    fit_rows, meta["probe_split"] = _probe_fit_rows(test, np.random.default_rng(config.seed + 7))
    rest = np.setdiff1d(np.arange(len(test)), fit_rows)
    probe_fit, test = subset(test, fit_rows), subset(test, rest)
  return dataclasses.replace(splits, train=train, test=test, metadata=meta, probe_fit=probe_fit)


def _identities(source):
  """The identity of every example, or None when the source has no identity field."""
  first = source.gather(np.arange(min(1, len(source))))
  return _read(source, "identity") if "identity" in first else None


def _probe_fit_rows(test, rng) -> tuple[np.ndarray, str]:
  """Rows of the test split the probes are fitted on (the rest scores them): half of its people
  when it knows identities (so a probe cannot score on the faces of people it was fitted on, as
  the digits' halves hold disjoint digits, Sec. 5.3), else half of its rows; sorted, with how."""
  ids = _identities(test)
  if ids is not None and len(np.unique(ids)) >= 2:
    people = rng.permutation(np.unique(ids))
    return np.flatnonzero(np.isin(ids, people[: len(people) // 2])), "by identity"
  return np.sort(rng.permutation(len(test))[: len(test) // 2]), "by row"


def resolve_num_steps(config, num_unlabelled: int) -> int:
  """Sec. 5.2's schedule on the data actually loaded: train.epochs passes (30 on MNIST, 20 on
  AffectNet) over the unlabelled set, as steps of train.batch_size; train.epochs = 0 keeps
  train.num_steps as given."""
  epochs = float(config.train.epochs)
  if epochs <= 0:
    return int(config.train.num_steps)
  return max(1, math.ceil(epochs * num_unlabelled / config.train.batch_size))


# ---------------------------------------------------------------- the method

def make_method(config, data: Splits, *, objective=None, objectives=None) -> Method:
  """Rb-VAE/sRb-VAE or a baseline from its config and the loaded splits. `objective` replaces the
  variant's objective (objective.DEFAULTS; affectjax.objective's contract, losses for the players
  of player_names(variant)); config.loss.fn names one from the command line. With
  config.train.epochs > 0, config.train.num_steps is set here from the unlabelled set loaded
  (resolve_num_steps)."""
  data = prepare_data(config, data)
  mask = _read(data.train, "is_reference").astype(bool)
  steps = resolve_num_steps(config, int((~mask).sum()))
  if steps != config.train.num_steps:  # the config's count assumed other data (e.g. sklearn's, not MNIST)
    print(f"rbvae: {config.train.epochs:g} epochs (config.train.epochs) of the {int((~mask).sum()):,} "
          f"unlabelled images loaded: train.num_steps {config.train.num_steps} -> {steps} "
          "(config.train.epochs=0 trains train.num_steps as given)", flush=True)
    config.train.num_steps = steps  # before the players: their schedules read it
  nets_ = networks(config)
  player_map = players(config)
  phases = objective_lib.inject(
      [objective_lib.Phase(PHASE, rb_obj.DEFAULTS[config.variant], player_names(config.variant))],
      config, objective, objectives)
  step = objective_lib.make_step(phases, player_map, rb_obj.Context(nets_, config))
  bs = config.train.batch_size
  streams = {
      "unlabelled": Stream(subset(data.train, np.flatnonzero(~mask)), bs, ("image",), 0),
      "reference": Stream(subset(data.train, np.flatnonzero(mask)), bs, ("image",), 7919),
  }
  rb = config.variant in REFERENCE_BASED

  def init(key, batch):
    x = jnp.asarray(batch["unlabelled"]["image"][:2], jnp.float32)
    ks = jax.random.split(key, 4)
    zd, ed = config.model.z_dim, config.model.e_dim
    z = jnp.zeros((x.shape[0], zd))
    e = jnp.zeros((x.shape[0], ed)) if rb else None
    params = {"encoders": nets_["encoders"].init(ks[0], x)["params"],
              "generator": {"net": nets_["generator"].init(ks[1], z, e)["params"]}}
    if rb:
      params["generator"]["e_r"] = jnp.zeros((ed,), jnp.float32)  # the learned reference vector
    if "d_xi" in nets_:
      params["d_xi"] = nets_["d_xi"].init(ks[2], x, z, jnp.zeros((x.shape[0], ed)))["params"]
    if "d_gamma" in nets_:
      params["d_gamma"] = nets_["d_gamma"].init(ks[3], x, z, None)["params"]
    return objective_lib.State(step=jnp.zeros((), jnp.int32), params=params,
                               opt_state=objective_lib.init_opt_state(player_map, params))

  def train_step(state, batch, key):
    state, metrics = step(state, batch, key)
    if rb:  # the reference vector after this step's update
      metrics = dict(metrics, e_r_norm=jnp.linalg.norm(state.params["generator"]["e_r"]))
    return state, metrics

  def represent(state, batch):
    """{'z': mean of q(z|x)} and, for Rb-VAE/sRb-VAE, {'e': mean of q(e|x)} (Table 1 scores e
    and z apart)."""
    x = jnp.asarray(batch["image"], jnp.float32)
    out = {"z": rb_obj.encode(nets_, state.params, x, "z")[0]}
    if rb:
      out["e"] = rb_obj.encode(nets_, state.params, x, "e")[0]
    return out

  def generate(state, batch, key=None):
    """G(z, e) from batch {'z', 'e'}; a missing 'e' is e_r (reference images) for Rb-VAE."""
    z = jnp.asarray(batch["z"], jnp.float32)
    if not rb:
      return rb_obj.generate(nets_, state.params, z)
    e = batch.get("e")
    if e is None:
      e = jnp.broadcast_to(state.params["generator"]["e_r"], (z.shape[0], config.model.e_dim))
    return rb_obj.generate(nets_, state.params, z, jnp.asarray(e, jnp.float32))

  evaluate, report = evaluation(config, represent, generate)
  return Method(init=init, train_step=train_step, streams=streams, evaluate=evaluate,
                report=report, represent=represent, generate=generate, data=data, phases=phases)


def evaluation(config, represent, generate):
  """(evaluate, report) for Method: Table 1's numbers computed once per (step, data), shared by
  the loop's final evaluate and the report (any method with represent {'z'[, 'e']} and generate)."""
  represent_j, generate_j = jax.jit(represent), jax.jit(generate)
  cache = {}

  def evaluate(state, data, workdir):
    # the same parameters (the loop's evaluate, then the report) on the same data: computed once;
    # K seeds share step and data, so the key is the parameters' bytes, not the step
    digest = hashlib.sha1()
    for leaf in jax.tree.leaves(state.params):
      digest.update(np.ascontiguousarray(leaf).tobytes())
    key = (digest.hexdigest(), id(data))
    if key not in cache:
      cache.clear()
      cache[key] = evaluate_model(state, data, workdir, config=config, represent=represent_j,
                                    generate=generate_j)
    return dict(cache[key])

  report = functools.partial(report_model, config=config, evaluate=evaluate,
                             represent=represent_j, generate=generate_j)
  return evaluate, report
