"""Variational losses: KL divergences, likelihoods, VA regression. Per-example unless noted."""
import jax
import jax.numpy as jnp
import optax

__all__ = ["gaussian_kl", "squared_kl", "chunked_kl", "squared_error",
           "va_mse", "va_broadcast_mse", "va_bce", "va_cross_entropy"]


def gaussian_kl(mu, logvar):
  """KL(N(mu, exp(logvar)) || N(0, I)) summed over the last axis: 0.5 sum(mu^2 + s^2 - log s^2 - 1)."""
  return 0.5 * jnp.sum(jnp.square(mu) + jnp.exp(logvar) - logvar - 1.0, axis=-1)


def chunked_kl(mu, logvar, chunk_sizes):
  """Per-chunk Gaussian KLs, [..., len(chunk_sizes)], for a latent split into consecutive chunks."""
  bounds = [0]
  for size in chunk_sizes:
    bounds.append(bounds[-1] + size)
  return jnp.stack([gaussian_kl(mu[..., a:b], logvar[..., a:b])
                    for a, b in zip(bounds[:-1], bounds[1:])], axis=-1)


def squared_kl(mu, logvar, chunk_sizes):
  """LeVAsa Eq. 1: sum over the chunks z_v, z_a, z_z of KL(q(z|x) || N(0, I))^2, per example."""
  return jnp.sum(jnp.square(chunked_kl(mu, logvar, chunk_sizes)), axis=-1)


def squared_error(x, x_hat):
  """Sum of squared errors over all but the batch axis (Gaussian NLL up to constants, unit variance x2)."""
  return jnp.sum(jnp.square(x - x_hat).reshape(x.shape[0], -1), axis=-1)


def va_mse(pred, target):
  """Squared error of a scalar prediction per example ([B] or [B, 1]) against a scalar target [B]."""
  return jnp.square(pred.reshape(target.shape) - target)


def va_broadcast_mse(chunk, target):
  """The original LeVAsa code's VA loss: every latent dimension regressed onto the scalar target."""
  return jnp.mean(jnp.square(chunk - target[:, None]), axis=-1)


def va_bce(logits, target_class):
  """LeVAsa Eq. 2, discrete VA: binary cross-entropy of K sigmoid outputs against the one-hot target."""
  onehot = jax.nn.one_hot(target_class, logits.shape[-1])
  return jnp.sum(optax.sigmoid_binary_cross_entropy(logits, onehot), axis=-1)


def va_cross_entropy(logits, target_class):
  """Softmax cross-entropy over the K discrete VA levels (the original code's choice)."""
  return optax.softmax_cross_entropy_with_integer_labels(logits, target_class)
