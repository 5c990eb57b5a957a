"""The contract between a method (one paper) and the one training loop in train.py.

The loop owns validation order, the mesh and shardings, jit and donation, the PRNG, the input
streams' scheduling, checkpoints and resume, the NaN guard, metrics, progress and calling
evaluate/report. A method module under affectjax/methods/ provides:

- `validate(config)`: checks its own fields before any data is generated or read; raises
  affectjax.config.ConfigError with one line (affectjax.config.expect_one_of helps). What it
  needs of the data it asks of affectjax.data.sources.dataset_info(config.data) (a DatasetInfo:
  labels, VA, landmarks, action units, rendered ground truth), never of the dataset's name;
  `NEEDS`, a tuple of DatasetInfo's boolean fields, is checked for every method by
  methods.validate. The loaded splits carry the same DatasetInfo (Splits.info).
- `make_method(config, data, *, objective=None, objectives=None) -> Method`: built once from the
  config and the loaded splits (affectjax.data.sources.Splits), so statistics, class weights,
  reference sets or triplets are computed on the host from the training split only. Its training
  is a list of affectjax.objective.Phase (an objective and the players it updates) run by
  affectjax.objective.make_step; `objective=` / `objectives={phase: fn}` replace them (and
  config.loss.fn / config.loss.<phase>_fn from the command line: affectjax.objective.inject).

A Method is plain data:
- streams: {name: Stream}. Each stream is a random-access source read in global batches whose
  contents are a pure function of (seed, step) (affectjax.data.pipeline). The default is one
  i.i.d. stream 'data' over the training split.
- init(key, batch) -> state: a flax.struct.dataclass of arrays only, with an int `step` field.
  `batch` is {stream name: canonical example dict} (numpy), used for shapes.
- train_step(state, batch, key) -> (state, metrics): pure; jitted by train.py with every stream's
  batch sharded over the mesh's 'data' axis and the state replicated. `key` is already
  fold_in(root, state.step); split it by purpose inside. `metrics` is a flat dict of scalars and
  must contain 'loss'. At every log and checkpoint step the NaN guard checks the metrics and
  every floating leaf of the state (a checkpoint is only written from a finite state).
- represent(state, batch) -> {feature name: [N, d]} and generate(state, batch, key) -> images,
  where the paper has them (pure, jit-able; evaluation uses them through affectjax.evaluate.inference.batched).
- data: the splits as the method prepared them (e.g. LeVAsa's annotation transfer), passed to
  evaluate/report; None means as loaded.
- evaluate(state, data, workdir) -> dict of scalars, optional: every config.train.eval_every steps
  and once at the end, on every process.
- report(state, data, workdir) -> dict of scalars, optional: once at the end on process 0; writes
  the method's tables (markdown) and figures (PNG) into workdir.
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping, Optional, Sequence


@dataclasses.dataclass(frozen=True)
class Stream:
  """A named training input: `source` read `batch_size` examples per step (global batch).

  keys: the fields sent to the device (None: every field of the source). seed_offset: added to
  config.seed so two streams over the same source read in independent orders.
  """
  source: Any
  batch_size: int
  keys: Optional[Sequence[str]] = None
  seed_offset: int = 0


@dataclasses.dataclass(frozen=True)
class Prerequisite:
  """Another run this method's evaluation needs (GANmut's evaluator classifier), trained by the
  loop before this run's first step so that methods never call the loop themselves.

  workdir(run_workdir) -> its directory; ready(its dir) -> whether its result is already there
  (then nothing is trained); save(its dir, final host state, final metrics) writes the result the
  method reads back (process 0 only). overrides: train_and_evaluate's keyword arguments (splits=).
  """
  name: str
  config: Any
  workdir: Callable[[str], str]
  ready: Callable[[str], bool]
  save: Callable[[str, Any, dict], None]
  overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Method:
  init: Callable[..., Any]
  train_step: Callable[..., tuple[Any, dict]]
  streams: Mapping[str, Stream]
  evaluate: Optional[Callable[..., dict]] = None
  report: Optional[Callable[..., dict]] = None
  represent: Optional[Callable[..., Any]] = None
  generate: Optional[Callable[..., Any]] = None
  data: Any = None  # the splits as the method prepared them (None: as loaded); evaluate/report get these
  # State fields and metrics that hold a selection's running best, which starts at -inf by design
  # (the triplet VAE's best validation ELBO): the NaN guard lets them be infinite, never NaN.
  sentinels: Sequence[str] = ()
  prerequisites: Sequence[Prerequisite] = ()  # runs trained by the loop before this one
  phases: Sequence[Any] = ()  # the affectjax.objective.Phase list train_step runs (introspection, tests)


def data_stream(data, config, keys: Optional[Sequence[str]] = None) -> dict[str, Stream]:
  """The default input: one i.i.d. stream 'data' over the training split."""
  return {"data": Stream(data.train, config.train.batch_size, keys)}


def resolve(spec: str, default: Callable) -> Callable:
  """`default`, or the function named by spec 'package.module:function' (config.loss.fn)."""
  if not spec:
    return default
  module, _, name = spec.partition(":")
  fn = getattr(importlib.import_module(module), name or "loss_fn", None)
  if not callable(fn):
    raise ValueError(f"{spec!r} does not name a function (expected 'package.module:function')")
  return fn
