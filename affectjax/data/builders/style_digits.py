"""Style digits for Rb-VAE (../shared/papers/rbvae.md, Sec. 5.1 and Appendix C.1).

Digits are enlarged to size x size and reduced to their edges; the reference set is the first
half of the training digits as they are; every other training digit is transformed twice and
every test digit once, each time by a random style:
  width  k ~ U{1..10}: dilation with a k x k square kernel;
  colour c ~ U[0, 1]^3, c / |c|_1 multiplies the RGB channels;
  scale  s ~ U[0.5, 1]: down-scaling by s and zero-padding back to size x size.
`factors` = (width, c_r, c_g, c_b, scale, digit); reference digits carry (1, 1, 1, 1, 1, digit):
no dilation, white, full size. Images are float32 in [-1, 1]. The digits come from TFDS mnist when
it is prepared in config.data.tfds_dir, else from scikit-learn's bundled 8x8 digits (option source).
"""
from __future__ import annotations

import numpy as np

from affectjax.data.builders.splits import Splits

NAME = "mnist_style"
FACTOR_TARGETS = True  # Rb-VAE scores its factors by MAE (sources.dataset_info)
FACTOR_NAMES = ("width", "color_r", "color_g", "color_b", "scale", "digit")
OPTIONS = {"source": "auto", "edges": True, "split_seed": 0}  # source: auto | mnist | sklearn


def factor_names(options=None) -> tuple:
  return FACTOR_NAMES


