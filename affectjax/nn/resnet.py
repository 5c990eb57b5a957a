"""ResNet-18 (He et al. 2016; dual_domain_fusion.md Sec. 4.2) with an emotion classifier and a tanh
valence/arousal head, and a loader for torchvision-style ResNet-18 weights saved as .npz.

Layout and names follow torchvision's resnet18 (BasicBlock, [2, 2, 2, 2], widths 64-512, 7x7/2
stem + 3x3/2 max-pool, 1x1 projection shortcuts, BatchNorm momentum 0.1 / eps 1e-5), so its
state dict maps one to one onto the Flax tree (load_torchvision_npz). Convolutions compute in
`dtype` (bfloat16 on accelerators) with float32 parameters; heads return float32.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Sequence

import flax.linen as nn
from flax import traverse_util
import jax.numpy as jnp
import numpy as np

__all__ = ["BasicBlock", "ResNet18", "torchvision_to_flax", "load_torchvision_npz"]

# torchvision's init: Kaiming normal, fan_out, ReLU gain.
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


class BasicBlock(nn.Module):
  """Two 3x3 conv-BN layers with an identity (or 1x1 conv-BN projection) shortcut, then ReLU."""
  features: int
  strides: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool):
    conv = functools.partial(nn.Conv, use_bias=False, dtype=self.dtype, param_dtype=jnp.float32,
                             kernel_init=_conv_init)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=1e-5, dtype=self.dtype, param_dtype=jnp.float32)
    h = conv(self.features, (3, 3), self.strides, padding=1, name="conv1")(x)
    h = nn.relu(norm(name="bn1")(h))
    h = conv(self.features, (3, 3), 1, padding=1, name="conv2")(h)
    h = norm(name="bn2")(h)
    if self.strides != 1 or x.shape[-1] != self.features:
      x = conv(self.features, (1, 1), self.strides, padding=0, name="downsample_conv")(x)
      x = norm(name="downsample_bn")(x)
    return nn.relu(h + x)


class ResNet18(nn.Module):
  """ResNet-18 trunk, global average pool, then fc -> logits [N, C] and va_head -> tanh VA [N, 2].

  small_input=True replaces the 7x7/2 stem and max-pool by one 3x3/1 conv (CIFAR-style), for
  32-64 px images whose 7x7/2 + pool stem would leave a 1x1 map after layer4.
  va_head=False drops the VA head (va is then None), e.g. to compare with torchvision's count.
  __call__(x [N, H, W, 3], train) -> (logits [N, C], va [N, 2] in (-1, 1), features [N, 512]).
  """
  num_classes: int = 8
  stage_sizes: Sequence[int] = (2, 2, 2, 2)
  widths: Sequence[int] = (64, 128, 256, 512)
  small_input: bool = False
  va_head: bool = True
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = jnp.asarray(x, self.dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=0.9,
                             epsilon=1e-5, dtype=self.dtype, param_dtype=jnp.float32)
    if self.small_input:
      x = nn.Conv(self.widths[0], (3, 3), 1, padding=1, use_bias=False, dtype=self.dtype,
                  kernel_init=_conv_init, name="conv1")(x)
      x = nn.relu(norm(name="bn1")(x))
    else:
      x = nn.Conv(self.widths[0], (7, 7), 2, padding=3, use_bias=False, dtype=self.dtype,
                  kernel_init=_conv_init, name="conv1")(x)
      x = nn.relu(norm(name="bn1")(x))
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for i, (blocks, width) in enumerate(zip(self.stage_sizes, self.widths)):
      for j in range(blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = BasicBlock(width, strides, self.dtype, name=f"layer{i + 1}_{j}")(x, train)
    features = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    logits = nn.Dense(self.num_classes, name="fc")(features)
    va = jnp.tanh(nn.Dense(2, name="va_head")(features)) if self.va_head else None
    return logits, va, features


# torchvision key -> (collection, path in the Flax tree, leaf name); None: not a tensor to load.
_BN_LEAF = {"weight": ("params", "scale"), "bias": ("params", "bias"),
            "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def _flax_location(key: str):
  """('params' | 'batch_stats', tuple path) of a torchvision ResNet-18 state-dict key, or None."""
  parts = key.split(".")
  leaf = parts[-1]
  if leaf == "num_batches_tracked":
    return None
  m = re.fullmatch(r"layer(\d)\.(\d+)\.(.+)", ".".join(parts[:-1]))
  if m:
    block, sub = f"layer{m.group(1)}_{m.group(2)}", m.group(3)
    sub = {"downsample.0": "downsample_conv", "downsample.1": "downsample_bn"}.get(sub, sub)
    module = (block, sub)
  else:
    module = tuple(parts[:-1])
  name = module[-1]
  if name.startswith("conv") or name == "downsample_conv":
    if leaf != "weight":
      raise KeyError(key)
    return "params", module + ("kernel",)
  if name.startswith("bn") or name == "downsample_bn":
    collection, flax_leaf = _BN_LEAF[leaf]
    return collection, module + (flax_leaf,)
  if name == "fc":
    return "params", module + ({"weight": "kernel", "bias": "bias"}[leaf],)
  raise KeyError(key)


def _to_flax_layout(key: str, value: np.ndarray) -> np.ndarray:
  if value.ndim == 4:  # conv OIHW -> HWIO
    return np.transpose(value, (2, 3, 1, 0))
  if value.ndim == 2:  # linear [out, in] -> [in, out]
    return value.T
  return value


def torchvision_to_flax(state_dict, variables, skip_mismatched=("conv1.weight", "fc.weight",
                                                                 "fc.bias")):
  """Copies a torchvision ResNet-18 state dict (name -> numpy array, OIHW convs) into `variables`.

  variables: {"params", "batch_stats"} of ResNet18 (e.g. from model.init); it is not modified.
  Every backbone tensor must be present with the right shape (else ValueError naming the key);
  fc may be absent.
  Keys in skip_mismatched whose shape differs (the stem of a small_input model, an fc head with
  another number of classes, e.g. ImageNet's 1000) keep their initial values. The VA head is never
  in a torchvision checkpoint. Returns (new variables, list of skipped keys).
  """
  flat = {k: np.asarray(v) for k, v in traverse_util.flatten_dict(
      {"params": variables["params"], "batch_stats": variables.get("batch_stats", {})}).items()}
  loaded, skipped = set(), []
  for key, value in state_dict.items():
    try:
      loc = _flax_location(key)
    except KeyError:
      raise ValueError(f"{key!r} is not a torchvision ResNet-18 state-dict name") from None
    if loc is None:
      continue
    path = (loc[0],) + loc[1]
    if path not in flat:
      raise ValueError(f"{key!r} maps to {'/'.join(path)}, which the model does not have")
    new = _to_flax_layout(key, np.asarray(value))
    if new.shape != flat[path].shape:
      if key not in skip_mismatched:
        raise ValueError(f"{key!r}: shape {tuple(np.shape(value))} (torch layout) does not fit "
                         f"{'/'.join(path)} of shape {flat[path].shape}")
      skipped.append(key)
    else:
      flat[path] = new.astype(flat[path].dtype)
    loaded.add(path)
  # The heads may be absent (a headless checkpoint); every backbone tensor must be there.
  missing = [p for p in flat if p not in loaded and p[1] not in ("fc", "va_head")]
  if missing:
    raise ValueError(f"the state dict lacks {len(missing)} backbone tensors, "
                     f"e.g. {'/'.join(missing[0])}")
  out = traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in flat.items()})
  return out, skipped


def load_torchvision_npz(path, variables, skip_mismatched=("conv1.weight", "fc.weight", "fc.bias")):
  """Initialises ResNet18 variables from a user's own torchvision ResNet-18 weights in an .npz
  (np.savez(path, **{k: v.numpy() for k, v in model.state_dict().items()})); nothing is
  downloaded. See torchvision_to_flax for the mapping. Returns (variables, skipped keys)."""
  with np.load(path) as data:
    state_dict = {k: data[k] for k in data.files}
  return torchvision_to_flax(state_dict, variables, skip_mismatched)
