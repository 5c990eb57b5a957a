"""Convolutional VAE encoder/decoder and MLP projection heads (LeVAsa, Vanilla VAE).

Two architectures:
- "paper": a standard 4x4 stride-2 conv stack with SAME padding and a sub-pixel (depth-to-space)
  decoder (the LeVAsa paper gives no architecture; this one works at any image size divisible by
  16; sub-pixel upsampling is 3-4x faster than ConvTranspose on XLA's CPU backend);
- "original": the public LeVAsa code's shapes (../shared/REFERENCE.md): 3x3 stride-2 convs
  without padding (64 -> 31, 15, 7, 3) with BatchNorm + ReLU, dense 512 and 128, and linear
  mean/log-variance heads; the decoder mirrors it.
"""
from typing import Sequence

import flax.linen as nn

from affectjax.nn import reparam
from affectjax.nn import cpu  # nn.Conv with XLA:CPU's fast formulation of small outputs


def depth_to_space(x, r: int = 2):
  """[B, H, W, r*r*C] -> [B, r*H, r*W, C] (sub-pixel upsampling)."""
  b, h, w, c = x.shape
  x = x.reshape(b, h, w, r, r, c // (r * r)).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h * r, w * r, c // (r * r))


class Encoder(nn.Module):
  latent_dim: int
  arch: str = "paper"
  channels: Sequence[int] = (32, 64, 64, 128)

  @nn.compact
  def __call__(self, x, train: bool = False):
    if self.arch == "paper":
      for ch in self.channels:
        x = nn.relu(cpu.Conv(ch, (4, 4), strides=2, padding="SAME")(x))
      x = nn.relu(nn.Dense(256)(x.reshape(x.shape[0], -1)))
    elif self.arch == "original":
      for ch in (32, 64, 128, 256):
        x = cpu.Conv(ch, (3, 3), strides=2, padding="VALID")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
      x = x.reshape(x.shape[0], -1)
      x = nn.relu(nn.Dense(512)(x))
      x = nn.relu(nn.Dense(128)(x))
    else:
      raise ValueError(f"unknown VAE arch {self.arch!r}")
    mu = nn.Dense(self.latent_dim, name="mu")(x)
    logvar = nn.Dense(self.latent_dim, name="logvar")(x)
    return mu, logvar


class Decoder(nn.Module):
  image_size: int
  out_channels: int = 3
  arch: str = "paper"
  channels: Sequence[int] = (128, 64, 32, 16)

  @nn.compact
  def __call__(self, z, train: bool = False):
    n = len(self.channels)
    if self.arch == "paper":
      side = self.image_size // 2**n
      x = nn.relu(nn.Dense(256)(z))
      x = nn.relu(nn.Dense(side * side * self.channels[0])(x))
      x = x.reshape(z.shape[0], side, side, self.channels[0])
      for ch in self.channels[1:]:
        x = nn.relu(depth_to_space(cpu.Conv(4 * ch, (3, 3), padding="SAME")(x)))
      return depth_to_space(cpu.Conv(4 * self.out_channels, (3, 3), padding="SAME")(x))
    if self.arch == "original":
      channels = (256, 128, 64, 32)  # the code's widths, mirrored from its encoder
      side = 3  # 64 -> 31 -> 15 -> 7 -> 3 in the encoder
      x = nn.relu(nn.Dense(128)(z))
      x = nn.relu(nn.Dense(512)(x))
      x = nn.relu(nn.Dense(side * side * channels[0])(x))
      x = x.reshape(z.shape[0], side, side, channels[0])
      for ch in channels[1:]:  # (s - 1) * 2 + 3: 3 -> 7 -> 15 -> 31
        x = nn.ConvTranspose(ch, (3, 3), strides=(2, 2), padding="VALID")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
      # (31 - 1) * 2 + 4 = 64: a 4x4 kernel plays the role of PyTorch's output_padding.
      return nn.ConvTranspose(self.out_channels, (4, 4), strides=(2, 2), padding="VALID")(x)
    raise ValueError(f"unknown VAE arch {self.arch!r}")


class MLPHead(nn.Module):
  """Non-linear projection head (LeVAsa's h_v, h_a): Dense-ReLU-Dense; linear=True is one Dense."""
  out_dim: int
  hidden: int = 64
  linear: bool = False

  @nn.compact
  def __call__(self, z):
    if self.linear:
      return nn.Dense(self.out_dim)(z)
    return nn.Dense(self.out_dim)(nn.relu(nn.Dense(self.hidden)(z)))


class ChunkedVAE(nn.Module):
  """A VAE whose latent is split into named chunks (LeVAsa: z_v, z_a, z_z), with optional heads.

  head_dim > 0 adds the projection heads h_v(z_v) and h_a(z_a) with head_dim outputs each
  (1 for continuous VA, K levels for discrete VA).
  """
  chunk_sizes: Sequence[int]
  image_size: int
  channels: int = 3
  arch: str = "paper"
  head_dim: int = 0
  head_hidden: int = 64
  head_linear: bool = False

  def setup(self):
    self.encoder = Encoder(sum(self.chunk_sizes), arch=self.arch)
    self.decoder = Decoder(self.image_size, self.channels, arch=self.arch)
    if self.head_dim:
      self.head_v = MLPHead(self.head_dim, self.head_hidden, self.head_linear)
      self.head_a = MLPHead(self.head_dim, self.head_hidden, self.head_linear)

  def encode(self, x, train: bool = False):
    return self.encoder(x, train)

  def decode(self, z, train: bool = False):
    return self.decoder(z, train)

  def heads(self, z):
    """(r_v, r_a) = (h_v(z_v), h_a(z_a)) from the full latent z."""
    zv, za = z[:, :self.chunk_sizes[0]], z[:, self.chunk_sizes[0]:sum(self.chunk_sizes[:2])]
    return self.head_v(zv), self.head_a(za)

  def __call__(self, x, key, train: bool = False):
    """Encodes, samples z = mu + sigma * eps with eps drawn from `key`, decodes (and heads)."""
    mu, logvar = self.encode(x, train)
    z = reparam.sample(key, mu, logvar)
    out = {"mu": mu, "logvar": logvar, "z": z, "x_hat": self.decode(z, train)}
    if self.head_dim:
      out["r_v"], out["r_a"] = self.heads(z)
    return out
