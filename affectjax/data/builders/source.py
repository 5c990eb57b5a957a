"""Random access to a prepared builder split: the `Source` contract over array_record files."""
from __future__ import annotations

import numpy as np

from affectjax.data.example import complete_batch, example_spec

_NUMERIC = ("image", "label", "va", "landmarks", "neutral_landmarks", "identity", "is_reference",
            "factors")


class TfdsSource:
  """A split of a prepared builder, read by index (tfds data_source over array_record).

  Images are decoded per gather (uint8 -> float32 in [-1, 1]); nothing is held in memory, so a
  full AffectNet works. Landmark-only datasets return a [1, 1, 3] zero image.
  """

  def __init__(self, builder, split: str):
    self._data = builder.as_data_source(split=split)
    feats = builder.info.features
    self._has_image = "image" in feats
    image_shape = feats["image"].shape if self._has_image else (1, 1, 3)
    k = feats["landmarks"].shape[0] if "landmarks" in feats else 0
    f = feats["factors"].shape[0] if "factors" in feats else 0
    self.spec = example_spec(image_shape, k, f)
    self.split = split

  def __len__(self) -> int:
    return len(self._data)

  def records(self, indices) -> list[dict]:
    """The stored records (including the 'source' file name) at `indices`."""
    return list(self._data.__getitems__([int(i) for i in np.asarray(indices).reshape(-1)]))

  def gather(self, indices) -> dict:
    recs = self.records(indices)
    batch = {k: np.stack([r[k] for r in recs]) for k in _NUMERIC if recs and k in recs[0]}
    if not recs:
      return {k: np.zeros((0,) + tuple(s), d) for k, (s, d, _) in self.spec.items()}
    if self._has_image:
      batch["image"] = batch["image"].astype(np.float32) * (2.0 / 255.0) - 1.0
    else:
      batch["image"] = np.zeros((len(recs),) + self.spec["image"][0], np.float32)
    return complete_batch(batch, self.spec)

  def sources(self) -> list[str]:
    """Every example's source file name, in index order (for checks and reports)."""
    return [r["source"].decode() if isinstance(r["source"], bytes) else r["source"]
            for r in self.records(np.arange(len(self)))]
