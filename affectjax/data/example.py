"""The canonical example: the one dict structure every data source yields (DESIGN.md).

Absent fields are filled with their "unknown" value so that a batch always has a fixed structure:
-1 for integer labels, NaN for float annotations, False for flags.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

# Categorical emotion order used everywhere in affectjax (AffectNet's ids 0-7): defined with the
# label-space math in affectjax.affect.emotions, re-exported here.
from affectjax.affect.emotions import EMOTIONS, NUM_EMOTIONS  # noqa: F401

UNKNOWN_LABEL = -1


def example_spec(image_shape, num_landmarks: int, num_factors: int) -> dict:
  """Returns {key: (per-example shape, dtype, unknown value)} of the canonical example."""
  lm = (num_landmarks, 3)
  return {
      "image": (tuple(image_shape), np.float32, None),
      "label": ((), np.int32, UNKNOWN_LABEL),
      "va": ((2,), np.float32, np.nan),
      "landmarks": (lm, np.float32, np.nan),
      "neutral_landmarks": (lm, np.float32, np.nan),
      "neutral_image": (tuple(image_shape), np.float32, np.nan),
      "identity": ((), np.int32, -1),
      "is_reference": ((), np.bool_, False),
      "factors": ((num_factors,), np.float32, np.nan),
  }


def complete_batch(batch: Mapping[str, np.ndarray], spec: dict) -> dict:
  """Adds every field of `spec` that `batch` lacks, filled with its unknown value.

  Raises ValueError naming the field when a present field has the wrong per-example shape.
  """
  if "image" not in batch:
    raise ValueError("a canonical batch needs an 'image' field")
  n = len(batch["image"])
  out = {}
  for key, (shape, dtype, unknown) in spec.items():
    if key in batch:
      arr = np.asarray(batch[key])
      if arr.shape[1:] != tuple(shape):
        raise ValueError(f"field {key!r}: expected per-example shape {tuple(shape)}, got {arr.shape[1:]}")
      out[key] = arr.astype(dtype, copy=False)
    else:
      if unknown is None:
        raise ValueError(f"field {key!r} is required")
      out[key] = np.full((n,) + tuple(shape), unknown, dtype=dtype)
  return out
