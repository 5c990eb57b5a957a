"""Regularisers of the unsupervised baselines of Rb-VAE (rbvae.md Sec. 5.2, Table 1).

They run on the same networks as Rb-VAE: one encoder with 32 latents and the generator G(z).
- beta-VAE (Higgins et al. 2017): the VAE's KL weighted by beta; `beta_vae_kl` replaces the KL.
  `vae_objective` is the VAE / beta-VAE / DIP-VAE objective of any encoder and likelihood.
- DIP-VAE-I/II (Kumar et al. 2018): these penalties are added to the VAE objective (NLL + KL).
  They push a covariance of the inferred latents towards I, with a weight lambda_od on the
  off-diagonal entries and lambda_d on the diagonal ones. DIP-VAE-I uses Cov_p(x)[mu(x)].
  DIP-VAE-II uses the aggregate posterior's covariance E_p(x)[Sigma(x)] + Cov_p(x)[mu(x)].
  Covariances are batch estimates with 1/B.
- sVAE is the symmetric VAE of Pu et al. 2018, not a VAE with a split latent. The paper calls it
  "an unsupervised version of our method" trained with "a similar variational objective as
  sRb-VAE". It is therefore sRb-VAE's Eqs. 8-10 with no reference set and no e: one
  discriminator d(x, z) (the d_gamma architecture on unlabelled images) compares encoder pairs
  (x, z ~ q(z|x)) with generator pairs (x_hat ~ p(x|z), z ~ p(z)). The encoder and generator
  minimise the symmetric-KL estimate plus the explicit reconstruction terms of Eq. 10.
"""
from __future__ import annotations

import jax.numpy as jnp

from affectjax.losses.density_ratio import ratio_discriminator_loss, symmetric_kl_estimate
from affectjax.losses.vae import gaussian_kl

__all__ = ["beta_vae_kl", "latent_covariance", "dip_penalty", "dip_vae_i", "dip_vae_ii",
           "vae_objective", "svae_loss", "svae_discriminator_loss"]


def beta_vae_kl(mu, logvar, beta):
  """beta * KL(q(z|x) || N(0, I)) per example [B]: beta-VAE's KL term (beta = 1 is the VAE's)."""
  return beta * gaussian_kl(mu, logvar)


def latent_covariance(mu):
  """Batch covariance of [B, D] rows, E[mu mu^T] - E[mu] E[mu]^T (1/B): [D, D]."""
  mu = jnp.asarray(mu, jnp.float32)
  centred = mu - jnp.mean(mu, axis=0, keepdims=True)
  return centred.T @ centred / mu.shape[0]


def dip_penalty(cov, lambda_od, lambda_d):
  """lambda_od sum_{i != j} C_ij^2 + lambda_d sum_i (C_ii - 1)^2 (Kumar et al. 2018)."""
  diag = jnp.diagonal(cov)
  off = jnp.sum(jnp.square(cov)) - jnp.sum(jnp.square(diag))
  return lambda_od * off + lambda_d * jnp.sum(jnp.square(diag - 1.0))


def dip_vae_i(mu, lambda_od=10.0, lambda_d=None):
  """DIP-VAE-I: dip_penalty of Cov[mu(x)] over the batch; lambda_d defaults to 10 lambda_od
  (Kumar et al.'s setting). Scalar, added to the batch-mean VAE loss."""
  lambda_d = 10.0 * lambda_od if lambda_d is None else lambda_d
  return dip_penalty(latent_covariance(mu), lambda_od, lambda_d)


def dip_vae_ii(mu, logvar, lambda_od=10.0, lambda_d=None):
  """DIP-VAE-II: dip_penalty of E[Sigma(x)] + Cov[mu(x)], Sigma(x) = diag(exp(logvar));
  lambda_d defaults to lambda_od (Kumar et al.'s setting). Scalar."""
  lambda_d = lambda_od if lambda_d is None else lambda_d
  cov = jnp.diag(jnp.mean(jnp.exp(jnp.asarray(logvar, jnp.float32)), axis=0)) + latent_covariance(mu)
  return dip_penalty(cov, lambda_od, lambda_d)


def vae_objective(nll, mu, logvar, *, beta=1.0, dip: str = "", dip_lambda=10.0, dip_lambda_d=None):
  """The VAE's batch-mean negative ELBO mean(nll + beta KL) and its variants, for any encoder and
  likelihood: beta = 1 the VAE, beta != 1 beta-VAE, dip='i' / 'ii' adds dip_vae_i / dip_vae_ii
  (lambda_od = dip_lambda; lambda_d = dip_lambda_d, None: each paper's default).

  nll [B]: -log p(x | z) of z ~ q(z | x); mu, logvar [B, D]: q(z | x). Returns (scalar, metrics
  {'nll', 'kl' (the KL without beta), 'dip' when dip is set})."""
  kl = beta_vae_kl(mu, logvar, beta)
  loss = jnp.mean(nll + kl)
  metrics = {"nll": nll.mean(), "kl": kl.mean() / beta}
  if dip:
    if dip not in ("i", "ii"):
      raise ValueError(f"dip={dip!r}: expected '', 'i' or 'ii'")
    pen = (dip_vae_i(mu, dip_lambda, dip_lambda_d) if dip == "i"
           else dip_vae_ii(mu, logvar, dip_lambda, dip_lambda_d))
    loss = loss + pen
    metrics["dip"] = pen
  return loss, metrics


def svae_loss(logits_q, logits_p, x_nll, z_nll):
  """sVAE's encoder/generator loss: Eq. 8 with one discriminator d(x, z) plus Eq. 10 without e and
  the reference set. logits_q: d on encoder pairs, logits_p: d on generator pairs,
  x_nll [B]: -log p(x | z) (laplace_nll), z_nll [B]: -log q(z | x_hat) of prior z (gaussian_nll)."""
  return symmetric_kl_estimate(logits_q, logits_p) + jnp.mean(x_nll) + jnp.mean(z_nll)


def svae_discriminator_loss(logits_q, logits_p):
  """sVAE's discriminator loss: the logistic loss of Eq. 9 (encoder pairs are class 1)."""
  return ratio_discriminator_loss(logits_q, logits_p)
