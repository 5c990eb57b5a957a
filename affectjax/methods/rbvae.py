"""Rb-VAE and sRb-VAE, and the unsupervised baselines of Table 1 (../shared/papers/rbvae.md).

Two input streams: 'unlabelled' images x ~ p^u(x) and 'reference' images x_r ~ p^r(x) whose target
factors are constant (untransformed digits, neutral faces). Variants (config.variant):
- rbvae  (Eq. 3): E_u[KL(q(z|x) q(e|x) || p(z) p(e)) - log p(x|z, e)]
                  + E_r[KL(q(z|x_r) || p(z)) - log p(x_r|z_r, e_r)], with a learned reference vector e_r;
- srbvae (Eqs. 8-10, Algorithm 1): the symmetric KL by two density-ratio discriminators d_xi(x, z, e)
  (unlabelled pairs) and d_gamma(x, z) (reference pairs), plus the explicit reconstruction terms of
  Sec. 4.3; four players (encoders psi, generator theta with e_r, d_xi, d_gamma), each with its own
  optax optimiser and Algorithm 1's update sign;
- vae, beta_vae, dip_vae_i, dip_vae_ii, svae: one encoder q(z|x) and G(z) on the same networks,
  unsupervised: they train on the unlabelled and the reference batch together (y unused).
p(x|.) is a Laplace with scale lambda = 0.01 (Sec. 5.2). Every player: Adam(1e-4, 0.5, 0.99, 1e-8),
batch 36 per stream (Sec. 5.2).

Evaluation (Sec. 5.3, Table 1): linear probes fitted on a second split (probe_fit) and scored on a
third (probe_score) on the means of q(e|x) (Rb-VAE, sRb-VAE), q(z|x) (the z-only control) or
q(z|x) of the baselines: style digits -> mean absolute error of linear regressors of scale, width,
R, G, B (each factor in [0, 1], see FACTOR_RANGES); faces -> per-class accuracy of a linear
classifier of the 7 expressions. On synthetic faces also: AU intensities predicted from e and how
much identity leaks into e. Figures: conditional synthesis (Fig. 3) and attribute transfer (Fig. 4).
"""
from __future__ import annotations

import functools
import json
import math
import os
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np

from affectjax import losses, optim
from affectjax.config import ConfigError, check_choices, expect
from affectjax.data import source as source_lib
from affectjax.data.source import ArraySource
from affectjax.data.sources import Splits
from affectjax.methods.base import Method, Stream, resolve
from affectjax.nn import rbvae as nets

VARIANTS = ("vae", "beta_vae", "svae", "dip_vae_i", "dip_vae_ii", "rbvae", "srbvae")
REFERENCE_BASED = ("rbvae", "srbvae")
ADVERSARIAL = ("svae", "srbvae")
CHOICES = {
    "variant": VARIANTS,
    # how the reference set is found in the training split: auto -> the split's is_reference
    # field when it marks any example, else the neutral label; neutral -> label 0 (the clean label
    # on synthetic faces)
    "data.reference": ("auto", "is_reference", "neutral"),
}
# Algorithm 1, line 20: theta <- theta + l g_theta, psi <- psi - l g_psi, xi <- xi + l g_xi,
# gamma <- gamma + l g_gamma (each g is the gradient of that player's own objective).
SIGNS = {"encoders": -1.0, "generator": 1.0, "d_xi": 1.0, "d_gamma": 1.0}
# Style-digit factors mapped to [0, 1] for the MAE of Table 1 (an assumption: the paper's MAEs,
# .03-.1, are only possible on such a scale): scale s in [0.5, 1], width k in 1..10, colour c/|c|_1.
FACTOR_RANGES = {"scale": (0.5, 1.0), "width": (1.0, 10.0), "color_r": (0.0, 1.0),
                 "color_g": (0.0, 1.0), "color_b": (0.0, 1.0)}
DIGIT_COLUMNS = (("R", "color_r"), ("G", "color_g"), ("B", "color_b"), ("Scale", "scale"),
                 ("Width", "width"))


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any  # {'encoders', 'generator' (incl. e_r), 'd_xi', 'd_gamma'} as the variant has them
  opt_state: Any  # one optax state per player, same keys


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


def _encode(nets_, params, x, which="z"):
  enc = nets_["encoders"]
  if isinstance(enc, nets.RbEncoder):
    method = enc.z_posterior if which == "z" else enc.e_posterior
    return enc.apply({"params": params["encoders"]}, x, method=method)
  return enc.apply({"params": params["encoders"]}, x)


def _generate(nets_, params, z, e=None):
  return nets_["generator"].apply({"params": params["generator"]["net"]}, z, e)


