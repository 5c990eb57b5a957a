"""StarGAN generator and discriminator (Choi et al. 2018) as used by GANmut (ganmut.md Sec. 4-5).

NHWC. `dtype` is the compute dtype (e.g. bfloat16); parameters stay float32. The condition code is
tiled over the image and concatenated to it as extra channels. Convolutions go through
affectjax.nn.cpu (the same parameters; faster formulations of the same values on XLA:CPU).
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from affectjax.nn import cpu


def _norm(dtype):
  return nn.InstanceNorm(epsilon=1e-5, dtype=dtype, param_dtype=jnp.float32)


class ResidualBlock(nn.Module):
  dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = lambda: cpu.Conv(self.dim, (3, 3), padding=1, use_bias=False, dtype=self.dtype)
    h = nn.relu(_norm(self.dtype)(conv()(x)))
    return x + _norm(self.dtype)(conv()(h))


class Generator(nn.Module):
  """7x7 conv, two stride-2 downsamples, `repeat_num` residual blocks, two upsamples, 7x7, tanh."""
  conv_dim: int = 64
  repeat_num: int = 6
  dtype: Any = jnp.float32
  upsample: str = "transpose"  # transpose (StarGAN's 4x4 stride-2) | subpixel (faster on XLA:CPU)

  @nn.compact
  def __call__(self, x, code):
    b, h, w, _ = x.shape
    x = x.astype(self.dtype)
    c = jnp.broadcast_to(code.astype(self.dtype)[:, None, None, :], (b, h, w, code.shape[-1]))
    y = jnp.concatenate([x, c], axis=-1)
    y = nn.relu(_norm(self.dtype)(cpu.Conv(self.conv_dim, (7, 7), padding=3, use_bias=False,
                                          dtype=self.dtype)(y)))
    dim = self.conv_dim
    for _ in range(2):
      dim *= 2
      y = cpu.Conv(dim, (4, 4), strides=2, padding=1, use_bias=False, dtype=self.dtype)(y)
      y = nn.relu(_norm(self.dtype)(y))
    for _ in range(self.repeat_num):
      y = ResidualBlock(dim, self.dtype)(y)
    for _ in range(2):
      dim //= 2
      if self.upsample == "transpose":
        y = cpu.ConvTranspose(dim, (4, 4), strides=(2, 2), padding="SAME", use_bias=False,
                             dtype=self.dtype)(y)
      else:  # sub-pixel: a 3x3 conv to 4 phases, then depth-to-space (contains every 4x4/2 one)
        b, h, w, _ = y.shape
        y = cpu.Conv(4 * dim, (3, 3), padding=1, use_bias=False, dtype=self.dtype)(y)
        y = y.reshape(b, h, w, 2, 2, dim).transpose(0, 1, 3, 2, 4, 5).reshape(b, 2 * h, 2 * w, dim)
      y = nn.relu(_norm(self.dtype)(y))
    y = cpu.Conv(3, (7, 7), padding=3, use_bias=False, dtype=self.dtype)(y)
    return jnp.tanh(y.astype(jnp.float32))


class Discriminator(nn.Module):
  """PatchGAN trunk of `repeat_num` stride-2 4x4 convs with leaky ReLU (0.01); heads D_src (3x3
  conv, a patch map), D_cls (logits over `num_classes`) and D_coord (`coord_dim` regression, 0 for
  none), the last two as convs spanning the final feature map."""
  image_size: int = 128
  conv_dim: int = 64
  repeat_num: int = 6
  num_classes: int = 7
  coord_dim: int = 2
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    h = x.astype(self.dtype)
    dim = self.conv_dim
    for i in range(self.repeat_num):
      h = nn.leaky_relu(cpu.Conv(dim, (4, 4), strides=2, padding=1, dtype=self.dtype)(h), 0.01)
      dim *= 2
    k = self.image_size // 2 ** self.repeat_num
    src = cpu.Conv(1, (3, 3), padding=1, use_bias=False, dtype=self.dtype, name="src")(h)
    cls = cpu.Conv(self.num_classes, (k, k), padding="VALID", use_bias=False, dtype=self.dtype,
                  name="cls")(h).reshape(x.shape[0], -1)
    f32 = lambda a: a.astype(jnp.float32)
    if not self.coord_dim:
      return f32(src), f32(cls), None
    coord = cpu.Conv(self.coord_dim, (k, k), padding="VALID", use_bias=False, dtype=self.dtype,
                    name="coord")(h).reshape(x.shape[0], -1)
    return f32(src), f32(cls), f32(coord)
