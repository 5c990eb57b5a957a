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

import zlib

import numpy as np

from affectjax import config as config_lib
from affectjax.data.builders.splits import Splits  # noqa: F401  (one Splits for every source)
from affectjax.data import source as source_lib
from affectjax.data.source import ArraySource

VIEWS = ("full", "affectnet_like", "imfdb_like", "afew_like")


def known_datasets() -> tuple[str, ...]:
  from affectjax.data import builders
  return config_lib.SYNTHETIC_DATASETS + tuple(getattr(builders, "NAMES", ()))


def load(config) -> Splits:
  """The train/test splits named by config.data, with VA from annotation transfer if asked."""
  data = config.data
  if data.name == "synthetic_faces":
    splits = synthetic_splits(data, config.seed)
  else:
    from affectjax.data import builders
    splits = builders.load_splits(data)
  transfer = data.get("annotation_transfer", None)
  if transfer is not None and transfer.enabled:
    splits = _transfer_va(splits, data, config.seed)
  return splits


def _view_seed(seed: int, view: str) -> int:
  return (seed * 1_000_003 + zlib.crc32(view.encode())) % 2**31


def synthetic_arrays(data, seed: int, view: str) -> dict:
  """Generates (or reads from cache) the synthetic faces of one view, annotations masked."""
  from affectjax.data import synthetic
  arrays = synthetic.load_or_generate(
      config_lib.cache_dir_of(data), seed=_view_seed(seed, view),
      num_identities=data.num_identities, images_per_identity=data.images_per_identity,
      image_size=data.image_size, label_noise=data.label_noise,
      identity_offset=VIEWS.index(view) * 100_000)
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
  n_test = max(1, int(round(test_fraction * len(ids))))
  test_ids = rng.permutation(ids)[:n_test]
  is_test = np.isin(identity, test_ids)
  return np.flatnonzero(~is_test), np.flatnonzero(is_test)


def synthetic_splits(data, seed: int) -> Splits:
  from affectjax.data import synthetic
  view = data.view
  arrays = synthetic_arrays(data, seed, view)
  train_idx, test_idx = split_by_identity(arrays["identity"], data.test_fraction, seed)
  source = ArraySource(arrays)
  metadata = {
      "name": "synthetic_faces", "view": view, "num_classes": data.num_classes,
      "image_size": data.image_size, "factor_names": tuple(synthetic.FACTOR_NAMES),
      "va_levels": (data.va_levels or 10) if view == "afew_like" else 0,
  }
  return Splits(source.subset(train_idx), source.subset(test_idx), metadata)


def _transfer_va(splits: Splits, data, seed: int) -> Splits:
  """LeVAsa Algorithm 1, lines 1-5: VA for the examples that have a label but no VA.

  Reference ellipses: the AffectNet-like synthetic set (synthetic data), AffectNet's published
  statistics (REFERENCE.md), or reference='auto' for the first on synthetic data and the second
  on real data. Examples that already carry VA keep it (then the transfer is a no-op).
  """
  import jax
  from affectjax.affect import ellipses as ell

  transfer = data.annotation_transfer
  reference = transfer.reference
  if reference == "auto":
    reference = "synthetic_faces" if data.name == "synthetic_faces" else "affectnet_published"
  if reference == "synthetic_faces":
    ref = synthetic_arrays(data, seed, "affectnet_like")
    fitted = ell.fit_ellipses(ref["label"], ref["va"], data.num_classes)
  elif reference == "affectnet_published":
    from affectjax.affect import affectnet_stats
    c = data.num_classes
    fitted = ell.from_stats(affectnet_stats.VA_MEANS[:c], affectnet_stats.VA_STDS[:c])
  else:
    raise ValueError(f"config.data.annotation_transfer.reference={reference!r} is unknown; "
                     "expected auto, synthetic_faces or affectnet_published")
  key = jax.random.key(_view_seed(seed, "annotation_transfer"))
  out, filled = {}, 0
  for i, (name, split) in enumerate((("train", splits.train), ("test", splits.test))):
    read = (lambda k: split.arrays[k]) if isinstance(split, ArraySource) else (
        lambda k: source_lib.read_field(split, k))
    labels, va = read("label"), read("va").astype(np.float32)
    missing = ~np.all(np.isfinite(va), axis=-1)
    if np.any(labels[missing] < 0):
      raise ValueError(f"annotation transfer needs a label where VA is unknown; "
                       f"{int(np.sum(labels[missing] < 0))} {name} examples have neither")
    if not missing.any():
      out[name] = split
      continue
    sampled = np.asarray(ell.sample_va(jax.random.fold_in(key, i), fitted, np.maximum(labels, 0)))
    if transfer.levels:  # Alg. 1 line 5: discretise by scaling and rounding
      sampled = np.asarray(ell.undiscretize_va(ell.discretize_va(sampled, transfer.levels), transfer.levels))
    va[missing] = sampled[missing]
    filled += int(missing.sum())
    out[name] = source_lib.WithFields(split, {"va": va})
  if not filled:
    return splits
  metadata = dict(splits.metadata, ellipses=fitted, va_levels=transfer.levels,
                  va_source=f"annotation transfer from {reference} ({filled} examples)")
  return Splits(out["train"], out["test"], metadata)