def resize_bilinear(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
  """[H, W, ...] -> [out_h, out_w, ...], bilinear with pixel centres aligned (half-pixel)."""
  h, w = image.shape[:2]
  ys = np.clip((np.arange(out_h) + 0.5) * h / out_h - 0.5, 0, h - 1)
  xs = np.clip((np.arange(out_w) + 0.5) * w / out_w - 0.5, 0, w - 1)
  y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
  y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
  wy = (ys - y0).reshape((-1, 1) + (1,) * (image.ndim - 2))
  wx = (xs - x0).reshape((1, -1) + (1,) * (image.ndim - 2))
  a = image.astype(np.float32)
  top = a[y0][:, x0] * (1 - wx) + a[y0][:, x1] * wx
  bottom = a[y1][:, x0] * (1 - wx) + a[y1][:, x1] * wx
  return top * (1 - wy) + bottom * wy


def dilate(image: np.ndarray, k: int) -> np.ndarray:
  """Grey dilation of [H, W] by a k x k square (max filter, zero outside); k = 1 is the identity."""
  h, w = image.shape
  lo = (k - 1) // 2
  padded = np.zeros((h + k - 1, w + k - 1), image.dtype)
  padded[lo:lo + h, lo:lo + w] = image
  out = np.zeros_like(image)
  for dy in range(k):
    for dx in range(k):
      out = np.maximum(out, padded[dy:dy + h, dx:dx + w])
  return out


def edges(image: np.ndarray, threshold: float = 0.5) -> np.ndarray:
  """The digit's boundary (Appendix C.1): thresholded digit minus its 3x3 erosion, in {0, 1}."""
  b = (image > threshold).astype(np.float32)
  eroded = 1.0 - dilate(1.0 - b, 3)
  return b * (1.0 - eroded)


def base_digit(image: np.ndarray, size: int, with_edges: bool = True) -> np.ndarray:
  """A [h, w] digit in [0, 1] enlarged to [size, size] (and reduced to its edges)."""
  big = np.clip(resize_bilinear(image, size, size), 0, 1)
  return edges(big) if with_edges else big


def style_transform(digit: np.ndarray, width: int, color, scale: float) -> np.ndarray:
  """[S, S] digit in [0, 1] -> [S, S, 3] styled digit in [0, 1] (Appendix C.1, steps 1-3)."""
  s = digit.shape[0]
  x = dilate(digit.astype(np.float32), int(width))  # 1: stroke width
  c = np.asarray(color, np.float32)
  x = x[..., None] * (c / np.abs(c).sum())  # 2: colour by the L1-normalised RGB vector
  n = max(1, int(round(s * float(scale))))  # 3: down-scale and zero-pad back to s x s
  small = np.clip(resize_bilinear(x, n, n), 0, 1)
  out = np.zeros((s, s, 3), np.float32)
  top = (s - n) // 2
  out[top:top + n, top:top + n] = small
  return out


def sample_styles(rng: np.random.Generator, n: int) -> np.ndarray:
  """[n, 5] styles (width, c_r, c_g, c_b, scale) drawn as in Appendix C.1 (colour not normalised)."""
  return np.concatenate([rng.integers(1, 11, (n, 1)).astype(np.float32),
                         rng.uniform(0, 1, (n, 3)), rng.uniform(0.5, 1, (n, 1))], 1).astype(np.float32)


class StyleDigitsSource:
  """Digits styled on the fly from (base digit, style) pairs: nothing large is held in memory."""

  def __init__(self, digits, labels, base_index, styles, size: int, with_edges: bool):
    self.digits, self.labels = digits, labels
    self.base_index, self.styles = base_index, styles  # styles row NaN -> reference (untransformed)
    self.size, self.with_edges = size, with_edges

  def __len__(self):
    return len(self.base_index)

  def gather(self, indices) -> dict:
    from affectjax.data.example import complete_batch, example_spec
    idx = np.asarray(indices).reshape(-1)
    imgs, factors = [], []
    for i in idx:
      b, st = self.base_index[i], self.styles[i]
      d = base_digit(self.digits[b], self.size, self.with_edges)
      if np.isnan(st[0]):
        imgs.append(np.repeat(d[..., None], 3, -1))
        f = [1, 1, 1, 1, 1]
      else:
        imgs.append(style_transform(d, int(st[0]), st[1:4], st[4]))
        f = [st[0], *(st[1:4] / st[1:4].sum()), st[4]]
      factors.append(f + [self.labels[b]])
    batch = {"image": np.stack(imgs) * 2.0 - 1.0, "factors": np.asarray(factors, np.float32),
             "is_reference": np.isnan(self.styles[idx, 0])}
    return complete_batch(batch, example_spec((self.size, self.size, 3), 0, len(FACTOR_NAMES)))


def _digits(source: str, tfds_dir: str):
  """(train images, train labels, test images, test labels or None): images [N, h, w] in [0, 1]."""
  if source in ("auto", "mnist") and tfds_dir:
    from affectjax.data.builders.base import _tfds
    tfds = _tfds()
    try:
      b = tfds.builder("mnist", data_dir=tfds_dir)
      ok = "train" in b.info.splits
    except Exception:  # not prepared (or no TFDS mnist module)
      ok = False
    if ok:
      out = []
      for split in ("train", "test"):
        ds = b.as_data_source(split=split)
        recs = ds.__getitems__(list(range(len(ds))))
        out += [np.stack([r["image"][..., 0] for r in recs]) / 255.0, np.asarray([r["label"] for r in recs])]
      return out
    if source == "mnist":
      from affectjax.data.builders.report import MissingDataError
      raise MissingDataError(f"mnist_style: TFDS mnist is not prepared in {tfds_dir}; prepare it "
                             "there (tfds build mnist --data_dir=...) or use builder_options.source=sklearn")
  from sklearn.datasets import load_digits
  d = load_digits()
  return [d.images / 16.0, d.target, None, None]


def load_splits(data_config) -> Splits:
  from affectjax.data.builders import base, tfds_dir_of
  o = base.resolve_options(OPTIONS, data_config.get("builder_options", None), NAME,
                           data_config.image_size, data_config.num_classes)
  tr_x, tr_y, te_x, te_y = _digits(o["source"], data_config.get("tfds_dir", "") and tfds_dir_of(data_config))
  rng = np.random.default_rng(o["split_seed"])
  if te_x is None:  # sklearn digits: hold out test_fraction of them
    perm = rng.permutation(len(tr_x))
    n_test = int(round(data_config.test_fraction * len(tr_x)))
    te_x, te_y, tr_x, tr_y = tr_x[perm[:n_test]], tr_y[perm[:n_test]], tr_x[perm[n_test:]], tr_y[perm[n_test:]]
  digits = np.concatenate([tr_x, te_x]).astype(np.float32)
  labels = np.concatenate([tr_y, te_y]).astype(np.int64)
  n_tr, half = len(tr_x), len(tr_x) // 2
  ref = np.arange(half)
  unl = np.repeat(np.arange(half, n_tr), 2)  # each non-reference digit transformed twice
  tr_base = np.concatenate([ref, unl])
  tr_styles = np.concatenate([np.full((half, 5), np.nan, np.float32), sample_styles(rng, len(unl))])
  te_base = np.arange(n_tr, len(digits))
  te_styles = sample_styles(rng, len(te_base))
  size = int(data_config.image_size)
  make = lambda b, s: StyleDigitsSource(digits, labels, b, s, size, o["edges"])
  metadata = {"name": NAME, "num_classes": int(data_config.num_classes), "image_size": size,
              "factor_names": FACTOR_NAMES, "options": o, "num_reference": int(half),
              "digits_source": "mnist" if len(digits) > 10000 else "sklearn"}
  return Splits(make(tr_base, tr_styles), make(te_base, te_styles), metadata)