def _disc(nets_, params, name, x, z, e, key):
  return nets_[name].apply({"params": params[name]}, x, z, e, train=True, rngs={"dropout": key})


def _sample(key, mu, logvar):
  return mu + jnp.exp(0.5 * logvar) * jax.random.normal(key, mu.shape, mu.dtype)


def _sample_x(key, mean, scale, noise: bool):
  """x ~ Laplace(G(z, e), lambda) by the reparameterisation mean + lambda * Laplace(0, 1)."""
  return mean + scale * jax.random.laplace(key, mean.shape, mean.dtype) if noise else mean


# ---------------------------------------------------------------- losses (per variant)
# Each returns (M, J, metrics): M the model objective the encoders and generator minimise,
# J the discriminators' objective they maximise (0 without discriminators).

def _inputs(batch):
  x = jnp.asarray(batch["unlabelled"]["image"], jnp.float32)
  x_r = jnp.asarray(batch["reference"]["image"], jnp.float32)
  return x, x_r


def rbvae_loss(params, batch, key, *, nets_, config):
  """Eq. 3: unlabelled and reference negative ELBOs (Laplace NLL, analytic Gaussian KLs)."""
  lam = config.loss.laplace_scale
  x, x_r = _inputs(batch)
  k_z, k_e, k_zr = jax.random.split(key, 3)
  mu_z, lv_z = _encode(nets_, params, jnp.concatenate([x, x_r]), "z")
  mu_e, lv_e = _encode(nets_, params, x, "e")
  z = _sample(k_z, mu_z, lv_z)
  b = x.shape[0]
  e = _sample(k_e, mu_e, lv_e)
  e_r = jnp.broadcast_to(params["generator"]["e_r"], (x_r.shape[0], e.shape[-1]))
  x_hat = _generate(nets_, params, z, jnp.concatenate([e, e_r]))
  nll = losses.laplace_nll(jnp.concatenate([x, x_r]), x_hat, lam)
  kl_z = losses.gaussian_kl(mu_z, lv_z)
  kl_e = losses.gaussian_kl(mu_e, lv_e)
  unl = jnp.mean(kl_z[:b] + kl_e + nll[:b])  # Eq. 3, first line
  ref = jnp.mean(kl_z[b:] + nll[b:])  # Eq. 3, second line (e = e_r, no inference over e)
  m = unl + ref
  return m, jnp.zeros(()), {"nll_u": nll[:b].mean(), "nll_r": nll[b:].mean(),
                            "kl_z": kl_z.mean(), "kl_e": kl_e.mean()}


