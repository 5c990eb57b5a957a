"""Fully connected landmark encoder/decoder of the triplet VAE (triplet_vae.md Sec. III, V-C).

All layers dense with ELU and dropout. M1/M2 condition both networks on the person's neutral face
(concatenated to the input): q(z | x, y) (Eq. 3) and the mean f(y, z) of p(x | y, z) (Eq. 2); the
VAE baseline uses neither. The paper's best M2 lists layer sizes with the inputs included:
encoder [498, 480, 240, 120, 60, 30] = (249 face + 249 neutral) -> 480 -> ... -> 60 -> latent 30,
decoder [279, 300, 400, 300, 249] = (30 latent + 249 neutral) -> 300 -> 400 -> 300 -> 249 face.
`paper_sizes` turns such lists into the modules' fields.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp

from affectjax.nn import reparam

__all__ = ["LandmarkEncoder", "LandmarkDecoder", "LandmarkVAE", "paper_sizes"]


def paper_sizes(encoder: Sequence[int], decoder: Sequence[int], data_dim: int,
                conditional: bool = True) -> dict:
  """Paper-style size lists (inputs and outputs included) -> LandmarkVAE fields, checked.

  E.g. ([498, 480, 240, 120, 60, 30], [279, 300, 400, 300, 249], 249) -> encoder_hidden
  (480, 240, 120, 60), latent_dim 30, decoder_hidden (300, 400, 300), data_dim 249.
  """
  encoder, decoder = list(encoder), list(decoder)
  latent = encoder[-1]
  cond = data_dim if conditional else 0
  if encoder[0] != data_dim + cond:
    raise ValueError(f"encoder input {encoder[0]} != data {data_dim} + neutral {cond}")
  if decoder[0] != latent + cond:
    raise ValueError(f"decoder input {decoder[0]} != latent {latent} + neutral {cond}")
  if decoder[-1] != data_dim:
    raise ValueError(f"decoder output {decoder[-1]} != data dimension {data_dim}")
  return {"encoder_hidden": tuple(encoder[1:-1]), "latent_dim": latent,
          "decoder_hidden": tuple(decoder[1:-1]), "data_dim": data_dim}


def _mlp(h, widths, rate, train):
  for width in widths:
    h = nn.elu(nn.Dense(width)(h))
    h = nn.Dropout(rate, deterministic=not train)(h)
  return h


class LandmarkEncoder(nn.Module):
  """x [B, ...] (and neutral y [B, ...]) -> (mu, logvar) [B, latent] of q(z | x, y) (Eq. 3).

  dropout_rate is the drop probability: the paper's "dropout 0.9" read as a keep probability
  (TensorFlow's convention), so 0.1. Dropout needs rngs={'dropout': key} when train=True.
  """
  latent_dim: int = 30
  hidden: Sequence[int] = (480, 240, 120, 60)
  dropout_rate: float = 0.1

  @nn.compact
  def __call__(self, x, neutral=None, train: bool = False):
    h = x.reshape(x.shape[0], -1)
    if neutral is not None:  # M1: the neutral face is an additional input (Sec. III-A)
      h = jnp.concatenate([h, neutral.reshape(neutral.shape[0], -1).astype(h.dtype)], -1)
    h = _mlp(h, self.hidden, self.dropout_rate, train)
    return nn.Dense(self.latent_dim, name="mu")(h), nn.Dense(self.latent_dim, name="logvar")(h)


class LandmarkDecoder(nn.Module):
  """z [..., B, latent] (and neutral y [B, ...]) -> the mean f(y, z) [..., B, data_dim] (Eq. 2).

  Leading axes of z (the L samples of Eq. 5) are kept; the neutral face is broadcast over them.
  """
  data_dim: int = 249
  hidden: Sequence[int] = (300, 400, 300)
  dropout_rate: float = 0.1

  @nn.compact
  def __call__(self, z, neutral=None, train: bool = False):
    h = z
    if neutral is not None:  # M1: f(y, z, theta) takes the neutral face too (Eq. 2)
      y = neutral.reshape(neutral.shape[0], -1).astype(z.dtype)
      h = jnp.concatenate([z, jnp.broadcast_to(y, z.shape[:-1] + y.shape[-1:])], -1)
    h = _mlp(h, self.hidden, self.dropout_rate, train)
    return nn.Dense(self.data_dim, name="mean")(h)


class LandmarkVAE(nn.Module):
  """Encoder + decoder; conditional=True is M1/M2's graph, False the symmetric VAE baseline."""
  data_dim: int = 249
  latent_dim: int = 30
  encoder_hidden: Sequence[int] = (480, 240, 120, 60)
  decoder_hidden: Sequence[int] = (300, 400, 300)
  dropout_rate: float = 0.1
  conditional: bool = True

  def setup(self):
    self.encoder = LandmarkEncoder(self.latent_dim, self.encoder_hidden, self.dropout_rate)
    self.decoder = LandmarkDecoder(self.data_dim, self.decoder_hidden, self.dropout_rate)

  def _neutral(self, neutral):
    if self.conditional and neutral is None:
      raise ValueError("a conditional LandmarkVAE (M1/M2) needs the neutral face")
    return neutral if self.conditional else None

  def encode(self, x, neutral=None, train: bool = False):
    return self.encoder(x, self._neutral(neutral), train)

  def decode(self, z, neutral=None, train: bool = False):
    return self.decoder(z, self._neutral(neutral), train)

  def __call__(self, x, neutral, key, num_samples: int = 1, train: bool = False):
    """(mu, logvar, z [L, B, latent], mean [L, B, data_dim]): z = mu + sigma eps (Eq. 5)."""
    mu, logvar = self.encode(x, neutral, train)
    z = reparam.sample(key, mu, logvar, (num_samples,))  # Eq. 5: reparameterisation
    return mu, logvar, z, self.decode(z, neutral, train)
