"""The one training loop shared by every method.

Sections: setup (validation, workdir, mesh) -> input -> state (init or restore) -> jitted step ->
loop (log, NaN guard, checkpoint, eval) -> final report. A method plugs in through
affectjax.methods.base.Method; nothing here knows which paper it is running.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from affectjax import config as config_lib
from affectjax import methods
from affectjax import metric_writers
from affectjax.data import pipeline, sources


class TrainingDiverged(FloatingPointError):
  """A non-finite loss: the run stops and the last good checkpoint stays as it was."""


class WorkdirError(OSError):
  """The workdir cannot be created or written."""


# ---------------------------------------------------------------- setup

def quiet_console_logging() -> None:
  """Console at WARNING unless --verbosity was given: Orbax logs every checkpoint save at INFO."""
  from absl import flags, logging
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def check_workdir(workdir: str) -> None:
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, ".write_test")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise WorkdirError(f"workdir {workdir!r} is not writable: {e.strerror or e}") from None


def make_mesh() -> Mesh:
  """A 1-D mesh over every device of every process, axis 'data' (Auto axes)."""
  return Mesh(np.asarray(jax.devices()), ("data",))


@dataclasses.dataclass
class Setup:
  """Everything built before the loop; also what tools/bench.py and tests reuse."""
  config: object
  mesh: Mesh
  data: sources.Splits
  method: methods.Method
  root_key: jax.Array
  replicated: NamedSharding
  batch_sharding: NamedSharding


def setup(config) -> Setup:
  """Validates the config (before any compile), loads data and builds the method."""
  config_lib.validate(config, jax.device_count())
  mesh = make_mesh()
  data = sources.load(config)
  method = methods.get(config)
  root = jax.random.key(config.seed)
  return Setup(config, mesh, data, method, root,
               NamedSharding(mesh, P()), NamedSharding(mesh, P("data")))


def first_batch(s: Setup) -> dict:
  """One global-batch-shaped numpy batch for shape inference (the first training batch)."""
  c = s.config
  idx = np.arange(c.train.batch_size) % len(s.data.train)
  return s.data.train.gather(idx)


def init_state(s: Setup):
  """The method's initial state, built directly with replicated sharding."""
  batch = first_batch(s)
  init_key = jax.random.fold_in(s.root_key, 0x1A17)
  init = jax.jit(lambda k: s.method.init(k, batch), out_shardings=s.replicated)
  return init(init_key)


def abstract_state(s: Setup):
  batch = first_batch(s)
  shapes = jax.eval_shape(lambda k: s.method.init(k, batch), jax.random.key(0))
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s.replicated), shapes)


def compile_step(s: Setup):
  """The jitted train step: batch sharded over 'data', state replicated, old state donated."""
  train_key = jax.random.fold_in(s.root_key, 0x57E9)

  def step(state, batch):
    return s.method.train_step(state, batch, jax.random.fold_in(train_key, state.step))

  return jax.jit(step, in_shardings=(s.replicated, s.batch_sharding),
                 out_shardings=(s.replicated, s.replicated), donate_argnums=(0,))


def to_global(s: Setup, local_batch: dict) -> dict:
  """This process's numpy batch -> global jax arrays sharded over the mesh."""
  return {k: jax.make_array_from_process_local_data(s.batch_sharding, v)
          for k, v in local_batch.items()}


def input_batches(s: Setup, start_step: int):
  c = s.config
  return pipeline.train_batches(
      s.data.train, seed=c.seed, global_batch=c.train.batch_size, start_step=start_step,
      num_steps=c.train.num_steps - start_step, process_index=jax.process_index(),
      process_count=jax.process_count(), num_parallel_calls=c.data.num_parallel_calls,
      prefetch=c.data.prefetch)


# ---------------------------------------------------------------- loop

def _finite(metrics: dict) -> tuple[bool, str]:
  for k, v in metrics.items():
    if not math.isfinite(float(v)):
      return False, k
  return True, ""


def train_and_evaluate(config, workdir: str) -> dict:
  """Trains config.method for config.train.num_steps (resuming from workdir) and evaluates.

  Returns the last logged training metrics merged with the final evaluation/report metrics.
  """
  check_workdir(workdir)  # before anything slow: a bad workdir is one clear line
  s = setup(config)
  c = config.train
  ckpt = ocp.CheckpointManager(
      os.path.join(os.path.abspath(workdir), "checkpoints"),
      options=ocp.CheckpointManagerOptions(max_to_keep=c.keep_checkpoints, create=True))
  start = ckpt.latest_step()
  if start is None:
    state, start = init_state(s), 0
  else:
    state = ckpt.restore(start, args=ocp.args.StandardRestore(abstract_state(s)))
    print(f"resuming from the checkpoint at step {start} in {workdir}", flush=True)
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))

  writers = [metric_writers.JsonlWriter(workdir, resume_step=start)]
  if jax.process_index() == 0:
    writers.append(metric_writers.TensorBoardWriter(workdir))
  writer = metric_writers.MultiWriter(writers)
  step_fn = compile_step(s)

  progress = None
  if c.progress and jax.process_index() == 0:
    from tqdm import tqdm
    progress = tqdm(total=c.num_steps, initial=start, desc=config.method, unit="step",
                    dynamic_ncols=True)
  last_metrics, t0, t_steps = {}, time.perf_counter(), 0
  batches = input_batches(s, start)
  for step in range(start + 1, c.num_steps + 1):
    state, metrics = step_fn(state, to_global(s, next(batches)))
    t_steps += 1
    is_ckpt = c.checkpoint_every and (step % c.checkpoint_every == 0 or step == c.num_steps)
    if step % c.log_every == 0 or is_ckpt or step == c.num_steps:
      metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
      ok, bad = _finite(metrics)
      if not ok:
        kept = ckpt.latest_step()
        ckpt.wait_until_finished()
        raise TrainingDiverged(
            f"non-finite {bad}={metrics[bad]} at step {step}; stopped. "
            f"The last good checkpoint ({'step ' + str(kept) if kept is not None else 'none'}) "
            f"in {workdir}/checkpoints is kept unchanged.")
      elapsed = time.perf_counter() - t0
      metrics["steps_per_sec"] = t_steps / max(elapsed, 1e-9)
      writer.write(step, metrics)
      last_metrics, t0, t_steps = metrics, time.perf_counter(), 0
      if progress is not None:
        progress.set_postfix(loss=f"{metrics['loss']:.4g}")
    if is_ckpt:
      ckpt.save(step, args=ocp.args.StandardSave(state))
    if c.eval_every and step % c.eval_every == 0 and s.method.evaluate is not None:
      writer.write(step, {f"eval/{k}": v for k, v in s.method.evaluate(state, s.data, workdir).items()})
    if progress is not None:
      progress.update(1)
  if progress is not None:
    progress.close()
  ckpt.wait_until_finished()
  ckpt.close()

  final = dict(last_metrics)
  if s.method.evaluate is not None:
    ev = s.method.evaluate(state, s.data, workdir)
    writer.write(c.num_steps, {f"eval/{k}": v for k, v in ev.items()})
    final.update({f"eval/{k}": v for k, v in ev.items()})
  if c.report and s.method.report is not None and jax.process_index() == 0:
    final.update({f"report/{k}": v for k, v in s.method.report(state, s.data, workdir).items()})
  final["_state"] = state
  return final
