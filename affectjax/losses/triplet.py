"""The triplet VAE's topological prior (triplet_vae.md Sec. III-B, Eqs. 6-11): weighted softplus.

For a triplet t = (ref, +, -) with weight w_t, -log p_T(z_ref, z_+, z_-) = (w_t / gamma)
softplus(||z_ref - z_+|| - ||z_ref - z_-||) up to a constant, averaged over M latent samples of
each member (Eq. 10). The gamma ("topological variance") scales the whole prior: the smaller, the
larger the penalty for an unsatisfied triplet.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["triplet_softplus", "triplet_distances", "triplet_prior_scale", "sgvb_scales"]


def _norm(v):
  """Euclidean norm over the last axis with a zero (not NaN) gradient at v = 0."""
  sq = jnp.sum(jnp.square(v), axis=-1)
  positive = sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)


def triplet_distances(z_ref, z_pos, z_neg):
  """(d(z_ref, z_+), d(z_ref, z_-)), Euclidean over the last axis: [..., K] -> two [...]."""
  return _norm(z_ref - z_pos), _norm(z_ref - z_neg)


def triplet_softplus(z_ref, z_pos, z_neg, weights=None, *, gamma: float = 1.0,
                     sharpness: float = 1.0):
  """Per-triplet negative log topological prior, [V] (Eqs. 6, 10, 11 without the T/V factor).

  z_ref, z_pos, z_neg: [..., V, K] latent codes of the reference, the more similar and the less
  similar face of V triplets; any leading axes (the M latent samples of Eq. 10, Fig. 2) are
  averaged over. weights: [V] reliability w_t (None = 1). Returns
    (w_t / gamma) * mean_m f(d(z_ref_m, z+_m) - d(z_ref_m, z-_m)),
  with f(x) = softplus(s x) / s, s = `sharpness`: s = 1 is the paper's softplus; s -> inf gives the
  hinge max(0, x) of Phi's first form (Sec. III-B).
  """
  d_pos, d_neg = triplet_distances(z_ref, z_pos, z_neg)
  x = d_pos - d_neg  # [..., V]
  f = jax.nn.softplus(sharpness * x) / sharpness  # Eq. 6: ln(1 + exp(d+ - d-))
  f = jnp.mean(f.reshape((-1, f.shape[-1])), axis=0)  # Eq. 10: (1/M) sum over the M samples
  if weights is not None:
    f = jnp.asarray(weights, f.dtype) * f  # Eq. 6: w_t per triplet
  return f / gamma  # Eq. 6: p_T proportional to exp(-Phi / gamma)


def sgvb_scales(num_data: int, batch_size: int, num_triplets: int, triplet_batch_size: int):
  """Eq. 11's literal multipliers (N / B, T / V) of the data-batch sum and the triplet-batch sum."""
  return num_data / batch_size, num_triplets / triplet_batch_size


def triplet_prior_scale(num_data: int, num_triplets: int) -> float:
  """T / N: Eq. 11 divided by N is mean_B(recon + KL) + (T / N) mean_V(triplet_softplus).

  That is the per-data-point loss; multiply the triplet batch's mean of `triplet_softplus` by
  this scale (the data batch size B and the triplet batch size V then cancel out).
  """
  return num_triplets / num_data
