"""Density-ratio discriminators of sRb-VAE (rbvae.md Sec. 4.3, Eqs. 7-10, Algorithm 1).

Two joint distributions are compared by each discriminator:
  q-side ("encoder" pairs): a real image with latents inferred from it, (x, z ~ q(z|x), e ~ q(e|x));
  p-side ("generator" pairs): latents from the prior with the image generated from them,
  (x_hat ~ p(x|z, e), z ~ p(z), e ~ p(e)).
d_xi(x, z, e) compares them on unlabelled images, d_gamma(x, z) on reference images (e = e_r).
A discriminator's output is a logit d that estimates log q/p (Eq. 7). It is fitted by logistic
regression with the q-side as class 1 (Algorithm 1, lines 16 and 18). Eq. 9 as printed puts the
p-side in class 1, which would fit log p/q, the opposite sign of Eq. 7. Eq. 8 and Algorithm 1's
updates (line 20) need Eq. 7's sign, so this module uses it.
With the optimal d, E_q[d] - E_p[d] = KL(q || p) + KL(p || q) (Eqs. 6, 8): the symmetric KL the
encoder (psi) and generator (theta) minimise. All functions take logits [B] and return scalars.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["ratio_discriminator_loss", "encoder_ratio_loss", "generator_ratio_loss",
           "symmetric_kl_estimate", "srbvae_adversarial_loss", "srbvae_discriminator_loss",
           "srbvae_reconstruction_loss"]


def _f32(a):
  return jnp.asarray(a, jnp.float32)


def ratio_discriminator_loss(logits_q, logits_p):
  """-(1/2)[mean log sigma(d_q) + mean log(1 - sigma(d_p))]: the logistic loss a discriminator
  minimises (Eq. 9, Algorithm 1 lines 16/18, negated). Its minimiser is d = log q/p (Eq. 7)."""
  lq, lp = _f32(logits_q), _f32(logits_p)
  # Alg. 1 l.16/18: log sigma(d) = -softplus(-d), log(1 - sigma(d)) = -softplus(d)
  return 0.5 * (jnp.mean(jax.nn.softplus(-lq)) + jnp.mean(jax.nn.softplus(lp)))


def encoder_ratio_loss(logits_q):
  """mean d(x, z, e) over encoder pairs: the term of Eq. 8 that the encoders (psi) minimise (Alg. 1 l.7)."""
  return jnp.mean(_f32(logits_q))


def generator_ratio_loss(logits_p):
  """-mean d(x_hat, z, e) over generator pairs: the term of Eq. 8 that the generator (theta) minimises
  (Alg. 1 l.14, theta ascends the mean)."""
  return -jnp.mean(_f32(logits_p))


def symmetric_kl_estimate(logits_q, logits_p):
  """E_q[d] - E_p[d]: one discriminator's estimate of KL(q || p) + KL(p || q) (Eqs. 6 and 8)."""
  return encoder_ratio_loss(logits_q) + generator_ratio_loss(logits_p)


def srbvae_adversarial_loss(xi_q, xi_p, gamma_q, gamma_p):
  """Eq. 8: the two symmetric-KL estimates, d_xi on unlabelled and d_gamma on reference pairs.

  Minimised jointly by the encoders and generator (and e_r). Encoder-pair logits depend only on
  psi and generator-pair logits only on theta, so one gradient of this sum gives Algorithm 1's
  g_psi and -g_theta.
  """
  return symmetric_kl_estimate(xi_q, xi_p) + symmetric_kl_estimate(gamma_q, gamma_p)


def srbvae_discriminator_loss(xi_q, xi_p, gamma_q, gamma_p):
  """Eq. 9 for both discriminators: the logistic losses of d_xi and d_gamma, summed (each
  discriminator's parameters appear in one term only, so their gradients are Algorithm 1's
  -g_xi and -g_gamma)."""
  return ratio_discriminator_loss(xi_q, xi_p) + ratio_discriminator_loss(gamma_q, gamma_p)


def srbvae_reconstruction_loss(x_nll, x_ref_nll, z_nll, e_nll, z_ref_nll):
  """Eq. 10, negated: the explicit reconstruction terms added to Eq. 8, as a batch mean.

  x_nll [B]: -log p(x | z, e) of unlabelled images (laplace_nll of their reconstructions);
  x_ref_nll [B]: -log p(x_r | z_r, e_r) of reference images;
  z_nll, e_nll [B]: -log q(z|x_hat), -log q(e|x_hat) of prior latents given the image generated
  from them (gaussian_nll); z_ref_nll [B]: -log q(z|x_hat_r) for images generated with e_r.
  """
  terms = (x_nll, x_ref_nll, _f32(z_nll) + _f32(e_nll), z_ref_nll)
  return sum(jnp.mean(_f32(t)) for t in terms)
