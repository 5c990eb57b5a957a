"""Style digits for Rb-VAE held in memory (rbvae.md Sec. 5.1, 5.3 and Appendix C.1), no TensorFlow.

The digits come from scikit-learn's bundled 8x8 digits by default, or from arrays the caller passes
(e.g. MNIST). They are enlarged to size x size and reduced to their edges. The transforms are
those of affectjax.data.builders.style_digits: width k ~ U{1..10} (k x k dilation), colour
c ~ U[0, 1]^3 used as c / |c|_1, scale s ~ U[0.5, 1] (down-scale, zero-pad).
Splits (Sec. 5.1, 5.3):
  train: half of the training digits untransformed (the reference set, is_reference = True), and
    every other training digit transformed twice;
  probe_fit / probe_score: held-out digits in two disjoint halves, each digit transformed
    `probe_copies` times. Linear probes are fitted on the first and scored on the second.
Each split is a dict of canonical-example arrays: image [N, S, S, 3] (float32 in [-1, 1], or uint8),
label (the digit class), identity (the source digit's index), is_reference, and factors
[N, 5] in FACTOR_NAMES order. Reference digits get factors (1, 1, 1, 1, 1): full size, no
dilation, white. Everything is a pure function of `seed`.
"""
from __future__ import annotations

import numpy as np

from affectjax.data.builders.style_digits import base_digit, sample_styles, style_transform

__all__ = ["FACTOR_NAMES", "SPLITS", "load_sklearn_digits", "style_examples", "style_digits",
           "digit_splits", "num_unlabelled"]

FACTOR_NAMES = ("scale", "width", "color_r", "color_g", "color_b")
SPLITS = ("train", "probe_fit", "probe_score")
# Styles per probe digit when probe_copies is 0 (auto). MNIST: its 10,000 test digits once each,
# halved, are Sec. 5.3's "5k images each". scikit-learn's digits: affectjax's choice, 4 styles of
# each of the ~270 held-out digits per probe split (more probe examples from few digits).
AUTO_PROBE_COPIES = {"mnist": 1, "sklearn": 4}


def load_sklearn_digits():
  """scikit-learn's bundled digits: (images [1797, 8, 8] in [0, 1], labels [1797])."""
  from sklearn.datasets import load_digits
  d = load_digits()
  return (d.images / 16.0).astype(np.float32), d.target.astype(np.int32)


def style_examples(rng: np.random.Generator, digits, labels, identity, transform: bool,
                   copies: int = 1, size: int = 64, with_edges: bool = True,
                   uint8: bool = False) -> dict:
  """Canonical arrays for `copies` random styles of each digit (or the digits as they are).

  digits: [N, h, w] in [0, 1]; identity: [N] ids carried through. Returns N * copies examples,
  the copies of one digit adjacent.
  """
  n = len(digits)
  reps = copies if transform else 1
  styles = sample_styles(rng, n * reps) if transform else None
  images = np.empty((n * reps, size, size, 3), np.uint8 if uint8 else np.float32)
  factors = np.ones((n * reps, len(FACTOR_NAMES)), np.float32)  # reference: (1, 1, 1, 1, 1)
  for i in range(n):
    base = base_digit(np.asarray(digits[i], np.float32), size, with_edges)  # App. C.1: 64x64 edges
    for j in range(reps):
      row = i * reps + j
      if transform:
        width, colour, scale = int(styles[row, 0]), styles[row, 1:4], float(styles[row, 4])
        img = style_transform(base, width, colour, scale)  # App. C.1 steps 1-3
        factors[row] = [scale, width, *(colour / colour.sum())]
      else:
        img = np.repeat(base[..., None], 3, axis=-1)
      images[row] = np.round(img * 255.0) if uint8 else img * 2.0 - 1.0
  rep = lambda a: np.repeat(np.asarray(a), reps, axis=0)
  return {"image": images, "label": rep(labels).astype(np.int32),
          "identity": rep(identity).astype(np.int32),
          "is_reference": np.full((n * reps,), not transform), "factors": factors}