def srbvae_objectives(params, batch, key, *, nets_, config):
  """Eqs. 8-10 on one batch (Algorithm 1, lines 2-18), every sample drawn once.

  M = Eq. 8 + Eq. 10 (negated log-likelihoods) for the encoders and the generator;
  J = Eq. 9 for d_xi and d_gamma (log sigma(d) on encoder pairs, log(1 - sigma(d)) on generator
  pairs: d estimates log q/p, Eq. 7).
  """
  l = config.loss
  x, x_r = _inputs(batch)
  b, br = x.shape[0], x_r.shape[0]
  zd, ed = config.model.z_dim, config.model.e_dim
  ks = jax.random.split(key, 9)
  e_r = params["generator"]["e_r"]
  # Alg. 1 l.9-13: prior latents and generated images
  z_p, e_p, zr_p = (jax.random.normal(ks[0], (b, zd)), jax.random.normal(ks[1], (b, ed)),
                    jax.random.normal(ks[2], (br, zd)))
  g_p = _generate(nets_, params, jnp.concatenate([z_p, zr_p]),
                  jnp.concatenate([e_p, jnp.broadcast_to(e_r, (br, ed))]))
  x_p_all = _sample_x(ks[3], g_p, l.laplace_scale, l.sample_x)
  x_p, xr_p = x_p_all[:b], x_p_all[b:]
  # Alg. 1 l.4-6: encoder latents of real images, and of the generated ones (Eq. 10)
  mu_z, lv_z = _encode(nets_, params, jnp.concatenate([x, x_r, x_p, xr_p]), "z")
  mu_e, lv_e = _encode(nets_, params, jnp.concatenate([x, x_p]), "e")
  z_q = _sample(ks[4], mu_z[:b + br], lv_z[:b + br])
  e_q = _sample(ks[5], mu_e[:b], lv_e[:b])
  z, zr = z_q[:b], z_q[b:]
  # Eq. 8 through the two discriminators: encoder pairs (q) and generator pairs (p)
  xi = _disc(nets_, params, "d_xi", jnp.concatenate([x, x_p]), jnp.concatenate([z, z_p]),
             jnp.concatenate([e_q, e_p]), ks[6])
  gamma = _disc(nets_, params, "d_gamma", jnp.concatenate([x_r, xr_p]), jnp.concatenate([zr, zr_p]),
                None, ks[7])
  xi_q, xi_p, gamma_q, gamma_p = xi[:b], xi[b:], gamma[:br], gamma[br:]
  adv = losses.srbvae_adversarial_loss(xi_q, xi_p, gamma_q, gamma_p)  # Eq. 8
  # Eq. 10: reconstructions of real images (from the sampled z, e / z_r, e_r) and of prior latents
  rec = _generate(nets_, params, z_q, jnp.concatenate([e_q, jnp.broadcast_to(e_r, (br, ed))]))
  x_nll = losses.laplace_nll(jnp.concatenate([x, x_r]), rec, l.laplace_scale)
  z_nll = losses.gaussian_nll(jnp.concatenate([z_p, zr_p]), mu_z[b + br:], lv_z[b + br:])
  e_nll = losses.gaussian_nll(e_p, mu_e[b:], lv_e[b:])
  recon = losses.srbvae_reconstruction_loss(x_nll[:b], x_nll[b:], z_nll[:b], e_nll, z_nll[b:])
  m = adv + l.recon_weight * recon  # Sec. 4.3: Eq. 10 minimised together with Eq. 8
  disc = losses.srbvae_discriminator_loss(xi_q, xi_p, gamma_q, gamma_p)
  j = -disc  # Eq. 9 (maximised)
  metrics = {"adv": adv, "recon": recon, "nll_u": x_nll[:b].mean(), "nll_r": x_nll[b:].mean(),
             "z_nll": z_nll.mean(), "e_nll": e_nll.mean(), "disc": disc,
             "skl_xi": losses.symmetric_kl_estimate(xi_q, xi_p),
             "skl_gamma": losses.symmetric_kl_estimate(gamma_q, gamma_p),
             "d_q": jnp.mean(xi_q) + jnp.mean(gamma_q),  # Alg. 1 l.7's mean (psi descends it)
             "d_p": jnp.mean(xi_p) + jnp.mean(gamma_p)}  # Alg. 1 l.14's mean (theta ascends it)
  return m, j, metrics


def svae_objectives(params, batch, key, *, nets_, config):
  """sVAE (Pu et al. 2018): Eqs. 8-10 without e and without a reference set, on all images."""
  l = config.loss
  x = jnp.concatenate(_inputs(batch))
  b, zd = x.shape[0], config.model.z_dim
  ks = jax.random.split(key, 4)
  z_p = jax.random.normal(ks[0], (b, zd))
  x_p = _sample_x(ks[1], _generate(nets_, params, z_p), l.laplace_scale, l.sample_x)
  mu, lv = _encode(nets_, params, jnp.concatenate([x, x_p]))
  z = _sample(ks[2], mu[:b], lv[:b])
  d = _disc(nets_, params, "d_gamma", jnp.concatenate([x, x_p]), jnp.concatenate([z, z_p]), None,
            ks[3])
  x_nll = losses.laplace_nll(x, _generate(nets_, params, z), l.laplace_scale)
  z_nll = losses.gaussian_nll(z_p, mu[b:], lv[b:])
  adv = losses.symmetric_kl_estimate(d[:b], d[b:])
  m = adv + l.recon_weight * (jnp.mean(x_nll) + jnp.mean(z_nll))  # svae_loss with recon_weight
  disc = losses.svae_discriminator_loss(d[:b], d[b:])
  return m, -disc, {"adv": adv, "nll": x_nll.mean(), "z_nll": z_nll.mean(), "disc": disc}


def vae_loss(params, batch, key, *, nets_, config):
  """VAE, beta-VAE, DIP-VAE-I/II: Laplace NLL + beta KL (+ the DIP penalty), batch mean."""
  l = config.loss
  x = jnp.concatenate(_inputs(batch))
  mu, lv = _encode(nets_, params, x)
  z = _sample(key, mu, lv)
  nll = losses.laplace_nll(x, _generate(nets_, params, z), l.laplace_scale)
  beta = l.beta if config.variant == "beta_vae" else 1.0
  kl = losses.beta_vae_kl(mu, lv, beta)
  m = jnp.mean(nll + kl)
  metrics = {"nll": nll.mean(), "kl": kl.mean() / beta}
  lambda_d = l.dip_lambda_d or None
  if config.variant == "dip_vae_i":
    pen = losses.dip_vae_i(mu, l.dip_lambda, lambda_d)
  elif config.variant == "dip_vae_ii":
    pen = losses.dip_vae_ii(mu, lv, l.dip_lambda, lambda_d)
  else:
    pen = None
  if pen is not None:
    m = m + pen
    metrics["dip"] = pen
  return m, jnp.zeros(()), metrics


