"""Log-likelihoods of Rb-VAE/sRb-VAE (rbvae.md Sec. 4.1, Eqs. 3, 5 and 10), per example.

Images: a Laplace p(x|z, e) with mean G(z, e) and fixed scale lambda = 0.01 (Sec. 5.2).
Latents: the encoders' diagonal Gaussians q(z|x), q(e|x), scored on latents drawn from the prior
(the latent-reconstruction terms -log q(z|x_hat), -log q(e|x_hat) of Eqs. 5 and 10).
"""
from __future__ import annotations

import math

import jax.numpy as jnp

__all__ = ["LAPLACE_SCALE", "laplace_nll", "gaussian_nll"]

LAPLACE_SCALE = 0.01  # lambda of the Laplace likelihood (rbvae.md Sec. 5.2)


def laplace_nll(x, mean, scale=LAPLACE_SCALE):
  """-log Laplace(x | mean, scale) summed over all but the batch axis: sum |x - m| / b + log(2b).

  x, mean: [B, ...]; scale: a scalar or an array broadcastable to x. Returns [B].
  """
  x = jnp.asarray(x, jnp.float32)
  scale = jnp.asarray(scale, jnp.float32)
  nll = jnp.abs(x - mean) / scale + jnp.log(2.0 * scale)  # Sec. 4.1: p(x|z, e) = L(x | G(z, e), lambda)
  return jnp.sum(jnp.broadcast_to(nll, x.shape).reshape(x.shape[0], -1), axis=-1)


def gaussian_nll(value, mu, logvar):
  """-log N(value | mu, diag(exp(logvar))) summed over the last axis, with the constant. [..., D] -> [...]."""
  sq = jnp.square(value - mu) * jnp.exp(-logvar)
  return 0.5 * jnp.sum(sq + logvar + math.log(2.0 * math.pi), axis=-1)  # Eq. 10: -log q(z|x_hat)
