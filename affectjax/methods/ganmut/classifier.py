"""The evaluator emotion classifier of GANmut's Section 5 (the paper's VGGNet role).

It is the dual_domain method (methods/dual_domain) with one-hot labels, a VGG backbone and no
VA head (configs/dual_domain.py:evaluator), trained on the GANmut run's own data config with the
GANmut config's eval.classifier_* fields. GANmut declares it as a prerequisite (`prerequisite`):
the one training loop trains it (checkpoints, NaN guard, logs, progress) before GANmut's first
step, into a directory named by a hash of that classifier config under config.eval.classifier_dir
(or the run's workdir/evaluator), and skips it whenever the same classifier is already there, so
GANmut's metrics and dual-domain fusion share one classifier. The evaluation only `load`s it.
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

from affectjax import workdir as workdir_lib
from affectjax.errors import UserError
from affectjax.methods.base import Prerequisite

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
  base = config.eval.classifier_dir or os.path.join(workdir_lib.run_workdir(workdir), "evaluator")
  name = config_hash(classifier_config(config))
  return os.path.join(base, name if data is None else f"{name}-{data_fingerprint(data)}")


def state_variables(state) -> dict:
  """The classifier's Flax variables from its final dual_domain state (the last weights), in
  either layout: TrainState(params, batch_stats) or objective.State's (params['net'], aux)."""
  if hasattr(state, "batch_stats"):
    params, stats = state.params, state.batch_stats
  else:
    params, stats = state.params["net"], state.aux  # dual_domain's one player, 'net'
  variables = {"params": params}
  if stats is not None:
    variables["batch_stats"] = stats
  return variables


def save(d, state, metrics) -> None:
  """Writes the trained evaluator into its directory d: variables.msgpack (read by `load`) and
  evaluator.json (its hash and final metrics)."""
  path = os.path.join(d, VARIABLES)
  with open(path + ".tmp", "wb") as f:
    f.write(flax.serialization.msgpack_serialize(jax.tree.map(np.asarray, state_variables(state))))
  os.replace(path + ".tmp", path)
  with open(os.path.join(d, "evaluator.json"), "w") as f:
    json.dump({"hash": os.path.basename(d), "metrics": {k: v for k, v in metrics.items()
                                                       if isinstance(v, float)}}, f, indent=1)


def prerequisite(config, data=None) -> Prerequisite:
  """The evaluator as a run the loop trains before GANmut's (a killed training resumes).

  data: the splits to train on (GANmut's own; their fingerprint joins the cache key), or None
  for the splits the data config loads."""
  return Prerequisite(
      name="GANmut's evaluator classifier", config=classifier_config(config),
      workdir=lambda run_workdir: cache_dir(config, run_workdir, data),
      ready=lambda d: os.path.exists(os.path.join(d, VARIABLES)), save=save,
      overrides={} if data is None else {"splits": data})


def load(config, workdir, data=None):
  """(variables, model) of the evaluator of a GANmut config, read from its directory (cache_dir).
  It is trained by the loop before the GANmut run (Method.prerequisites); evaluating a run
  outside the loop needs it there already."""
  d = cache_dir(config, workdir, data)
  path = os.path.join(d, VARIABLES)
  if not os.path.exists(path):
    raise UserError(f"GANmut's evaluator classifier is not in {d} (no {VARIABLES}): train the run "
                    "with python -m affectjax.main, which trains the evaluator first, or point "
                    "config.eval.classifier_dir at a trained one")
  with open(path, "rb") as f:
    variables = flax.serialization.msgpack_restore(f.read())
  return jax.tree.map(jnp.asarray, variables), model_of(config)