DEFAULT_LOSSES = {"vae": vae_loss, "beta_vae": vae_loss, "dip_vae_i": vae_loss,
                  "dip_vae_ii": vae_loss, "svae": svae_objectives, "rbvae": rbvae_loss,
                  "srbvae": srbvae_objectives}


# ---------------------------------------------------------------- the update (Algorithm 1)

def player_gradients(objectives, params, batch, key):
  """{player: g} with g the gradient of that player's own objective (Algorithm 1, lines 7, 14,
  16, 18), and (M, J, metrics). g_psi = dM/dpsi (M is minimised); g_theta = -dM/dtheta (the
  generator ascends E_p[d] - NLL); g_xi, g_gamma = dJ/dxi, dJ/dgamma (Eq. 9, ascended).
  One forward pass, two pull-backs (M's and J's)."""
  (m, j, metrics), pullback = jax.vjp(lambda p: objectives(p, batch, key), params)
  zero_metrics = jax.tree.map(jnp.zeros_like, metrics)
  (g_m,) = pullback((jnp.ones_like(m), jnp.zeros_like(j), zero_metrics))
  grads = {"encoders": g_m["encoders"], "generator": jax.tree.map(jnp.negative, g_m["generator"])}
  if any(k.startswith("d_") for k in params):
    (g_j,) = pullback((jnp.zeros_like(m), jnp.ones_like(j), zero_metrics))
    grads.update({k: g_j[k] for k in params if k.startswith("d_")})
  return grads, (m, j, metrics)


def apply_updates(player_map, params, opt_state, grads, step):
  """Each player moves its parameters by its own sign (SIGNS, Algorithm 1 line 20) along Adam's
  direction of its own gradient: p <- p + sign * lr * adam(g)."""
  new_p, new_o = {}, {}
  for name, player in player_map.items():
    g = jax.tree.map(lambda a: -SIGNS[name] * a, grads[name])  # Player.update descends
    new_p[name], new_o[name] = player.update(g, opt_state[name], params[name], step)
  return new_p, new_o


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
  try:
    resolve(l.fn, rbvae_loss)
  except (ImportError, ValueError) as e:
    raise ConfigError(f"config.loss.fn={l.fn!r}: {e}") from None


class IndexedSource:
  """The examples `indices` of a source (any Source, not only in-memory ones)."""

  def __init__(self, base, indices):
    self.base, self.indices = base, np.asarray(indices)

  def __len__(self):
    return len(self.indices)

  def gather(self, indices):
    return self.base.gather(self.indices[np.asarray(indices)])


def subset(source, indices):
  return source.subset(indices) if isinstance(source, ArraySource) else IndexedSource(source, indices)


def _read(source, key):
  if isinstance(source, ArraySource) and key in source.arrays:
    return np.asarray(source.arrays[key])
  return source_lib.read_field(source, key)


def neutral_mask(source, metadata) -> np.ndarray:
  """Neutral examples (label 0): the clean label on synthetic faces, the given label otherwise."""
  names = tuple(metadata.get("factor_names", ()))
  if metadata.get("name") == "synthetic_faces" and "clean_label" in names:
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
  mask = marked if marked is not None and marked.any() else neutral_mask(splits.train, splits.metadata)
  if mask.all() or not mask.any():
    raise ValueError(f"the training split has {int(mask.sum())} reference and "
                     f"{int((~mask).sum())} unlabelled examples; both sets must be non-empty "
                     f"(config.data.reference={rule!r})")
  return mask


def prepare_data(config, splits: Splits) -> Splits:
  """Marks is_reference on the training split (faces: neutral -> reference, expressive ->
  unlabelled) and finds the two probe splits (metadata 'probe_fit'; test = probe_score): a source
  without them has its test split halved at random (seeded by config.seed)."""
  mask = reference_mask(config, splits)
  train = splits.train
  if isinstance(train, ArraySource):
    train = ArraySource({**train.arrays, "is_reference": mask}, dict(train.metadata))
  else:
    train = source_lib.WithFields(train, {"is_reference": mask})
  meta = dict(splits.metadata, num_reference=int(mask.sum()), num_unlabelled=int((~mask).sum()))
  test = splits.test
  if "probe_fit" not in meta:
    perm = np.random.default_rng(config.seed + 7).permutation(len(test))
    half = len(test) // 2
    meta["probe_fit"], test = subset(test, np.sort(perm[:half])), subset(test, np.sort(perm[half:]))
  return Splits(train, test, meta)


