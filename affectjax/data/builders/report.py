"""Bookkeeping of what a builder kept, skipped and adjusted, per split and reason.

Real copies are messy: every dropped row is counted under a named reason and reported at the end,
never silently lost; rows kept after a repair (e.g. a face box padded past the image) are counted
as `adjusted`.
"""
from __future__ import annotations

import collections
import logging

import numpy as np

from affectjax.errors import DataError

log = logging.getLogger("affectjax.data.builders")


class Skip(Exception):
  """Raised while reading one row: the row is dropped and counted under `reason`."""

  def __init__(self, reason: str, detail: str = ""):
    super().__init__(f"{reason}: {detail}" if detail else reason)
    self.reason = reason
    self.detail = detail


class MissingDataError(DataError, FileNotFoundError):
  """A manual_dir or required file is absent: one message naming the path and what belongs there."""


def require(path, what: str, dataset: str):
  """Returns `path` if it exists, else raises MissingDataError naming it and what was expected."""
  import os
  if not os.path.exists(path):
    raise MissingDataError(f"{dataset}: {path} does not exist; expected {what} there "
                           f"(see docs/datasets.md, section {dataset})")
  return path


class Report:
  """Counts per split: kept, skipped[reason], adjusted[reason], labels, VA range."""

  def __init__(self, num_classes: int = 8):
    self.num_classes = num_classes
    self.skipped = collections.defaultdict(collections.Counter)
    self.adjusted = collections.defaultdict(collections.Counter)
    self.kept = collections.Counter()
    self.labels = collections.defaultdict(collections.Counter)
    self.va = collections.defaultdict(list)
    self.first_detail = {}  # (split, reason) -> the first skipped row's detail, for error lines
    self.read_from = collections.defaultdict(list)  # split -> the index files its rows came from
    self.notes = collections.defaultdict(list)  # split -> why it may be short (e.g. one identity)

  def skip(self, split: str, reason: str, detail: str = ""):
    self.skipped[split][reason] += 1
    if self.skipped[split][reason] == 1:
      self.first_detail[(split, reason)] = detail
      log.warning("skipping %s row (%s)%s", split, reason, f": {detail}" if detail else "")

  def describe_skips(self, split: str, limit: int = 160) -> str:
    """'unreadable_image: 12 (first: a.jpg: ...), ...' for `split` and the split-less 'all' rows."""
    parts = []
    for s in dict.fromkeys((split, "all")):
      for reason, n in sorted(self.skipped[s].items(), key=lambda kv: -kv[1]):
        detail = self.first_detail.get((s, reason), "")
        detail = detail if len(detail) <= limit else detail[:limit - 3] + "..."
        parts.append(f"{reason}: {n}" + (f" (first: {detail})" if detail else ""))
    return "; ".join(parts) if parts else "no rows at all"

  def adjust(self, split: str, reason: str):
    self.adjusted[split][reason] += 1

  def keep(self, split: str, label: int, va):
    self.kept[split] += 1
    self.labels[split][int(label)] += 1
    va = np.asarray(va, np.float32)
    if np.all(np.isfinite(va)):
      self.va[split].append(va)

  def va_range(self, split: str):
    if not self.va[split]:
      return None
    v = np.stack(self.va[split])
    return [[float(v[:, 0].min()), float(v[:, 0].max())], [float(v[:, 1].min()), float(v[:, 1].max())]]

  def summary(self, split: str) -> dict:
    return {
        "kept": int(self.kept[split]),
        "skipped": dict(sorted(self.skipped[split].items())),
        "adjusted": dict(sorted(self.adjusted[split].items())),
        "label_histogram": {str(k): v for k, v in sorted(self.labels[split].items())},
        "va_range": self.va_range(split),
    }

  def log_summary(self, name: str, split: str):
    s = self.summary(split)
    log.info("%s/%s: kept %d, skipped %s, adjusted %s", name, split, s["kept"], s["skipped"], s["adjusted"])


def va_stats(labels, va, num_classes: int) -> dict:
  """Per-class priors [C], VA means [C, 2] and covariances [C, 2, 2] over labelled rows with VA.

  Classes without rows get prior 0 and NaN moments; a class with one row gets a zero covariance.
  """
  labels = np.asarray(labels, np.int64)
  va = np.asarray(va, np.float64).reshape(-1, 2)
  ok = (labels >= 0) & (labels < num_classes) & np.all(np.isfinite(va), axis=1)
  labels, va = labels[ok], va[ok]
  priors = np.zeros(num_classes)
  means = np.full((num_classes, 2), np.nan)
  covs = np.full((num_classes, 2, 2), np.nan)
  for c in range(num_classes):
    x = va[labels == c]
    priors[c] = len(x)
    if len(x):
      means[c] = x.mean(0)
      covs[c] = np.cov(x.T, ddof=1) if len(x) > 1 else np.zeros((2, 2))
  if priors.sum():
    priors /= priors.sum()
  return {"priors": priors, "means": means, "covs": covs, "count": int(ok.sum())}
