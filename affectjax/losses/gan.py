"""Adversarial losses (GANs, density-ratio discriminators): pure functions of arrays."""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["wgan_critic_loss", "wgan_generator_loss", "gradient_penalty", "symmetric_kl",
           "symmetric_kl_logits", "softmax_cross_entropy"]


def _at_least_f32(x):
  """x in float32, or wider where it already is (bfloat16 -> float32, float64 stays)."""
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def wgan_critic_loss(real_scores, fake_scores):
  """-(E[D(x)] - E[D(G(x, z))]): the critic maximises L_adv (ganmut.md Eq. 3, without the GP)."""
  return jnp.mean(fake_scores) - jnp.mean(real_scores)


def wgan_generator_loss(fake_scores):
  """-E[D(G(x, z))]: the part of L_adv that depends on G (Eq. 3)."""
  return -jnp.mean(fake_scores)


def gradient_penalty(critic_fn, real, fake, key):
  """E_xhat[(||grad_xhat critic(xhat)||_2 - 1)^2], xhat uniform on real-fake segments (Eq. 3).

  critic_fn maps a batch [N, ...] to scores [N] (or [N, ...], summed per sample); fake is treated as
  a constant. Returns the scalar penalty (multiply by lambda_gp).
  """
  fake = jax.lax.stop_gradient(fake)
  alpha = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  xhat = alpha * real + (1 - alpha) * fake
  grads = jax.grad(lambda x: jnp.sum(_at_least_f32(critic_fn(x))))(xhat)
  sq = jnp.sum(jnp.square(_at_least_f32(grads.reshape(grads.shape[0], -1))), axis=-1)
  norm = jnp.sqrt(sq + 1e-12)  # eps: finite gradient where the norm is zero
  return jnp.mean(jnp.square(norm - 1.0))


def symmetric_kl(p, q, eps=1e-8):
  """KL(p || q) + KL(q || p) = sum_c (p - q)(log p - log q) per row (Eq. 9): [..., C] -> [...]."""
  return jnp.sum((p - q) * (jnp.log(p + eps) - jnp.log(q + eps)), axis=-1)


def symmetric_kl_logits(logits_p, logits_q):
  """symmetric_kl of softmax(logits_p) and softmax(logits_q), computed in log space (Eq. 9)."""
  lp = jax.nn.log_softmax(logits_p, axis=-1)
  lq = jax.nn.log_softmax(logits_q, axis=-1)
  return jnp.sum((jnp.exp(lp) - jnp.exp(lq)) * (lp - lq), axis=-1)


def softmax_cross_entropy(logits, labels):
  """-log softmax(logits)[label] per row (Eqs. 4, 5, 10): [N, C], [N] -> [N]."""
  logp = jax.nn.log_softmax(_at_least_f32(logits), axis=-1)
  return -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