def resolve_num_steps(config, num_unlabelled: int) -> int:
  """Sec. 5.2's schedule on the data actually loaded: train.epochs passes (30 on MNIST, 20 on
  AffectNet) over the unlabelled set, as steps of train.batch_size; train.epochs = 0 keeps
  train.num_steps as given."""
  epochs = float(config.train.epochs)
  if epochs <= 0:
    return int(config.train.num_steps)
  return max(1, math.ceil(epochs * num_unlabelled / config.train.batch_size))


# ---------------------------------------------------------------- the method

def make_method(config, data: Splits, *, loss_fn=None) -> Method:
  """Rb-VAE/sRb-VAE or a baseline from its config and the loaded splits. `loss_fn` replaces the
  variant's objectives (signature of rbvae_loss: (params, batch, key, *, nets_, config) ->
  (M, J, metrics)); config.loss.fn names one from the command line. With config.train.epochs > 0,
  config.train.num_steps is set here from the unlabelled set loaded (resolve_num_steps)."""
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
  objectives = functools.partial(loss_fn or resolve(config.loss.fn, DEFAULT_LOSSES[config.variant]),
                                 nets_=nets_, config=config)
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
    opt = {k: player_map[k].init(params[k]) for k in player_map}
    return TrainState(jnp.zeros((), jnp.int32), params, opt)

  def train_step(state, batch, key):
    grads, (m, j, metrics) = player_gradients(objectives, state.params, batch, key)
    params, opt = apply_updates(player_map, state.params, state.opt_state, grads, state.step)
    metrics = dict(metrics, model_objective=m, loss=m)
    if config.variant in ADVERSARIAL:
      metrics["disc_objective"] = j
    if rb:
      metrics["e_r_norm"] = jnp.linalg.norm(params["generator"]["e_r"])
    return TrainState(state.step + 1, params, opt), metrics

  def represent(state, batch):
    """{'z': mean of q(z|x)} and, for Rb-VAE/sRb-VAE, {'e': mean of q(e|x)} (a dict of arrays:
    Table 1 scores e and z apart)."""
    x = jnp.asarray(batch["image"], jnp.float32)
    out = {"z": _encode(nets_, state.params, x, "z")[0]}
    if rb:
      out["e"] = _encode(nets_, state.params, x, "e")[0]
    return out

  def generate(state, batch, key=None):
    """G(z, e) from batch {'z', 'e'}; a missing 'e' is e_r (reference images) for Rb-VAE."""
    z = jnp.asarray(batch["z"], jnp.float32)
    if not rb:
      return _generate(nets_, state.params, z)
    e = batch.get("e")
    if e is None:
      e = jnp.broadcast_to(state.params["generator"]["e_r"], (z.shape[0], config.model.e_dim))
    return _generate(nets_, state.params, z, jnp.asarray(e, jnp.float32))

  represent_j, generate_j = jax.jit(represent), jax.jit(generate)
  cache = {}

  def evaluate_once(state, data_, workdir):  # the loop's final evaluate and report share it
    key = (int(np.asarray(state.step).ravel()[0]), id(data_))
    if key not in cache:
      cache.clear()
      cache[key] = evaluate(state, data_, workdir, config=config, represent=represent_j,
                            generate=generate_j)
    return dict(cache[key])

  return Method(init=init, train_step=train_step, streams=streams, evaluate=evaluate_once,
                report=functools.partial(report, config=config, evaluate=evaluate_once,
                                         represent=represent_j, generate=generate_j),
                represent=represent, generate=generate, data=data)


# ---------------------------------------------------------------- evaluation (Sec. 5.3)

def _features(state, source, represent, config):
  from affectjax.evaluate.inference import batched
  limit = config.eval.max_probe_examples or None
  feats = batched(lambda b: represent(state, {"image": b["image"]}), source,
                  config.eval.batch_size, limit=limit)
  n = len(next(iter(feats.values())))
  idx = np.arange(n)
  fields = source.gather(idx) if not isinstance(source, ArraySource) else {
      k: np.asarray(v)[:n] for k, v in source.arrays.items() if k != "image"}
  return {k: np.asarray(v, np.float64) for k, v in feats.items()}, fields


def normalized_factors(factors, names) -> np.ndarray:
  """Style-digit factors mapped to [0, 1] by FACTOR_RANGES (columns in `names` order)."""
  f = np.asarray(factors, np.float64).copy()
  for i, n in enumerate(names):
    lo, hi = FACTOR_RANGES.get(n, (0.0, 1.0))
    f[:, i] = (f[:, i] - lo) / (hi - lo)
  return f


