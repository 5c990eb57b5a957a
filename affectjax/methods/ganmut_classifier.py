"""The evaluator emotion classifier of GANmut's Section 5 (the paper's VGGNet role).

It is the dual_domain method (methods/dual_domain.py) with one-hot labels, a VGG backbone and no
VA head (configs/dual_domain.py:evaluator), trained by the one training loop (checkpoints, NaN
guard, logs, progress) on the GANmut run's own data config, with the GANmut config's
eval.classifier_* fields. It is cached in a directory named by a hash of that classifier config,
under config.eval.classifier_dir (or workdir/evaluator), and reused whenever the same classifier
config is asked for again, so GANmut's metrics and dual-domain fusion share one classifier.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

# Fields that change neither the data nor the training (left out of the cache key).
_NOT_KEYED = ("train.progress", "train.log_every", "train.checkpoint_every", "train.keep_checkpoints",
              "data.cache_dir", "data.tfds_dir", "data.num_parallel_calls", "data.prefetch")
VARIABLES = "variables.msgpack"


def _dual_domain_config(arg: str):
  from affectjax.configs import dual_domain
  return dual_domain.get_config(arg)


def classifier_config(config):
  """The dual_domain:evaluator config for a GANmut config: same data and seed, its eval.classifier_*
  fields (steps, batch, lr, widths)."""
  e = config.eval
  c = _dual_domain_config("evaluator")
  with c.unlocked():
    c.data = copy.deepcopy(config.data)
  c.seed = config.seed
  c.model.widths = tuple(e.classifier_widths)
  c.train.num_steps = e.classifier_steps
  c.train.batch_size = e.classifier_batch
  c.train.checkpoint_every = min(1000, e.classifier_steps)
  c.train.log_every = max(1, min(100, e.classifier_steps))
  c.train.progress = bool(config.train.progress)
  c.optim.lr = e.classifier_lr
  c.eval.batch_size = e.batch_size
  return c


def config_hash(c) -> str:
  """A short hash of the classifier config's fields that matter (sorted JSON)."""
  flat = json.loads(c.to_json_best_effort(sort_keys=True))
  for path in _NOT_KEYED:
    section, field = path.split(".")
    flat.get(section, {}).pop(field, None)
  return hashlib.sha256(json.dumps(flat, sort_keys=True).encode()).hexdigest()[:12]


def model_of(config):
  """The evaluator network of a GANmut config."""
  from affectjax.methods import dual_domain
  return dual_domain.build_model(classifier_config(config))


def classify_fn(model):
  @jax.jit
  def classify(variables, x):
    logits, _, feats = model.apply(variables, x, train=False)
    return jax.nn.softmax(logits, -1), feats
  return classify


def run(classify, params, images, bs):
  """(softmax [N, C], penultimate features [N, F]) as numpy, in batches of bs."""
  from affectjax.evaluate.inference import batched
  return batched(lambda x: classify(params, jnp.asarray(x)), np.asarray(images), bs)


def data_fingerprint(data) -> str:
  """A short hash of the splits a classifier is trained on: sizes, every training label, the first
  training and test images (so two different datasets never share a cached classifier)."""
  h = hashlib.sha256()
  for split in (data.train, data.test):
    h.update(str(len(split)).encode())
    first = split.gather(np.arange(min(16, len(split))))
    h.update(np.ascontiguousarray(first["image"], np.float32).tobytes())
  from affectjax.data import source as source_lib
  labels = (data.train.arrays["label"] if hasattr(data.train, "arrays")
            else source_lib.read_field(data.train, "label"))
  h.update(np.ascontiguousarray(labels, np.int64).tobytes())
  return h.hexdigest()[:8]


def cache_dir(config, workdir, data=None) -> str:
  """config.eval.classifier_dir (or workdir/evaluator) / <classifier config hash>[-<data hash>].
  The K seeds of one run share the run's evaluator (their seed_<i>/ reports use the parent's)."""
  from affectjax import train
  base = config.eval.classifier_dir or os.path.join(train.run_workdir(workdir), "evaluator")
  name = config_hash(classifier_config(config))
  return os.path.join(base, name if data is None else f"{name}-{data_fingerprint(data)}")


def load_or_train(data, config, workdir):
  """(variables, model) of the evaluator for a GANmut config: read from its cache directory
  (config.eval.classifier_dir or workdir/evaluator, then the classifier config's hash), else
  trained there by affectjax.train.train_and_evaluate (a killed training resumes) and saved.

  data: the splits to train on (GANmut's own; their fingerprint joins the cache key), or None for
  the splits the data config loads.
  """
  from affectjax import train
  from affectjax.methods import dual_domain
  c = classifier_config(config)
  d = cache_dir(config, workdir, data)
  path = os.path.join(d, VARIABLES)
  model = dual_domain.build_model(c)
  if os.path.exists(path):
    with open(path, "rb") as f:
      variables = flax.serialization.msgpack_restore(f.read())
    return jax.tree.map(jnp.asarray, variables), model
  state, metrics = train.train_and_evaluate(c, d, **({} if data is None else {"splits": data}))
  state = train.host_state(state)
  variables = {"params": state.params}
  if state.batch_stats is not None:
    variables["batch_stats"] = state.batch_stats
  if train.is_writer():
    with open(path + ".tmp", "wb") as f:
      f.write(flax.serialization.msgpack_serialize(jax.tree.map(np.asarray, variables)))
    os.replace(path + ".tmp", path)
    with open(os.path.join(d, "evaluator.json"), "w") as f:
      json.dump({"hash": os.path.basename(d), "metrics": {k: v for k, v in metrics.items()
                                                         if isinstance(v, float)}}, f, indent=1)
  return jax.tree.map(jnp.asarray, variables), model
