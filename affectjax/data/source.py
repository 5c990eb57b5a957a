"""Random-access data sources: the contract between datasets and the input pipeline.

A source is a finite, indexable collection of canonical examples. The pipeline asks it for the
examples at given indices; which indices is a pure function of (seed, step), so a resumed run reads
exactly the batches an uninterrupted run would have read.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping, Protocol

import numpy as np


class Source(Protocol):
  """What the pipeline needs of a dataset split."""

  def __len__(self) -> int: ...

  def gather(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    """Canonical example fields for `indices` (int array), stacked along axis 0.

    `image` (and `neutral_image`) come back float32 in [-1, 1]; every canonical key is present.
    """
    ...


@dataclasses.dataclass
class ArraySource:
  """An in-memory source: a dict of equal-length arrays holding canonical fields.

  Images may be stored as uint8 in [0, 255] (four times smaller than float32); `gather`
  converts them to float32 in [-1, 1].
  """

  arrays: Mapping[str, np.ndarray]
  metadata: Mapping[str, object] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    lengths = {k: len(v) for k, v in self.arrays.items()}
    if len(set(lengths.values())) != 1:
      raise ValueError(f"ArraySource fields have different lengths: {lengths}")

  def __len__(self) -> int:
    return len(next(iter(self.arrays.values())))

  def gather(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    out = {}
    for key, arr in self.arrays.items():
      taken = arr[indices]
      if arr.dtype == np.uint8 and key.endswith("image"):
        taken = taken.astype(np.float32) * (2.0 / 255.0) - 1.0
      out[key] = taken
    return out

  def subset(self, indices: np.ndarray) -> "ArraySource":
    """A new source holding only `indices` (e.g. a split by identity)."""
    return ArraySource({k: v[indices] for k, v in self.arrays.items()}, dict(self.metadata))


@dataclasses.dataclass
class WithFields:
  """A source with some per-example fields replaced or added (e.g. VA from annotation transfer)."""

  base: Source
  fields: Mapping[str, np.ndarray]

  def __len__(self) -> int:
    return len(self.base)

  def gather(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    out = self.base.gather(indices)
    out.update({k: v[indices] for k, v in self.fields.items()})
    return out


def read_field(source: Source, key: str, batch_size: int = 1024) -> np.ndarray:
  """One field of every example of a source, in order (reads in batches)."""
  n = len(source)
  return np.concatenate([source.gather(np.arange(i, min(i + batch_size, n)))[key]
                         for i in range(0, n, batch_size)]) if n else np.zeros((0,))


class IndexedSource:
  """The examples `indices` of any source (in memory or not), in that order."""

  def __init__(self, base: Source, indices):
    self.base, self.indices = base, np.asarray(indices)

  def __len__(self) -> int:
    return len(self.indices)

  def gather(self, indices: np.ndarray) -> dict[str, np.ndarray]:
    return self.base.gather(self.indices[np.asarray(indices)])


def subset(source: Source, indices) -> Source:
  """The examples `indices` of `source`: a copy for an ArraySource, an IndexedSource otherwise."""
  return source.subset(indices) if isinstance(source, ArraySource) else IndexedSource(source, indices)