def linear_regression_mae(x_fit, y_fit, x_score, y_score) -> np.ndarray:
  """MAE per target of least-squares linear regressors (with intercept) fitted on x_fit."""
  from sklearn.linear_model import LinearRegression
  model = LinearRegression().fit(x_fit, y_fit)
  return np.mean(np.abs(model.predict(x_score) - y_score), axis=0)


def linear_classifier_recall(x_fit, y_fit, x_score, y_score, classes, seed: int = 0) -> dict:
  """Per-class accuracy (recall of each class in `classes`) of a multinomial logistic regression
  on standardised features, and the predictions' overall accuracy."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
  model.fit(x_fit, y_fit)
  pred = model.predict(x_score)
  out = {int(c): float(np.mean(pred[y_score == c] == c)) if np.any(y_score == c) else float("nan")
         for c in classes}
  return {"per_class": out, "accuracy": float(np.mean(pred == y_score))}


def _feature_sets(config, f):
  """The representations Table 1 scores: 'main' (e for Rb-VAE/sRb-VAE, z for the baselines) and
  the z-only control."""
  if config.variant in REFERENCE_BASED:
    return {"main": f["e"], "z": f["z"]}
  return {"main": f["z"]}


RECON_EXAMPLES = 256  # images per set for the reconstruction check


def pixel_mae(x, x_hat) -> float:
  """Mean absolute error of images in [-1, 1], on the [0, 1] intensity scale."""
  return float(np.mean(np.abs(np.asarray(x, np.float64) - np.asarray(x_hat, np.float64))) / 2.0)


def reconstruction_check(state, data: Splits, *, config, represent, generate) -> dict:
  """Pixel MAE of reconstructions of unlabelled (probe_score) and reference (training) images,
  beside the best constant image (the set's per-pixel median, the L1 optimum of a constant).

  A reference MAE at its constant level means G(z_r, e_r) draws no reference image: z then holds
  no common factor, and Rb-VAE's reference pathway (Eq. 3's second line) is not working.
  Reference images are rebuilt with e_r (Rb-VAE, sRb-VAE) or G(z) (the baselines)."""
  from affectjax.evaluate.inference import batched
  ref_idx = np.flatnonzero(_read(data.train, "is_reference").astype(bool))[:RECON_EXAMPLES]
  sets = {"unlabelled": data.test.gather(np.arange(min(RECON_EXAMPLES, len(data.test))))["image"],
          "reference": data.train.gather(ref_idx)["image"]}
  out = {}
  for name, x in sets.items():
    x = np.asarray(x, np.float32)
    f = batched(lambda b: represent(state, {"image": b}), x, config.eval.batch_size)
    inputs = {"z": f["z"]}
    if "e" in f and name == "unlabelled":
      inputs["e"] = f["e"]
    x_hat = batched(lambda b: generate(state, b), inputs, config.eval.batch_size)
    out[f"recon/{name}_mae"] = pixel_mae(x, x_hat)
    out[f"recon/{name}_constant_mae"] = pixel_mae(x, np.median(x, axis=0, keepdims=True))
  return out


def evaluate(state, data: Splits, workdir: str, *, config, represent, generate) -> dict:
  """Table 1's numbers for this model (keys: '<feature>/<metric>'), plus the reconstruction
  check and the faces' extras."""
  fit_f, fit_fields = _features(state, data.metadata["probe_fit"], represent, config)
  sc_f, sc_fields = _features(state, data.test, represent, config)
  names = tuple(data.metadata.get("factor_names", ()))
  out = reconstruction_check(state, data, config=config, represent=represent, generate=generate)
  sets_fit, sets_sc = _feature_sets(config, fit_f), _feature_sets(config, sc_f)
  if data.metadata.get("name") in ("style_digits", "mnist_style"):
    cols = [names.index(n) for _, n in DIGIT_COLUMNS]
    y_fit = normalized_factors(fit_fields["factors"][:, cols], [n for _, n in DIGIT_COLUMNS])
    y_sc = normalized_factors(sc_fields["factors"][:, cols], [n for _, n in DIGIT_COLUMNS])
    for feat in sets_fit:
      mae = linear_regression_mae(sets_fit[feat], y_fit, sets_sc[feat], y_sc)
      for (col, _), v in zip(DIGIT_COLUMNS, mae):
        out[f"{feat}/mae_{col}"] = float(v)
      out[f"{feat}/mae_avg"] = float(np.mean(mae))
    # chance: predicting the fit split's mean
    out["chance/mae_avg"] = float(np.mean(np.abs(y_sc - y_fit.mean(0))))
    return out
  from affectjax.data.example import EMOTIONS
  lab_fit, lab_sc = fit_fields["label"].astype(np.int64), sc_fields["label"].astype(np.int64)
  keep_fit, keep_sc = lab_fit > 0, lab_sc > 0  # the 7 expressions (neutral is the reference)
  classes = sorted(set(lab_fit[keep_fit].tolist()))
  for feat in sets_fit:
    if len(classes) < 2:
      break
    r = linear_classifier_recall(sets_fit[feat][keep_fit], lab_fit[keep_fit],
                                 sets_sc[feat][keep_sc], lab_sc[keep_sc], classes, config.seed)
    for c, v in r["per_class"].items():
      out[f"{feat}/acc_{EMOTIONS[c]}"] = v
    out[f"{feat}/acc_avg"] = float(np.nanmean(list(r["per_class"].values())))
    out[f"{feat}/accuracy"] = r["accuracy"]
  if len(classes) >= 2:
    out["chance/acc_avg"] = 1.0 / len(classes)
  if data.metadata.get("name") == "synthetic_faces" and "factors" in sc_fields:
    out.update(_faces_truth(config, names, sets_fit, sets_sc, fit_fields, sc_fields))
  return out


