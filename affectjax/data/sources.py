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
from affectjax.data.source import ArraySource, Source

VIEWS = ("full", "affectnet_like", "imfdb_like", "afew_like")


@dataclasses.dataclass
class Splits:
  train: Source
  test: Source
  metadata: dict


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
  """LeVAsa Algorithm 1, lines 1-5: VA for a labels-only dataset from a reference set's ellipses."""
  import jax
  from affectjax.affect import ellipses as ell

  transfer = data.annotation_transfer
  if transfer.reference == "synthetic_faces":
    ref = synthetic_arrays(data, seed, "affectnet_like")
    fitted = ell.fit_ellipses(ref["label"], ref["va"], data.num_classes)
  elif transfer.reference == "affectnet_published":
    from affectjax.affect import affectnet_stats
    c = data.num_classes
    fitted = ell.from_stats(affectnet_stats.VA_MEANS[:c], affectnet_stats.VA_STDS[:c])
  else:
    raise ValueError(f"config.data.annotation_transfer.reference={transfer.reference!r} is unknown; "
                     "expected synthetic_faces or affectnet_published")
  key = jax.random.key(_view_seed(seed, "annotation_transfer"))
  out = {}
  for i, (name, split) in enumerate((("train", splits.train), ("test", splits.test))):
    labels = split.arrays["label"]
    if np.any(labels < 0):
      raise ValueError(f"annotation transfer needs a label on every {name} example; "
                       f"{int(np.sum(labels < 0))} have none")
    va = np.asarray(ell.sample_va(jax.random.fold_in(key, i), fitted, labels), np.float32)
    if transfer.levels:  # Alg. 1 line 5: discretise by scaling and rounding
      va = np.asarray(ell.undiscretize_va(ell.discretize_va(va, transfer.levels), transfer.levels))
    out[name] = split.replace(va=va)
  metadata = dict(splits.metadata, ellipses=fitted, va_levels=transfer.levels,
                  va_source=f"annotation transfer from {transfer.reference}")
  return Splits(out["train"], out["test"], metadata)
