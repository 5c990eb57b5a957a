"""The train/test pair every dataset loader returns (re-exported by affectjax.data.sources)."""
from __future__ import annotations

import dataclasses

from affectjax.data.source import Source


@dataclasses.dataclass
class Splits:
  train: Source
  test: Source
  metadata: dict
