"""The one batched-inference helper: apply a (jitted) function to a whole split in fixed-size
batches, so it compiles once, and concatenate the outputs on the host."""
from __future__ import annotations

from typing import Callable

import numpy as np


def _gather(inputs, idx):
  if hasattr(inputs, "gather"):  # a Source (affectjax.data.source)
    return inputs.gather(idx)
  if isinstance(inputs, dict):
    return {k: np.asarray(v)[idx] for k, v in inputs.items()}
  return np.asarray(inputs)[idx]


def _length(inputs) -> int:
  if hasattr(inputs, "gather") or not isinstance(inputs, dict):
    return len(inputs)
  return len(next(iter(inputs.values())))


def batched(fn: Callable, inputs, batch_size: int, limit: int | None = None):
  """fn over `inputs` (a Source, a dict of equal-length arrays, or an array) in order.

  The last batch is padded by repeating its final row (one compile); padded rows are dropped.
  fn returns an array, a tuple of arrays or a dict of arrays; the result has the same structure,
  each leaf concatenated along axis 0 as numpy.
  """
  n = _length(inputs) if limit is None else min(limit, _length(inputs))
  outs = []
  for start in range(0, n, batch_size):
    idx = np.arange(start, min(start + batch_size, n))
    valid = len(idx)
    idx = np.concatenate([idx, np.full(batch_size - valid, idx[-1])])
    out = fn(_gather(inputs, idx))
    if isinstance(out, dict):
      outs.append({k: np.asarray(v)[:valid] for k, v in out.items()})
    elif isinstance(out, tuple):
      outs.append(tuple(np.asarray(v)[:valid] for v in out))
    else:
      outs.append(np.asarray(out)[:valid])
  if not outs:
    return {}
  if isinstance(outs[0], dict):
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
  if isinstance(outs[0], tuple):
    return tuple(np.concatenate(parts) for parts in zip(*outs))
  return np.concatenate(outs)
