"""The contract between a method (one paper) and the one training loop in train.py.

A method is a bundle of pure functions. train.py owns the mesh, sharding, jit, PRNG, checkpoints,
logging and the loop; the method owns its networks, losses and evaluation.

- init(key, batch) -> state: a flax.struct.dataclass of arrays only, with an int `step` field.
  `batch` is one canonical batch (numpy), used for shapes.
- train_step(state, batch, key) -> (state, metrics): pure; jitted by train.py with the batch
  sharded over the mesh's 'data' axis and the state replicated. `key` is already
  fold_in(root, state.step); split it by purpose inside. `metrics` is a flat dict of scalars and
  must contain 'loss' (checked for NaN at every log step).
- evaluate(state, data, workdir) -> dict of scalars, optional: run every config.train.eval_every
  steps on the host (data: affectjax.data.sources.Splits).
- report(state, data, workdir) -> dict of scalars, optional: run once at the end; writes the
  method's tables (markdown) and figures (PNG) into workdir.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional


@dataclasses.dataclass(frozen=True)
class Method:
  init: Callable[..., Any]
  train_step: Callable[..., tuple[Any, dict]]
  evaluate: Optional[Callable[..., dict]] = None
  report: Optional[Callable[..., dict]] = None