def _faces_truth(config, names, sets_fit, sets_sc, fit_fields, sc_fields) -> dict:
  """What the truth of the synthetic faces allows: R^2 of linear regressors of the AU
  intensities and the expression intensity (how much expression a representation predicts), and
  the accuracy of a linear identity classifier (how much identity leaks into it; both probe
  splits hold the same test identities)."""
  from sklearn.linear_model import Ridge
  from affectjax.data.synthetic import AU_NAMES
  out = {}
  cols = [names.index(n) for n in AU_NAMES + ("intensity",)]
  y_fit, y_sc = fit_fields["factors"][:, cols], sc_fields["factors"][:, cols]
  id_fit, id_sc = fit_fields["identity"], sc_fields["identity"]
  ids = sorted(set(id_fit.tolist()) & set(id_sc.tolist()))
  for feat in sets_fit:
    pred = Ridge(alpha=1e-3).fit(sets_fit[feat], y_fit).predict(sets_sc[feat])
    ss = np.sum((y_sc - y_sc.mean(0)) ** 2, 0)
    r2 = 1.0 - np.sum((y_sc - pred) ** 2, 0) / np.maximum(ss, 1e-12)
    out[f"{feat}/au_r2"] = float(np.mean(r2[:-1]))
    out[f"{feat}/intensity_r2"] = float(r2[-1])
    if len(ids) >= 2:
      kf, ks = np.isin(id_fit, ids), np.isin(id_sc, ids)
      r = linear_classifier_recall(sets_fit[feat][kf], id_fit[kf], sets_sc[feat][ks], id_sc[ks],
                                   ids, config.seed)
      out[f"{feat}/identity_acc"] = r["accuracy"]
  if len(ids) >= 2:
    out["chance/identity_acc"] = 1.0 / len(ids)
  return out


# ---------------------------------------------------------------- figures and report

def _grid(rows) -> np.ndarray:
  """[R][C] images in [-1, 1] (None: blank) -> one [R h, C w, 3] array in [0, 1]."""
  h, w = next(im for r in rows for im in r if im is not None).shape[:2]
  canvas = np.ones((len(rows) * h, max(len(r) for r in rows) * w, 3), np.float32)
  for i, r in enumerate(rows):
    for j, im in enumerate(r):
      if im is not None:
        canvas[i * h:(i + 1) * h, j * w:(j + 1) * w] = np.clip((np.asarray(im) + 1) / 2, 0, 1)
  return canvas


def _save_grid(path, canvas, title):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig = plt.figure(figsize=(max(3.0, canvas.shape[1] / 40), max(3.0, canvas.shape[0] / 40) + 0.4))
  plt.imshow(canvas, interpolation="nearest")
  plt.axis("off")
  plt.title(title, fontsize=8)
  fig.savefig(path, dpi=100, bbox_inches="tight")
  plt.close(fig)
  return path


