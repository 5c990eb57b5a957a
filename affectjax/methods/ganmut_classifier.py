"""The evaluator emotion classifier of GANmut's Section 5 (the paper's VGGNet), trained by
affectjax on the run's own training split and saved with the run (workdir/evaluator/)."""
from __future__ import annotations

import json
import os

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from affectjax import losses
from affectjax.nn.classifier import VGGClassifier


def model_of(config):
  return VGGClassifier(config.data.num_classes, tuple(config.eval.classifier_widths))


def classify_fn(model):
  @jax.jit
  def classify(params, x):
    logits, feats = model.apply({"params": params}, x)
    return jax.nn.softmax(logits, -1), feats
  return classify


def run(classify, params, images, bs):
  """(softmax [N, C], penultimate features [N, F]) as numpy, in batches of bs."""
  ps, fs = [], []
  for i in range(0, len(images), bs):
    p, f = classify(params, jnp.asarray(images[i:i + bs]))
    ps.append(np.asarray(p)), fs.append(np.asarray(f))
  return np.concatenate(ps), np.concatenate(fs)


def train(data, config, key):
  """Cross-entropy training with Adam on the labelled training images; returns params."""
  e = config.eval
  model = model_of(config)
  t = data.train.gather(np.arange(len(data.train)))
  keep = (t["label"] >= 0) & (t["label"] < config.data.num_classes)
  x, y = t["image"][keep].astype(np.float32), t["label"][keep].astype(np.int32)
  k_init, k_data = jax.random.split(key)
  params = model.init(k_init, jnp.asarray(x[:1]))["params"]
  tx = optax.adam(e.classifier_lr)
  opt = tx.init(params)

  @jax.jit
  def step(params, opt, xb, yb):
    def loss_fn(p):
      logits, _ = model.apply({"params": p}, xb)
      return jnp.mean(losses.softmax_cross_entropy(logits, yb))
    loss, g = jax.value_and_grad(loss_fn)(params)
    upd, opt = tx.update(g, opt, params)
    return optax.apply_updates(params, upd), opt, loss

  rng = np.random.default_rng(int(jax.random.randint(k_data, (), 0, 2**31 - 1)))
  for _ in range(e.classifier_steps):
    idx = rng.integers(0, len(x), e.classifier_batch)
    xb = x[idx]
    flip = rng.random(len(idx)) < 0.5  # horizontal flips: expressions are near symmetric
    xb[flip] = xb[flip][:, :, ::-1]
    params, opt, _ = step(params, opt, xb, y[idx])
  return params


def load_or_train(data, config, workdir):
  """The evaluator saved in config.eval.classifier_dir (or workdir/evaluator), trained if absent."""
  d = config.eval.classifier_dir or os.path.join(workdir, "evaluator")
  path = os.path.join(d, "params.msgpack")
  model = model_of(config)
  template = model.init(jax.random.key(0), jnp.zeros((1, config.data.image_size,
                                                        config.data.image_size, 3)))["params"]
  if os.path.exists(path):
    with open(path, "rb") as f:
      return flax.serialization.from_bytes(template, f.read()), model
  params = train(data, config, jax.random.key(config.seed + 1234))
  os.makedirs(d, exist_ok=True)
  with open(path + ".tmp", "wb") as f:
    f.write(flax.serialization.to_bytes(params))
  os.replace(path + ".tmp", path)
  with open(os.path.join(d, "info.json"), "w") as f:
    json.dump({"widths": list(config.eval.classifier_widths), "steps": config.eval.classifier_steps,
               "num_classes": config.data.num_classes, "image_size": config.data.image_size}, f)
  return params, model
