"""A small supervised CNN on images: the reference row LeVAsa's issue asks for ("ceilings: a
supervised CNN on pixels"), and tools/calibrate_faces.py's measure of how hard the faces are.

One network (one strided 3x3 convolution per halving down to 4x4, Dense 128, one linear output
per head), trained jointly on all its heads with optax Adam on training rows, evaluated every
`eval_every` steps on held-out TRAINING rows (a tenth of the training identities:
`validation_split`) and stopped after `patience` evaluations without a lower validation loss or at
`max_steps`; the parameters of the best validation step are kept. The test split never trains or
stops it. Heads:
- Regression(values [N, D]): tanh outputs (targets in [-1, 1]), squared error over the finite
  entries, each column divided by its variance on the training rows;
- Classes(labels [N, A], num_classes K): A softmax classifiers of K classes, cross-entropy over the
  labels >= 0 (-1: unknown, masked), divided by log K;
so each head's loss is about 1 at chance and the joint loss is their sum (masked means per head).
Deterministic for a seed on a given backend (initialisation and batch order).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from affectjax.nn import cpu  # nn.Conv with XLA:CPU's fast formulations (issue 27)

PREDICT_CHUNK = 256  # rows per inference call (one compiled shape)


@dataclasses.dataclass(frozen=True)
class Regression:
  """A regression head's targets [N, D] (NaN: unknown)."""
  values: np.ndarray


@dataclasses.dataclass(frozen=True)
class Classes:
  """A classification head's targets [N, A] in 0..num_classes-1 (-1: unknown), A softmaxes."""
  labels: np.ndarray
  num_classes: int


class CNN(nn.Module):
  """Strided 3x3 convolutions (16, 32, 64, 64, ... channels) down to 4x4, Dense 128, the heads.

  heads: ((name, 'regression' | 'classes', output shape per example), ...). Images are float in
  [-1, 1] or uint8 in [0, 255] (mapped to [-1, 1] here, so callers can keep them 4x smaller).
  """
  heads: tuple

  @nn.compact
  def __call__(self, x):
    if x.dtype == jnp.uint8:
      x = x.astype(jnp.float32) / 127.5 - 1.0
    x = x.astype(jnp.float32)
    stages = max(1, int(np.log2(x.shape[1])) - 2)
    for i in range(stages):  # one strided convolution per halving: cheap on a CPU
      x = nn.relu(cpu.Conv(min(16 * 2 ** i, 64), (3, 3), strides=2)(x))
    x = nn.relu(nn.Dense(128)(x.reshape(x.shape[0], -1)))
    out = {}
    for name, kind, shape in self.heads:
      y = nn.Dense(int(np.prod(shape)), name=f"head_{name}")(x)
      y = y.reshape((x.shape[0],) + tuple(shape))
      out[name] = jnp.tanh(y) if kind == "regression" else y
    return out


@dataclasses.dataclass
class Fit:
  """A trained network: the best validation step's parameters and the validation history."""
  model: CNN
  params: dict
  apply: Callable  # jax.jit(model.apply): one compile per network
  best_step: int
  steps: int
  history: list  # [(step, joint validation loss)], one entry per evaluation


def _spec(heads: dict) -> tuple:
  return tuple((name, "regression", (h.values.shape[1],)) if isinstance(h, Regression)
               else (name, "classes", (h.labels.shape[1], h.num_classes))
               for name, h in heads.items())


def _targets(heads: dict, idx) -> dict:
  return {name: (h.values if isinstance(h, Regression) else h.labels)[idx]
          for name, h in heads.items()}


def _scales(heads: dict, train_idx) -> dict:
  """Per head, what its per-entry loss is divided by: the training variance of each regression
  column, log K for classes (both about a chance-level loss of 1)."""
  out = {}
  for name, h in heads.items():
    if isinstance(h, Regression):
      v = np.asarray(h.values, np.float64)[train_idx]
      var = np.array([np.var(c[np.isfinite(c)]) if np.isfinite(c).sum() > 1 else 1.0 for c in v.T])
      out[name] = np.maximum(var, 1e-6).astype(np.float32)
    else:
      out[name] = np.float32(np.log(h.num_classes))
  return out


def head_losses(outputs: dict, targets: dict, kinds: dict, scales: dict) -> dict:
  """{head: (sum of the scaled per-entry losses over known entries, number of known entries)}."""
  out = {}
  for name, y in targets.items():
    if kinds[name] == "regression":
      known = jnp.isfinite(y)
      per = jnp.square(outputs[name] - jnp.where(known, y, 0.0)) / scales[name]
    else:
      known = y >= 0
      per = optax.softmax_cross_entropy_with_integer_labels(
          outputs[name], jnp.where(known, y, 0)) / scales[name]
    out[name] = (jnp.sum(jnp.where(known, per, 0.0)), jnp.sum(known))
  return out


def _joint(losses: dict):
  return sum(s / jnp.maximum(n, 1) for s, n in losses.values())


