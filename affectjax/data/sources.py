"""Dataset splits for training and evaluation: the embedded synthetic faces and real datasets.

The synthetic faces come in "views" that mimic the annotation of the papers' datasets:
- full:            every annotation (labels, VA, landmarks, neutral landmarks, factors);
- affectnet_like:  labels and continuous VA (LeVAsa's reference set D_r);
- imfdb_like:      labels only (VA unknown: LeVAsa fills it by annotation transfer);
- afew_like:       discrete VA only, round(levels * va) / levels, no labels.
Each view draws its own people (its own seed and identity range), as separate datasets would.
Ground truth stays in `factors` whatever the view, for evaluation against the truth.
"""
from __future__ import annotations

import dataclasses
import zlib

import numpy as np

from affectjax import config as config_lib
from affectjax.config import expect
from affectjax.data.builders.splits import DatasetInfo, Splits  # noqa: F401  (one Splits for every source)
from affectjax.data.source import ArraySource

VIEWS = ("full", "affectnet_like", "imfdb_like", "afew_like")
SYNTHETIC_DATASETS = ("synthetic_faces", "style_digits")  # made by affectjax, in memory


def known_datasets() -> tuple[str, ...]:
  from affectjax.data import builders
  return SYNTHETIC_DATASETS + tuple(getattr(builders, "NAMES", ()))


def validate(config) -> None:
  """config.data's fields, before anything is generated or read; one clear line each."""
  data = config.data
  config_lib.expect_one_of(config, "data.name", known_datasets())
  config_lib.expect_one_of(config, "data.view", VIEWS)
  for name in ("num_identities", "images_per_identity"):
    expect(isinstance(data[name], int) and data[name] > 0,
           f"config.data.{name}={data[name]!r} must be a positive integer")
  expect(0.0 < data.test_fraction < 1.0, f"config.data.test_fraction={data.test_fraction} must be in (0, 1)")
  expect(0.0 <= data.label_noise <= 1.0, f"config.data.label_noise={data.label_noise} must be in [0, 1]")
  expect(data.va_levels >= 0, f"config.data.va_levels={data.va_levels} must be >= 0")
  if data.name == "synthetic_faces":
    from affectjax.data.synthetic import presets
    presets.validate(data, config_lib.base_config().data)
    _expect_identity_split(data.num_identities, data.test_fraction)
  elif data.name == "style_digits":
    _expect_digit_split(data.get("num_digits", 0), data.get("probe_fraction", 0.3))
  else:  # a real dataset: its builder options (JSON, known names) before anything is read
    from affectjax.data import builders
    module = builders.module_of(data.name)
    if hasattr(module, "OPTIONS"):
      from affectjax.data.builders import base
      base.resolve_options(module.OPTIONS, data.get("builder_options", None), module.NAME,
                           data.image_size, data.num_classes)


def num_test_identities(num_identities: int, test_fraction: float) -> int:
  """How many whole identities split_by_identity holds out: round(fraction * n), at least 1."""
  return max(1, int(round(test_fraction * num_identities)))


def _expect_identity_split(n: int, test_fraction: float) -> None:
  """Both splits of the synthetic faces hold an identity (split_by_identity)."""
  n_test = num_test_identities(n, test_fraction)
  if n_test < n:
    return
  least = max(2, int(0.5 / (1.0 - test_fraction)) - 1)  # round(f m) < m needs m > ~0.5 / (1 - f)
  while num_test_identities(least, test_fraction) >= least:
    least += 1
  raise config_lib.ConfigError(
      f"config.data.num_identities={n} leaves no identity for training: the test split holds out "
      f"max(1, round(test_fraction x num_identities)) = {n_test} whole identities at "
      f"test_fraction={test_fraction}; expected num_identities >= {least} (or a smaller "
      "config.data.test_fraction)")


def _expect_digit_split(num_digits: int, probe_fraction: float) -> None:
  """style digits (data/digits.py style_digits): >= 2 training and >= 2 probe digits."""
  if not num_digits or not 0.0 < probe_fraction < 1.0:
    return  # 0: all 1,797 (or MNIST's) digits; a bad fraction is the method's line to say
  n_probe = int(round(probe_fraction * num_digits))
  expect(n_probe >= 2 and num_digits - n_probe >= 2,
         f"config.data.num_digits={num_digits} with probe_fraction={probe_fraction} gives "
         f"{num_digits - n_probe} training and {n_probe} probe digits; expected at least 2 of each")


def load(config) -> Splits:
  """The train/test splits named by config.data (method-specific preparation is the method's),
  with their DatasetInfo."""
  data = config.data
  if data.name == "synthetic_faces":
    splits = synthetic_splits(data, config.seed)
  elif data.name == "style_digits":  # Rb-VAE's App. C.1 digits from scikit-learn's bundled set
    from affectjax.data import digits
    splits = digits.digit_splits(data, config.seed)
  else:
    from affectjax.data import builders
    splits = builders.load_splits(data)
  return dataclasses.replace(splits, info=dataset_info(data))


