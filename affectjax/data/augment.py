"""Image augmentation as a pure function of (key, images): colour jitter, horizontal flip and a
random affine map (dual_domain_fusion.md Sec. 4.2's augmentation, torchvision's semantics)."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

__all__ = ["augment", "from_config"]


def _bilinear(image, ys, xs, fill):
  """image [H, W, C] sampled at float pixel coordinates ys, xs [H, W]; outside -> fill."""
  h, w = image.shape[:2]
  y0, x0 = jnp.floor(ys), jnp.floor(xs)
  wy, wx = (ys - y0)[..., None], (xs - x0)[..., None]
  out = 0.0
  for dy, fy in ((0, 1.0 - wy), (1, wy)):
    for dx, fx in ((0, 1.0 - wx), (1, wx)):
      yi, xi = (y0 + dy).astype(jnp.int32), (x0 + dx).astype(jnp.int32)
      inside = ((yi >= 0) & (yi < h) & (xi >= 0) & (xi < w))[..., None]
      v = image[jnp.clip(yi, 0, h - 1), jnp.clip(xi, 0, w - 1)]
      out = out + fy * fx * jnp.where(inside, v, fill)
  return out


@functools.partial(jax.jit, static_argnames=("flip_prob", "brightness", "contrast", "saturation",
                                             "degrees", "translate", "scale", "fill"))
def augment(key, images, *, flip_prob: float = 0.0, brightness: float = 0.0,
            contrast: float = 0.0, saturation: float = 0.0, degrees: float = 0.0,
            translate: float = 0.0, scale: float = 0.0, fill: float = -1.0):
  """Augmented images [N, H, W, C] in [-1, 1], a pure function of (key, images).

  Colour jitter as torchvision's ColorJitter (brightness, contrast, saturation factors uniform in
  [1 - s, 1 + s], in that order), a horizontal flip with probability flip_prob, and a random
  affine map about the centre (rotation uniform in +-degrees, shift uniform in +-translate x size,
  zoom uniform in [1 - scale, 1 + scale]), bilinear, `fill` outside (black). Strengths are static
  Python floats; a zero strength skips its operation, so all zeros return the images unchanged.
  The key is split 7 ways (brightness, contrast, saturation, flip, rotation, shift, zoom).
  """
  images = jnp.asarray(images)
  n, h, w, c = images.shape
  k_b, k_c, k_s, k_f, k_rot, k_t, k_z = jax.random.split(key, 7)
  x = images
  factor = lambda k, s: jax.random.uniform(k, (n, 1, 1, 1), x.dtype, 1.0 - s, 1.0 + s)
  if brightness or contrast or saturation:
    x = (x + 1.0) * 0.5
    gray = lambda v: (jnp.sum(v * jnp.asarray([0.299, 0.587, 0.114], v.dtype), -1, keepdims=True)
                      if c == 3 else jnp.mean(v, -1, keepdims=True))
    if brightness:
      x = jnp.clip(x * factor(k_b, brightness), 0.0, 1.0)
    if contrast:
      mean = jnp.mean(gray(x), axis=(1, 2, 3), keepdims=True)
      x = jnp.clip((x - mean) * factor(k_c, contrast) + mean, 0.0, 1.0)
    if saturation:
      g = gray(x)
      x = jnp.clip((x - g) * factor(k_s, saturation) + g, 0.0, 1.0)
    x = x * 2.0 - 1.0
  if flip_prob:
    flip = jax.random.uniform(k_f, (n, 1, 1, 1)) < flip_prob
    x = jnp.where(flip, x[:, :, ::-1], x)
  if degrees or translate or scale:
    angle = jnp.deg2rad(jax.random.uniform(k_rot, (n,), minval=-degrees, maxval=degrees))
    shift = jax.random.uniform(k_t, (n, 2), minval=-translate, maxval=translate) * jnp.asarray([h, w])
    zoom = jax.random.uniform(k_z, (n,), minval=1.0 - scale, maxval=1.0 + scale)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                          indexing="ij")

    def one(img, a, t, z):  # inverse map: output pixel -> source pixel
      py, px = yy - cy - t[0], xx - cx - t[1]
      cos, sin = jnp.cos(a), jnp.sin(a)
      sy = (cos * py - sin * px) / z + cy
      sx = (sin * py + cos * px) / z + cx
      return _bilinear(img, sy, sx, fill).astype(img.dtype)

    x = jax.vmap(one)(x, angle, shift, zoom)
  return x


def from_config(aug):
  """augment with a config's `aug` section's strengths bound: (key, images) -> images."""
  return functools.partial(augment, flip_prob=aug.flip_prob, brightness=aug.brightness,
                           contrast=aug.contrast, saturation=aug.saturation, degrees=aug.degrees,
                           translate=aug.translate, scale=aug.scale)
