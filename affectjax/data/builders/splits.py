"""The train/test pair every dataset loader returns (re-exported by affectjax.data.sources), and
the typed description of the dataset that methods ask instead of checking its name."""
from __future__ import annotations

import dataclasses
from typing import Optional

from affectjax.data.source import Source


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a method may ask of a dataset, declared per dataset by sources.dataset_info (known
  from config.data before anything is read, so `validate` can check capabilities)."""
  name: str
  num_classes: int
  factor_names: tuple = ()       # the columns of the 'factors' field
  has_images: bool = True
  has_labels: bool = True        # categorical expression labels in 'label'
  has_va: bool = False           # valence-arousal in 'va'
  landmarks: bool = False        # 3D 'landmarks' and the person's 'neutral_landmarks' per example
  au_factors: tuple = ()         # factor columns that are action units (intensities or occurrences)
  rendered: bool = False         # drawn by affectjax's renderer: pose, true valence and the clean
                                 # label are ground truth, faces can be re-rendered, image y points down
  factor_targets: bool = False   # Rb-VAE's targets are continuous factors (style digits: MAE)
  va_reference: str = "affectnet_published"  # the VA ellipses that describe this data (LeVAsa's 'auto')


@dataclasses.dataclass
class Splits:
  train: Source
  test: Source
  metadata: dict                      # the loader's report (options, skipped rows, sizes)
  info: Optional[DatasetInfo] = None  # sources.load fills it
  probe_fit: Optional[Source] = None  # a second held-out split (Rb-VAE's probes fit here, score on test)
