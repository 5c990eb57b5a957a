"""The VGG-style classifier family (nn/classifier.py) behind ResNet18's interface: x -> (logits,
VA or None, penultimate features), so dual-domain fusion (dual_domain_fusion.md) and the GANmut
evaluator it trains (methods/ganmut/classifier.py) use either backbone through one code path."""
from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from affectjax.nn.classifier import VGGClassifier


class VGGNet(nn.Module):
  """VGGClassifier with an optional tanh VA head on the penultimate features."""
  num_classes: int
  widths: tuple
  va_head: bool = True
  feature_dim: int = 256

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no BatchNorm or dropout
    logits, feats = VGGClassifier(self.num_classes, self.widths, self.feature_dim, name="vgg")(x)
    va = jnp.tanh(nn.Dense(2, name="va_head")(feats)) if self.va_head else None
    return logits, va, feats