def dataset_info(data) -> DatasetInfo:
  """What config.data's dataset offers (DatasetInfo), known before anything is generated or read:
  the synthetic sets' from their view, a real dataset's from its builder module's declarations."""
  common = dict(name=data.name, num_classes=int(data.num_classes))
  if data.name == "synthetic_faces":
    from affectjax.data import synthetic
    view = data.view
    return DatasetInfo(**common, factor_names=tuple(synthetic.FACTOR_NAMES),
                       has_labels=view != "afew_like", has_va=view != "imfdb_like",
                       landmarks=view == "full", au_factors=tuple(synthetic.AU_NAMES), rendered=True,
                       va_reference="synthetic_faces")
  if data.name == "style_digits":
    from affectjax.data import digits
    return DatasetInfo(**common, factor_names=tuple(digits.FACTOR_NAMES), factor_targets=True)
  from affectjax.data import builders
  module = builders.module_of(data.name)
  options = dict(getattr(module, "OPTIONS", {}))
  if hasattr(module, "OPTIONS"):
    from affectjax.data.builders import base
    options = base.resolve_options(module.OPTIONS, data.get("builder_options", None), module.NAME,
                                   data.image_size, data.num_classes)
  names = tuple(module.factor_names(options))
  return DatasetInfo(**common, factor_names=names, has_images=bool(getattr(module, "HAS_IMAGES", True)),
                     has_labels=bool(getattr(module, "HAS_LABELS", True)),
                     has_va=bool(getattr(module, "HAS_VA", getattr(module, "HAS_LABELS_AND_VA", False))),
                     landmarks=bool(getattr(module, "HAS_NEUTRAL", False)),
                     au_factors=tuple(n for n in names if n.startswith("AU")),
                     factor_targets=bool(getattr(module, "FACTOR_TARGETS", False)))


def view_seed(seed: int, view: str) -> int:
  return (seed * 1_000_003 + zlib.crc32(view.encode())) % 2**31


def synthetic_options(data, seed: int, view: str) -> dict:
  """generate()'s arguments for one view of config.data (preset resolved; presets.py)."""
  from affectjax.data.synthetic import presets
  return dict(seed=view_seed(seed, view), num_identities=data.num_identities,
              images_per_identity=data.images_per_identity, image_size=data.image_size,
              label_noise=data.label_noise, identity_offset=VIEWS.index(view) * 100_000,
              **presets.options(data))


def synthetic_arrays(data, seed: int, view: str) -> dict:
  """Generates (or reads from cache) the synthetic faces of one view, annotations masked."""
  from affectjax.data import synthetic
  arrays = synthetic.load_or_generate(config_lib.cache_dir_of(data),
                                      **synthetic_options(data, seed, view))
  arrays = dict(arrays)
  if data.num_classes == 7:  # drop contempt (id 7) for 7-class setups
    keep = arrays["label"] != 7
    arrays = {k: v[keep] for k, v in arrays.items()}
  n = len(arrays["image"])
  if view == "imfdb_like":
    arrays["va"] = np.full((n, 2), np.nan, np.float32)
  elif view == "afew_like":
    from affectjax.affect import ellipses as ell
    levels = data.va_levels or 10
    arrays["va"] = np.asarray(ell.undiscretize_va(ell.discretize_va(arrays["va"], levels), levels))
    arrays["label"] = np.full((n,), -1, np.int32)
  elif view not in ("full", "affectnet_like"):
    raise ValueError(f"config.data.view={view!r} is unknown; expected one of {VIEWS}")
  return arrays


def split_by_identity(identity: np.ndarray, test_fraction: float, seed: int):
  """Index arrays (train, test) with whole identities held out, chosen by `seed`."""
  ids = np.unique(identity)
  rng = np.random.default_rng(seed)
  n_test = num_test_identities(len(ids), test_fraction)
  test_ids = rng.permutation(ids)[:n_test]
  is_test = np.isin(identity, test_ids)
  return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def synthetic_splits(data, seed: int) -> Splits:
  from affectjax.data import synthetic
  view = data.view
  arrays = synthetic_arrays(data, seed, view)
  train_idx, test_idx = split_by_identity(arrays["identity"], data.test_fraction, seed)
  if not len(train_idx) or not len(test_idx):  # validate rules this out unless a filter emptied one
    from affectjax.errors import DataError
    raise DataError(f"synthetic faces (view {view}): {len(train_idx)} training and {len(test_idx)} "
                    f"test images from {len(np.unique(arrays['identity']))} identities; expected "
                    "both splits non-empty (raise config.data.num_identities or images_per_identity)")
  source = ArraySource(arrays)
  metadata = {
      "name": "synthetic_faces", "view": view, "num_classes": data.num_classes,
      "image_size": data.image_size, "factor_names": tuple(synthetic.FACTOR_NAMES),
      "va_levels": (data.va_levels or 10) if view == "afew_like" else 0,
  }
  return Splits(source.subset(train_idx), source.subset(test_idx), metadata)