def figures(state, data: Splits, workdir: str, *, config, represent, generate) -> dict:
  """Fig. 3 (conditional synthesis: z of real images, columns share a random e ~ N(0, I)) and
  Fig. 4 (attribute transfer: G(z of B, e of A)), and reconstructions for every variant. Every
  image is generated in one batched pass (one compile)."""
  from affectjax.evaluate.inference import batched
  n = config.eval.num_figure_rows
  if not n:
    return {}
  src = data.test
  x = src.gather(np.arange(min(2 * n, len(src))))["image"]
  n = min(n, len(x))
  f = {k: np.asarray(v) for k, v in represent(state, {"image": x}).items()}
  rb = "e" in f
  a, b = x[:n], (x[n:2 * n] if len(x) >= 2 * n else x[:n])
  z_a, z_b = f["z"][:n], (f["z"][n:2 * n] if len(x) >= 2 * n else f["z"][:n])
  cols = 8
  zs, es = [z_a], [f["e"][:n]] if rb else []
  if rb:
    e_rand = np.asarray(jax.random.normal(jax.random.key(config.seed + 3), (cols, config.model.e_dim)))
    e_r = np.broadcast_to(np.asarray(state.params["generator"]["e_r"]), (n, config.model.e_dim))
    zs += [z_a, np.repeat(z_a, cols, 0), np.tile(z_b, (n, 1))]
    es += [e_r, np.tile(e_rand, (n, 1)), np.repeat(f["e"][:n], len(z_b), 0)]
  inputs = {"z": np.concatenate(zs).astype(np.float32)}
  if rb:
    inputs["e"] = np.concatenate(es).astype(np.float32)
  gen = batched(lambda bt: generate(state, bt), inputs, config.eval.batch_size)
  rec, gen = gen[:n], gen[n:]
  paths = {"reconstructions": _save_grid(
      os.path.join(workdir, "reconstructions.png"), _grid([[x[i], rec[i]] for i in range(n)]),
      f"{config.variant}: image | reconstruction")}
  if not rb:
    return paths
  ref, cond, transfer = gen[:n], gen[n:n + n * cols], gen[n + n * cols:]
  rows = [[a[i], ref[i], None] + list(cond[i * cols:(i + 1) * cols]) for i in range(n)]
  paths["conditional_synthesis"] = _save_grid(
      os.path.join(workdir, "conditional_synthesis.png"), _grid(rows),
      f"{config.variant} (Fig. 3): image | G(z, e_r) | G(z, e_j), e_j ~ N(0, I) shared by columns")
  rows = [[None] + list(b)] + [[a[i]] + list(transfer[i * len(b):(i + 1) * len(b)]) for i in range(n)]
  paths["attribute_transfer"] = _save_grid(
      os.path.join(workdir, "attribute_transfer.png"), _grid(rows),
      f"{config.variant} (Fig. 4): row = A (gives e), column = B (gives z), cell = G(z_B, e_A)")
  return paths


def report(state, data: Splits, workdir: str, *, config, evaluate, represent, generate) -> dict:
  """Writes rbvae_metrics.json (evaluate's numbers), rbvae_table.md (this model's Table 1 row)
  and the figures; returns the averages."""
  ev = evaluate(state, data, workdir)
  paths = figures(state, data, workdir, config=config, represent=represent, generate=generate)
  with open(os.path.join(workdir, "rbvae_metrics.json"), "w") as fh:
    json.dump({"variant": config.variant, "dataset": data.metadata.get("name"),
               "metrics": ev, "figures": paths}, fh, indent=1)
  with open(os.path.join(workdir, "rbvae_table.md"), "w") as fh:
    fh.write(table_row_markdown(config.variant, data.metadata.get("name"), ev))
  return {k: v for k, v in ev.items() if k.endswith("_avg")}


def table_row_markdown(variant, dataset, ev) -> str:
  """One Table 1 row (main features; z-only control below it for Rb-VAE/sRb-VAE)."""
  digits = dataset in ("style_digits", "mnist_style")
  cols = ([c for c, _ in DIGIT_COLUMNS] if digits else
          sorted({k.split("acc_")[1] for k in ev if "/acc_" in k and not k.endswith("avg")}))
  key = (lambda f, c: f"{f}/mae_{c}") if digits else (lambda f, c: f"{f}/acc_{c}")
  avg = "mae_avg" if digits else "acc_avg"
  lines = [f"| model | {' | '.join(cols)} | Avg. |", "|---" * (len(cols) + 2) + "|"]
  for feat, name in (("main", variant), ("z", f"{variant} (z only)")):
    if f"{feat}/{avg}" in ev:
      vals = [f"{ev.get(key(feat, c), float('nan')):.3f}" for c in cols]
      lines.append(f"| {name} | {' | '.join(vals)} | {ev[f'{feat}/{avg}']:.3f} |")
  if "recon/reference_mae" in ev:
    lines += ["", "Reconstruction pixel MAE on [0, 1] (the set's per-pixel median image in brackets, "
              f"the best constant): unlabelled {ev['recon/unlabelled_mae']:.3f} "
              f"[{ev['recon/unlabelled_constant_mae']:.3f}], reference {ev['recon/reference_mae']:.3f} "
              f"[{ev['recon/reference_constant_mae']:.3f}]"]
  return "\n".join(lines) + "\n"