def _concat(parts):
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def style_digits(seed: int = 0, size: int = 64, *, digits=None, labels=None, test_digits=None,
                 test_labels=None, probe_fraction: float = 0.3, probe_copies: int = 1,
                 num_digits: int | None = None, with_edges: bool = True,
                 uint8: bool = False) -> dict:
  """{"train", "probe_fit", "probe_score"} -> canonical arrays (see the module docstring).

  digits / labels: [N, h, w] in [0, 1] and [N]; sklearn's digits when None. test_digits /
  test_labels: the probes' digits (MNIST's test set in the paper); when None, a random
  `probe_fraction` of `digits` is held out. num_digits: use only the first num_digits of the
  shuffled digits (a small run). Identities index `digits` followed by `test_digits`.
  """
  if digits is None:
    digits, labels = load_sklearn_digits()
  digits = np.asarray(digits, np.float32)
  labels = np.asarray(labels, np.int32)
  if digits.ndim != 3 or len(labels) != len(digits):
    raise ValueError(f"style_digits: digits must be [N, h, w] with N labels, got {digits.shape} "
                     f"and {labels.shape}")
  rng = np.random.default_rng(seed)
  ids = rng.permutation(len(digits))
  if num_digits is not None:
    ids = ids[:num_digits]
  if test_digits is None:
    n_probe = int(round(probe_fraction * len(ids)))
    probe_ids, train_ids = ids[:n_probe], ids[n_probe:]
    all_digits, all_labels = digits, labels
  else:
    test_digits = np.asarray(test_digits, np.float32)
    train_ids = ids
    probe_ids = len(digits) + rng.permutation(len(test_digits))
    if num_digits is not None:
      probe_ids = probe_ids[:int(round(probe_fraction * num_digits))]
    all_digits = np.concatenate([digits, test_digits])
    all_labels = np.concatenate([labels, np.asarray(test_labels, np.int32)])
  if len(train_ids) < 2 or len(probe_ids) < 2:
    raise ValueError(f"style_digits: too few digits ({len(train_ids)} for training, "
                     f"{len(probe_ids)} for the probes)")
  half = len(train_ids) // 2
  probe_half = len(probe_ids) // 2
  make = lambda idx, transform, copies: style_examples(
      rng, all_digits[idx], all_labels[idx], idx, transform, copies, size, with_edges, uint8)
  reference = make(train_ids[:half], False, 1)  # Sec. 5.1: half of the digits, untransformed
  unlabelled = make(train_ids[half:], True, 2)  # Sec. 5.1: the other half, each transformed twice
  return {"train": _concat([reference, unlabelled]),
          "probe_fit": make(probe_ids[:probe_half], True, probe_copies),  # Sec. 5.3: second subset
          "probe_score": make(probe_ids[probe_half:], True, probe_copies)}  # Sec. 5.3: third subset


def num_unlabelled(num_digits: int = 1797, probe_fraction: float = 0.3) -> int:
  """How many unlabelled (transformed) training images style_digits makes from num_digits digits
  when the probes are held out of them: 2 x (the non-reference half). For epochs -> steps."""
  n_train = num_digits - int(round(probe_fraction * num_digits))
  return 2 * (n_train - n_train // 2)


def _mnist_arrays(tfds_dir: str):
  """(train images, labels, test images, labels) from TFDS mnist prepared in tfds_dir, or None."""
  if not tfds_dir:
    return None
  from affectjax.data.builders.style_digits import _digits
  tr_x, tr_y, te_x, te_y = _digits("auto", tfds_dir)
  return None if te_x is None else (tr_x, tr_y, te_x, te_y)


def digit_splits(data_config, seed: int):
  """config.data -> affectjax.data.sources.Splits for config.data.name == 'style_digits'.

  train: the reference digits (is_reference) and the unlabelled ones (Sec. 5.1), as one source;
  test: probe_score (the third subset of Sec. 5.3); probe_fit: the second subset. metadata:
  'factor_names', 'num_reference', 'digits_source'. Fields of config.data read here
  (all optional): image_size, num_digits (0: all), probe_fraction, probe_copies (0: auto,
  AUTO_PROBE_COPIES), edges, tfds_dir (TFDS mnist there is used when prepared; scikit-learn's
  bundled digits otherwise).
  """
  from affectjax.data.source import ArraySource
  from affectjax.data.sources import Splits
  get = lambda k, d: data_config.get(k, d) if hasattr(data_config, "get") else getattr(data_config, k, d)
  size = int(get("image_size", 64))
  num_digits = int(get("num_digits", 0)) or None
  mnist = _mnist_arrays(get("tfds_dir", ""))
  kw = {} if mnist is None else dict(digits=mnist[0], labels=mnist[1], test_digits=mnist[2],
                                     test_labels=mnist[3])
  source = "sklearn" if mnist is None else "mnist"
  copies = int(get("probe_copies", 0)) or AUTO_PROBE_COPIES[source]
  arrays = style_digits(seed, size, probe_fraction=float(get("probe_fraction", 0.3)),
                        probe_copies=copies, num_digits=num_digits,
                        with_edges=bool(get("edges", True)), uint8=True, **kw)
  train = ArraySource(arrays["train"])
  metadata = {"name": "style_digits", "image_size": size, "factor_names": FACTOR_NAMES,
              "num_reference": int(arrays["train"]["is_reference"].sum()),
              "digits_source": source, "probe_copies": copies}
  return Splits(train, ArraySource(arrays["probe_score"]), metadata,
                probe_fit=ArraySource(arrays["probe_fit"]))
