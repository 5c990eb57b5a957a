"""Dual-domain fusion's data preparation (dual_domain_fusion.md Sec. 3.1-3.3, 4.1, 5.1), on the
host from the training split: label noise, class statistics (Eq. 1), VA labels (Eqs. 2-3), class
weights (Eq. 5), and the labels of a VA-only dataset (Aff-Wild) from AffectNet's GMM."""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import jax
import numpy as np

from affectjax import losses
from affectjax.affect import mixed_labels as ml
from affectjax.data import source as source_lib
from affectjax.data.source import ArraySource, WithFields
from affectjax.data.sources import Splits


def read(split, key):
  """One field of every example of a split, without decoding images where the split holds it."""
  if isinstance(split, ArraySource):
    return np.asarray(split.arrays[key])
  if isinstance(split, WithFields) and key in split.fields:  # without reading the images
    return np.asarray(split.fields[key])
  return source_lib.read_field(split, key)


def read_fields(split, keys, batch_size: int = 1024) -> dict:
  """Several fields of every example in one pass (a TFDS split decodes each image once)."""
  out = {k: read(split, k) for k in keys
         if isinstance(split, ArraySource) or (isinstance(split, WithFields) and k in split.fields)}
  rest, n = [k for k in keys if k not in out], len(split)
  if rest:
    parts = [split.gather(np.arange(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    out.update({k: np.concatenate([p[k] for p in parts]) if parts else np.zeros((0,)) for k in rest})
  return out


def affectnet_gmm(config):
  """(priors, means, covs, source): AffectNet's training-set pi_k, mu_k, Sigma_k (Eq. 1), which
  Sec. 4.1 borrows for Aff-Wild. From the user's AffectNet when config.labels.affectnet_stats
  names it (its manual_dir: the builder's statistics; or a .npz), else the published ones
  (affect/affectnet_stats.py: REFERENCE.md's means and stds, diagonal covariances, priors from
  the training-set class counts)."""
  from affectjax.affect import affectnet_stats as an
  c, path = config.data.num_classes, config.labels.affectnet_stats
  if path:
    return (*an.load_gmm(path, c, config.data), path)
  return (*an.published_gmm(c), "published")


def clean_label_index(metadata) -> Optional[int]:
  """Where the labels before the dataset's own label noise sit in `factors` (synthetic data)."""
  names = tuple(metadata.get("factor_names", ()))
  return names.index("clean_label") if "clean_label" in names else None


def prepare(config, data: Splits) -> tuple[Splits, dict]:
  """The training split with noisy labels and VA labels, and the statistics of Eqs. 1 and 5.

  Returns (splits, info): train gets fields label (noisy), label_given (before the injected
  noise) and p_va [N, C] (NaN rows where VA is unknown); info holds priors, means, covs,
  class_weights, steps_per_epoch and the number of flipped labels.
  A training split without class labels (Aff-Wild, VA only; Sec. 4.1, 5.1) borrows AffectNet's
  pi_k, mu_k, Sigma_k (affectnet_gmm): every VA annotation gets p(y | x)_GMM (Eq. 2) and the label
  its argmax, in the training split and, where it has no labels, the test split; the borrowed
  parameters also give p_va (config.labels.va_only_stats='refit': refit on the derived labels).
  """
  c, l = config.data.num_classes, config.labels
  fields = read_fields(data.train, ("label", "va"))
  labels, va = fields["label"].astype(np.int32), fields["va"].astype(np.float32)
  labels = np.where(labels < c, labels, -1)  # e.g. AffectNet's 'none' etc. never reach here
  info = {"va_only": False, "statistics": "training split"}
  test, borrowed = data.test, None
  if not np.any(labels >= 0):  # a VA-only dataset (Aff-Wild, Sec. 4.1): labels from AffectNet's GMM
    if not np.any(np.all(np.isfinite(va), -1)):
      raise ValueError(f"the training split of {config.data.name!r} has neither labels nor VA")
    *borrowed, source = affectnet_gmm(config)
    labels = np.asarray(ml.va_only_labels(va, *borrowed)[0])  # Sec. 5.1: argmax p(y | x)_GMM
    # The test split's labels the same way (its own where it has them), so F1, accuracy and ECE
    # are defined; noise is injected into the training labels only.
    t = read_fields(data.test, ("label", "va"))
    test_given = t["label"].astype(np.int32)
    test_derived = np.asarray(ml.va_only_labels(t["va"].astype(np.float32), *borrowed)[0])
    test = WithFields(data.test, {"label": np.where((test_given >= 0) & (test_given < c), test_given,
                                                   test_derived).astype(np.int32)})
    info.update(va_only=True, statistics=f"AffectNet ({source})")
  given = labels.copy()
  key = jax.random.fold_in(jax.random.key(config.seed), 0x401)  # the label-noise key
  noisy, picked = ml.flip_labels(key, labels, float(config.train.label_noise), c,
                                 original=config.train.noise_mode == "original", return_mask=True)
  noisy = np.asarray(noisy)
  stats_labels = noisy if l.stats_from == "noisy" else given
  if borrowed is not None and l.va_only_stats == "affectnet":
    priors, means, covs = borrowed  # Sec. 4.1: AffectNet's parameters, not refit on this dataset
  else:  # Eq. 1 on this training split (a VA-only one under va_only_stats='refit')
    priors, means, covs = ml.class_statistics(stats_labels, va, c, within_std=l.within_std)
    if borrowed is not None:
      info["statistics"] = "refit on the AffectNet-derived labels"
  if l.kind == "gmm":
    p_va = np.asarray(ml.gmm_labels(va, priors, means, covs))  # Eq. 2
  elif l.kind == "euclid":
    p_va = np.asarray(ml.euclid_labels(va, means, squared=l.euclid_distance == "squared"))  # Eq. 3
  else:
    p_va = np.full((len(va), c), np.nan, np.float32)  # one-hot: no VA side
  weights = (np.asarray(losses.class_weights(noisy, c)) if config.loss.class_weighting
             else np.ones(c, np.float32))  # Eq. 5
  info.update(priors=priors, means=means, covs=covs, class_weights=weights,
              num_flipped=int(np.sum(np.asarray(picked) & (noisy != given))),
              steps_per_epoch=max(1, math.ceil(len(labels) / config.train.batch_size)))
  train = WithFields(data.train, {"label": noisy, "label_given": given,
                                  "p_va": p_va.astype(np.float32)})
  return dataclasses.replace(data, train=train, test=test, metadata=dict(data.metadata)), info

