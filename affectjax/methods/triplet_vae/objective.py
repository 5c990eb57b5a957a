"""The triplet VAE's objective (triplet_vae.md Eqs. 2-13) in affectjax.objective's contract:
Eq. 11 with the annealing of Eq. 13, and the validation ELBO that selects the model (Sec. V-C)."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from affectjax import losses
from affectjax.nn import reparam
from affectjax.nn.landmark_mlp import LandmarkVAE
from affectjax.objective import Out

PLAYER = "vae"  # the one player: the encoder and the decoder


@dataclasses.dataclass(frozen=True)
class Context:
  """What Eq. 11 reads besides its arguments: the network, the config and the training part's
  sizes (N faces, T triplets), which weight the triplet prior against the data term."""
  model: LandmarkVAE
  config: Any
  num_data: int
  num_triplets: int
  train: bool = True  # dropout on; False: the deterministic network


def uses_triplets(config) -> bool:
  return config.variant in ("m2", "m2_prior")


def flat(x):
  """[B, K, 3] faces -> [B, 3K] (the networks' input)."""
  return x.reshape(x.shape[0], -1)


def data_terms(params, batch, key, *, model, num_samples: int, variance: float, train: bool):
  """Per face: (-E_q log p(x | y, z) by L samples (Eqs. 2, 5, 10), KL(q || N(0, I)) (Eq. 4))."""
  k_eps, k_drop = jax.random.split(key)
  x = flat(jnp.asarray(batch["landmarks"], jnp.float32))
  y = flat(jnp.asarray(batch["neutral_landmarks"], jnp.float32))
  mu, logvar, _, mean = model.apply({"params": params}, x, y, k_eps, num_samples, train,
                                    rngs={"dropout": k_drop})
  sq = jnp.mean(jnp.sum(jnp.square(x - mean), -1), 0)  # (1/L) sum_l ||x - f(z_l, y)||^2
  nll = sq / (2.0 * variance) + 0.5 * x.shape[-1] * jnp.log(2.0 * jnp.pi * variance)  # Eq. 10
  return nll, losses.gaussian_kl(mu, logvar)


def triplet_terms(params, trip, key, *, model, num_samples: int, gamma: float, train: bool):
  """Per triplet: (w_t / gamma) (1/M) sum_m softplus(d(z_r, z_+) - d(z_r, z_-)) (Eqs. 6, 10, Fig. 2)."""
  k_eps, k_drop = jax.random.split(key)
  x = jnp.asarray(trip["landmarks"], jnp.float32)  # [V, 3, K, 3]
  v = x.shape[0]
  y = jnp.asarray(trip["neutral_landmarks"], jnp.float32).reshape(3 * v, -1)
  mu, logvar = model.apply({"params": params}, x.reshape(3 * v, -1), y, train,
                           method=LandmarkVAE.encode, rngs={"dropout": k_drop})
  z = reparam.sample(k_eps, mu, logvar, (num_samples,)).reshape(num_samples, v, 3, -1)  # M per member
  return losses.triplet_softplus(z[:, :, 0], z[:, :, 1], z[:, :, 2], trip["weight"], gamma=gamma)


def anneal(step, anneal_steps: int):
  """beta of Eq. 13: linear from 0 at step 0 to 1 at anneal_steps, then 1."""
  if anneal_steps <= 0:
    return jnp.ones((), jnp.float32)
  return jnp.clip(jnp.asarray(step, jnp.float32) / anneal_steps, 0.0, 1.0)


def eq11(params, aux, batch, key, step, ctx: Context) -> Out:
  """Eq. 11 (beta of Eq. 13 at `step`) per data point: mean_B(nll + beta_KL KL) + beta_T (T/N) mean_V(prior).

  Dividing Eq. 11 by N leaves the optimum unchanged (loss.scaling='literal' multiplies it back:
  N/B sum_B + T/V sum_V). params {'vae': ...}; no auxiliary state."""
  del aux
  config = ctx.config
  l = config.loss
  beta = anneal(step, l.anneal_steps)  # Eq. 13
  k_data, k_trip = jax.random.split(key)
  nll, kl = data_terms(params[PLAYER], batch["data"], k_data, model=ctx.model,
                       num_samples=l.num_samples, variance=l.variance, train=ctx.train)
  loss = jnp.mean(nll) + beta * jnp.mean(kl)  # Eqs. 5, 13
  metrics = {"nll": jnp.mean(nll), "kl": jnp.mean(kl), "beta": beta}
  if uses_triplets(config):
    prior = triplet_terms(params[PLAYER], batch["triplets"], k_trip, model=ctx.model,
                          num_samples=l.triplet_samples, gamma=l.gamma, train=ctx.train)
    prior_beta = beta if config.variant == "m2_prior" else 1.0  # anneal the whole prior, or the KL only
    scale = losses.triplet_prior_scale(ctx.num_data, ctx.num_triplets)  # Eq. 11: (T/V) / (N/B) -> T/N on means
    loss = loss + prior_beta * scale * jnp.mean(prior)
    metrics["triplet_prior"] = jnp.mean(prior)
  if l.scaling == "literal":
    loss = loss * ctx.num_data  # Eq. 11 as written: N/B sum over the data batch + T/V sum over triplets
  metrics["loss"] = loss
  return Out({PLAYER: loss}, metrics)


def validation_elbo(params, val: dict, key, *, model, config, num_triplets: float):
  """The ELBO (Eq. 10, beta = 1, no dropout) per validation face: the model-selection criterion
  (Sec. V-C). params: the VAE's parameters (params['vae'] of the state)."""
  l = config.loss
  nll, kl = data_terms(params, val["data"], key, model=model, num_samples=l.num_samples,
                       variance=l.variance, train=False)
  elbo = -(jnp.mean(nll) + jnp.mean(kl))
  if uses_triplets(config) and "triplets" in val:
    prior = triplet_terms(params, val["triplets"], jax.random.fold_in(key, 1), model=model,
                          num_samples=l.triplet_samples, gamma=l.gamma, train=False)
    elbo = elbo - num_triplets / nll.shape[0] * jnp.mean(prior)
  return elbo
