"""Rb-VAE networks after rbvae.md Sec. 5.2 and Appendix D (Karras et al. 2018 building blocks).

NHWC, leaky ReLU with slope 0.2, 3x3 convolutions. `channels` lists the widths from the lowest
resolution (base_size, 4 by default) to the image's. The image is
base_size * 2 ** (len(channels) - 1) pixels on a side: (256, 256, 128, 64, 32) gives 64x64.
- Generator G(z, e): an FC layer to a base_size^2 map, then per stage nearest-neighbour x2
  up-sampling and two convs, each followed by pixel-wise (channel) normalisation. A 1x1 conv to
  RGB and tanh give the output in [-1, 1].
- Encoder: a 1x1 conv from RGB, then per stage two convs with channel normalisation and 2x2
  average pooling, then two FC layers giving a diagonal Gaussian (mu, logvar). RbEncoder holds the
  paper's two encoders, Z (common factors z) and E (target factors e), each with its own weights.
- Discriminator d_xi(x, z, e), or d_gamma(x, z) when e is None: the encoder's image trunk without
  channel normalisation, FC branches for the image and for the latents, and a last FC layer to a
  logit. Dropout 0.25 on that layer's input (App. D) sets image and latent features to zero
  (pass train=True and a 'dropout' rng).
Fig. 6 (the exact layer list) is an image the text does not give; the layer counts here are
Karras et al.'s blocks, and the widths are constructor arguments.
`dtype` is the compute dtype; parameters and outputs are float32.
"""
from __future__ import annotations

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from affectjax.nn import cpu  # nn.Conv with XLA:CPU's fast formulation of small outputs

__all__ = ["pixel_norm", "upsample_nearest", "Generator", "Encoder", "RbEncoder", "Discriminator"]

LATENT_DIM = 32  # Sec. 5.2: 32 latent variables per encoder
SLOPE = 0.2  # App. D: leaky ReLU slope


def pixel_norm(x, eps: float = 1e-8):
  """Pixel-wise (channel) normalisation (Karras et al. 2018): x / sqrt(mean_c x^2 + eps)."""
  return x * jnp.reciprocal(jnp.sqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + eps))


def upsample_nearest(x, factor: int = 2):
  """[B, H, W, C] -> [B, factor H, factor W, C] by repeating pixels."""
  return jnp.repeat(jnp.repeat(x, factor, axis=1), factor, axis=2)


def _lrelu(x):
  return nn.leaky_relu(x, SLOPE)


class _Trunk(nn.Module):
  """Image -> flat features: from-RGB 1x1 conv, per stage two 3x3 convs (+ channel norm) and a 2x2
  average pool, one more 3x3 conv at base resolution."""
  channels: Sequence[int]
  normalize: bool
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = lambda c, k=3: cpu.Conv(c, (k, k), padding="SAME", dtype=self.dtype)
    norm = pixel_norm if self.normalize else (lambda a: a)
    widths = list(self.channels)[::-1]  # image resolution first
    h = _lrelu(conv(widths[0], 1)(x.astype(self.dtype)))
    for c, c_next in zip(widths[:-1], widths[1:]):
      h = norm(_lrelu(conv(c)(h)))
      h = norm(_lrelu(conv(c_next)(h)))
      h = nn.avg_pool(h, (2, 2), strides=(2, 2))  # Sec. 5.2: average pooling for down-sampling
    h = norm(_lrelu(conv(widths[-1])(h)))
    return h.reshape(h.shape[0], -1)


class Generator(nn.Module):
  """G(z, e) -> image [B, S, S, out_channels] in [-1, 1] (e may be None: G(z) for the baselines)."""
  channels: Sequence[int] = (256, 256, 128, 64, 32)
  base_size: int = 4
  out_channels: int = 3
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, z, e=None):
    h = z if e is None else jnp.concatenate([z, e], axis=-1)
    c0 = self.channels[0]
    h = nn.Dense(self.base_size * self.base_size * c0, dtype=self.dtype)(h.astype(self.dtype))
    h = pixel_norm(_lrelu(h.reshape(h.shape[0], self.base_size, self.base_size, c0)))
    conv = lambda c: cpu.Conv(c, (3, 3), padding="SAME", dtype=self.dtype)
    h = pixel_norm(_lrelu(conv(c0)(h)))
    for c in self.channels[1:]:
      h = upsample_nearest(h)  # App. D: nearest-neighbour up-sampling
      h = pixel_norm(_lrelu(conv(c)(h)))  # App. D: CN = pixel-wise normalisation
      h = pixel_norm(_lrelu(conv(c)(h)))
    h = cpu.Conv(self.out_channels, (1, 1), dtype=self.dtype)(h)
    return jnp.tanh(h.astype(jnp.float32))  # App. D: tanh, images in [-1, 1]


class Encoder(nn.Module):
  """x -> (mu, logvar) [B, latent_dim] of the diagonal Gaussian q(.|x) (Sec. 4.2)."""
  latent_dim: int = LATENT_DIM
  channels: Sequence[int] = (256, 256, 128, 64, 32)
  hidden: int = 256
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    h = _Trunk(self.channels, normalize=True, dtype=self.dtype)(x)  # Sec. 5.2: CN in encoders
    h = _lrelu(nn.Dense(self.hidden, dtype=self.dtype)(h))
    out = nn.Dense(2 * self.latent_dim, dtype=self.dtype)(h).astype(jnp.float32)
    return out[:, :self.latent_dim], out[:, self.latent_dim:]


class RbEncoder(nn.Module):
  """The two encoders of Fig. 2(c, d): Z gives q(z|x), E gives q(e|x); separate weights.

  __call__(x) -> ((mu_z, logvar_z), (mu_e, logvar_e)); methods z_posterior / e_posterior run
  one of them (reference images need only z).
  """
  z_dim: int = LATENT_DIM
  e_dim: int = LATENT_DIM
  channels: Sequence[int] = (256, 256, 128, 64, 32)
  hidden: int = 256
  dtype: Any = jnp.float32

  def setup(self):
    self.z_encoder = Encoder(self.z_dim, self.channels, self.hidden, self.dtype)
    self.e_encoder = Encoder(self.e_dim, self.channels, self.hidden, self.dtype)

  def z_posterior(self, x):
    return self.z_encoder(x)

  def e_posterior(self, x):
    return self.e_encoder(x)

  def __call__(self, x):
    return self.z_encoder(x), self.e_encoder(x)


class Discriminator(nn.Module):
  """d_xi(x, z, e) -> logit [B] estimating log q/p (Eq. 7); d_gamma(x, z) when e is None (App. D)."""
  channels: Sequence[int] = (256, 256, 128, 64, 32)
  hidden: int = 512
  latent_hidden: int = 512
  dropout_rate: float = 0.25  # App. D
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, z, e=None, train: bool = False):
    hx = _Trunk(self.channels, normalize=False, dtype=self.dtype)(x)  # no CN in discriminators
    hx = _lrelu(nn.Dense(self.hidden, dtype=self.dtype)(hx))
    lat = z if e is None else jnp.concatenate([z, e], axis=-1)
    hz = _lrelu(nn.Dense(self.latent_hidden, dtype=self.dtype)(lat.astype(self.dtype)))
    hz = _lrelu(nn.Dense(self.latent_hidden, dtype=self.dtype)(hz))
    h = jnp.concatenate([hx, hz], axis=-1)
    h = nn.Dropout(self.dropout_rate, deterministic=not train)(h)  # App. D: 0.25 on the last FC's input
    return nn.Dense(1, dtype=self.dtype)(h).astype(jnp.float32)[:, 0]