def validation_split(identity, rows, seed: int, fraction: float = 0.1):
  """(fit rows, validation rows) of the training `rows`: a `fraction` of their identities held out
  (chosen by seed + 1). Rows of unknown identity (< 0 or None) count as people of their own, and so
  do all rows when they hold a single person (nothing else could be held out)."""
  from affectjax.data.sources import split_by_identity
  rows = np.asarray(rows)
  if len(rows) < 2:
    raise ValueError(f"the CNN's early stopping needs at least 2 training rows; got {len(rows)}")
  ids = np.full(len(rows), -1) if identity is None else np.asarray(identity, np.int64)[rows]
  ids = np.where(ids >= 0, ids, -1 - np.arange(len(rows)))
  if len(np.unique(ids)) < 2:
    ids = np.arange(len(rows))
  fit_pos, val_pos = split_by_identity(ids, fraction, seed + 1)
  return rows[fit_pos], rows[val_pos]


def outputs(fit: Fit, images, idx=None) -> dict:
  """The network's outputs {head: [len(idx), ...]} as numpy (tanh values, class logits)."""
  idx = np.arange(len(images)) if idx is None else np.asarray(idx)
  padded = np.concatenate([idx, np.full(-len(idx) % PREDICT_CHUNK, idx[0] if len(idx) else 0)])
  parts = [fit.apply(fit.params, images[padded[i:i + PREDICT_CHUNK]])
           for i in range(0, len(padded), PREDICT_CHUNK)]
  return {name: np.concatenate([np.asarray(p[name]) for p in parts])[:len(idx)]
          for name in (parts[0] if parts else {})}


def init_params(model: CNN, image_shape, dtype, seed: int) -> dict:
  """LeCun-normal kernels (N(0, 1 / fan_in)) and zero biases, drawn with NumPy: the same numbers
  on every backend, and no initialiser to compile (a jitted Flax init takes seconds on a CPU)."""
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jax.ShapeDtypeStruct((1,) + tuple(image_shape), dtype))
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    if path[-1].key == "bias":
      return np.zeros(leaf.shape, leaf.dtype)
    fan_in = int(np.prod(leaf.shape[:-1]))
    return (rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def train_step(model: CNN, kinds: dict, scales: dict, tx) -> Callable:
  """The jitted step (params, opt, images, targets) -> (params, opt, joint loss) of one batch."""
  @jax.jit
  def step(params, opt, x, y):
    loss = lambda p: _joint(head_losses(model.apply(p, x), y, kinds, scales))  # noqa: E731
    value, grads = jax.value_and_grad(loss)(params)
    updates, opt = tx.update(grads, opt, params)
    return optax.apply_updates(params, updates), opt, value
  return step


def fit(images, heads: dict, train_idx, val_idx, *, seed: int, max_steps: int, eval_every: int,
        patience: int, batch_size: int, learning_rate: float = 1e-3,
        log: Callable[[str], None] | None = None) -> Fit:
  """Trains a CNN with `heads` ({name: Regression | Classes}, targets for every row of `images`)
  on train_idx, early-stopped on val_idx (module docstring); returns the best validation step's
  network."""
  train_idx, val_idx = np.asarray(train_idx), np.asarray(val_idx)
  if len(train_idx) == 0 or len(val_idx) == 0:
    raise ValueError(f"the CNN needs training and validation rows; got {len(train_idx)} and "
                     f"{len(val_idx)}")
  if set(train_idx.tolist()) & set(val_idx.tolist()):
    raise ValueError("the CNN's training and validation rows overlap")
  for name, h in heads.items():
    if isinstance(h, Classes) and np.max(h.labels, initial=-1) >= h.num_classes:
      raise ValueError(f"head {name!r}: labels up to {np.max(h.labels)} for {h.num_classes} classes")
  model = CNN(_spec(heads))
  kinds = {name: kind for name, kind, _ in model.heads}
  scales = _scales(heads, train_idx)
  params = init_params(model, images.shape[1:], images.dtype, seed)
  tx = optax.adam(learning_rate)
  # Adam's state starts at zero (count, moments): built on the host, nothing to compile
  opt = jax.tree_util.tree_map(lambda a: np.zeros(a.shape, a.dtype), jax.eval_shape(tx.init, params))

  step = train_step(model, kinds, scales, tx)
  apply = jax.jit(model.apply)
  val_targets = _targets(heads, val_idx)
  joint = jax.jit(lambda out, y: _joint(head_losses(out, y, kinds, scales)))

  def validation_loss(p):
    return float(joint(outputs(Fit(model, p, apply, 0, 0, []), images, val_idx), val_targets))

  batch_size = min(batch_size, len(train_idx))
  rng = np.random.default_rng(seed)
  order, pos = rng.permutation(train_idx), 0
  best, best_params, best_step, since, steps, history = np.inf, params, 0, 0, 0, []
  while steps < max_steps and since < patience:
    for _ in range(min(eval_every, max_steps - steps)):
      if pos + batch_size > len(order):  # a new epoch in a new order
        order, pos = rng.permutation(train_idx), 0
      b = order[pos:pos + batch_size]
      pos += batch_size
      params, opt, _ = step(params, opt, images[b], _targets(heads, b))
      steps += 1
    val = validation_loss(params)
    history.append((steps, val))
    if log is not None:
      log(f"step {steps}: validation loss {val:.4f}")
    if val < best:
      best, best_params, best_step, since = val, params, steps, 0
    else:
      since += 1
  return Fit(model, best_params, apply, best_step, steps, history)
