"""The evaluator emotion classifier (the VGGNet role of ganmut.md Sec. 5): VGG-style blocks of two
3x3 convs + ReLU + 2x2 max-pool, a penultimate dense layer whose activations are the FED features,
and a linear classifier."""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from affectjax.nn import cpu  # nn.Conv with XLA:CPU's fast formulations (issue 27)


class VGGClassifier(nn.Module):
  num_classes: int = 7
  widths: Sequence[int] = (32, 64, 128)
  feature_dim: int = 256

  @nn.compact
  def __call__(self, x):
    """x [N, H, W, 3] in [-1, 1] -> (logits [N, C], penultimate features [N, feature_dim])."""
    h = x
    for w in self.widths:
      h = nn.relu(cpu.Conv(w, (3, 3), padding=1)(h))
      h = nn.relu(cpu.Conv(w, (3, 3), padding=1)(h))
      h = nn.max_pool(h, (2, 2), strides=(2, 2))
    h = h.reshape(h.shape[0], -1)
    feats = nn.relu(nn.Dense(self.feature_dim)(h))
    return nn.Dense(self.num_classes)(feats), feats
