"""The one training loop shared by every method.

Sections: setup (validation, workdir, mesh, data, method) -> input streams -> state (init or
restore, with safe resume) -> jitted step -> loop (log, NaN guard, checkpoint, eval) -> final
evaluation and report. A method plugs in through affectjax.methods.base.Method; nothing here
knows which paper it is running.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
import warnings

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
  """The workdir cannot be created or written, or holds a run of another config."""


# ---------------------------------------------------------------- setup

def quiet_console_logging() -> None:
  """Console at WARNING unless --verbosity was given: Orbax logs every checkpoint save at INFO."""
  from absl import flags, logging
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)


def is_writer() -> bool:
  """Workdir files (config, metrics, tables, figures) are written by process 0 only."""
  return jax.process_index() == 0


def check_workdir(workdir: str) -> None:
  try:
    os.makedirs(workdir, exist_ok=True)
    if not is_writer():
      return
    probe = os.path.join(workdir, f".write_test_{os.getpid()}")
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
  data: sources.Splits  # as the method prepared them (Method.data), else as loaded
  method: methods.Method
  root_key: jax.Array
  replicated: NamedSharding
  batch_sharding: NamedSharding


def validate(config) -> None:
  """Every config check, before any data is generated, read or compiled."""
  methods.validate(config, jax.device_count())


def setup(config, **overrides) -> Setup:
  """Validates the config (before any compile), loads data and builds the method.

  overrides: the method's injectable functions, e.g. loss_fn=my_loss (see the README)."""
  validate(config)
  mesh = make_mesh()
  loaded = sources.load(config)
  method = methods.get(config, loaded, **overrides)
  data = method.data if method.data is not None else loaded
  return Setup(config, mesh, data, method, jax.random.key(config.seed),
               NamedSharding(mesh, P()), NamedSharding(mesh, P("data")))


# ---------------------------------------------------------------- input streams

def _stream_seed(s: Setup, stream) -> int:
  return s.config.seed + stream.seed_offset


def _select(batch: dict, keys) -> dict:
  return batch if keys is None else {k: batch[k] for k in keys}


def first_batch(s: Setup) -> dict:
  """One global-batch-shaped numpy batch per stream for shape inference (what step 0 reads)."""
  out = {}
  for name, st in s.method.streams.items():
    idx = pipeline.batch_indices(0, n=len(st.source), seed=_stream_seed(s, st),
                                 global_batch=st.batch_size)
    out[name] = _select(st.source.gather(idx), st.keys)
  return out


def input_batches(s: Setup, start_step: int):
  """This process's slice of every stream's global batch, steps start_step + 1, ..., as
  {stream: numpy batch}; each stream is a pure function of (its seed, step)."""
  c = s.config
  iters = {
      name: pipeline.train_batches(
          st.source, seed=_stream_seed(s, st), global_batch=st.batch_size, start_step=start_step,
          num_steps=c.train.num_steps - start_step, process_index=jax.process_index(),
          process_count=jax.process_count(), num_parallel_calls=c.data.num_parallel_calls,
          prefetch=c.data.prefetch)
      for name, st in s.method.streams.items()}
  keys = {name: st.keys for name, st in s.method.streams.items()}
  while True:
    try:
      yield {name: _select(next(it), keys[name]) for name, it in iters.items()}
    except StopIteration:
      return


def to_global(s: Setup, local_batch: dict) -> dict:
  """This process's numpy batches -> global jax arrays sharded over the mesh's 'data' axis."""
  return jax.tree.map(lambda v: jax.make_array_from_process_local_data(s.batch_sharding, v),
                      local_batch)


# ---------------------------------------------------------------- state

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


def host_state(state):
  """A process-local copy of a replicated state (numpy), for evaluation and reports: on a pod
  every process has the whole state, so no process waits on another."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array)
                      else x, state)


def _flat_config(d, prefix=""):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flat_config(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def _config_diff(workdir: str, config) -> list[str]:
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    old = _flat_config(json.load(f))
  new = _flat_config(json.loads(config.to_json_best_effort()))
  return [f"{k}: {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}"
          for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _shapes(tree) -> list:
  return sorted(tuple(x.shape) for x in jax.tree.leaves(tree) if hasattr(x, "shape"))


def _move_aside(ckpt_dir: str, step: int) -> str:
  """An unreadable checkpoint is moved (never deleted) so training can write that step again."""
  dest = os.path.join(os.path.dirname(ckpt_dir), "checkpoints_unreadable", f"{step}_{int(time.time())}")
  if is_writer():
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.move(os.path.join(ckpt_dir, str(step)), dest)
  return dest


def restore_or_init(s: Setup, workdir: str, ckpt_dir: str):
  """(state, start step): the newest readable checkpoint, or a fresh state.

  A checkpoint of a state with other shapes (another method, variant or model size) stops the
  run with the differing config fields and touches nothing; an unreadable newest checkpoint is
  reported, moved to checkpoints_unreadable/, and the next older one is used.
  """
  probe = ocp.CheckpointManager(ckpt_dir, item_handlers=ocp.StandardCheckpointHandler())
  steps = sorted(probe.all_steps(), reverse=True)
  if not steps:
    probe.close()
    return init_state(s), 0
  target = abstract_state(s)
  for i, step in enumerate(steps):
    try:
      saved = _shapes(probe.item_metadata(step))
    except Exception as e:  # noqa: BLE001 - any unreadable metadata is handled the same way
      saved, cause = None, e
    if saved is not None and saved != _shapes(target):
      probe.close()
      diff = _config_diff(workdir, s.config)
      raise WorkdirError(
          f"{workdir} holds a run whose state differs from this config's (checkpoint step {step}); "
          f"differing config fields: {'; '.join(diff) if diff else 'none recorded'}. Nothing was "
          f"changed: use a new --workdir, or rerun with the old config ({workdir}/config.json)")
    if saved is not None:
      try:
        state = probe.restore(step, args=ocp.args.StandardRestore(target))
        probe.close()
        if i:
          print(f"resuming from the older checkpoint at step {step}", flush=True)
        return state, step
      except Exception as e:  # noqa: BLE001
        cause = e
    reason = str(cause).strip().splitlines()[0][:200] if str(cause).strip() else type(cause).__name__
    dest = _move_aside(ckpt_dir, step)
    warnings.warn(f"the checkpoint at step {step} in {ckpt_dir} cannot be read ({type(cause).__name__}: "
                  f"{reason}); moved to {dest}, trying the next older one", stacklevel=2)
  probe.close()
  return init_state(s), 0


def compile_step(s: Setup):
  """The jitted train step: batch sharded over 'data', state replicated, old state donated."""
  train_key = jax.random.fold_in(s.root_key, 0x57E9)

  def step(state, batch):
    return s.method.train_step(state, batch, jax.random.fold_in(train_key, state.step))

  return jax.jit(step, in_shardings=(s.replicated, s.batch_sharding),
                 out_shardings=(s.replicated, s.replicated), donate_argnums=(0,))


# ---------------------------------------------------------------- loop

def _finite(metrics: dict) -> tuple[bool, str]:
  for k, v in metrics.items():
    if not math.isfinite(float(v)):
      return False, k
  return True, ""


def train_and_evaluate(config, workdir: str, **overrides):
  """Trains config.method for config.train.num_steps (resuming from workdir) and evaluates.

  overrides: the method's injectable functions (e.g. loss_fn=). Returns (state, metrics): the
  final state and the last logged training metrics merged with the final evaluation and report.
  """
  check_workdir(workdir)  # before anything slow: a bad workdir is one clear line
  s = setup(config, **overrides)
  c = config.train
  ckpt_dir = os.path.join(os.path.abspath(workdir), "checkpoints")
  state, start = restore_or_init(s, workdir, ckpt_dir)
  if start:
    print(f"resuming from the checkpoint at step {start} in {workdir}", flush=True)
  ckpt = ocp.CheckpointManager(
      ckpt_dir, options=ocp.CheckpointManagerOptions(max_to_keep=c.keep_checkpoints, create=True))
  writers = []
  if is_writer():
    with open(os.path.join(workdir, "config.json"), "w") as f:
      f.write(config.to_json_best_effort(indent=2))
    writers = [metric_writers.JsonlWriter(workdir, resume_step=start),
               metric_writers.TensorBoardWriter(workdir)]
  writer = metric_writers.MultiWriter(writers)
  step_fn = compile_step(s)
  evaluate = s.method.evaluate

  progress = None
  if c.progress and is_writer():
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
    # periodic evaluation; the last step's is the final evaluation below (run once)
    if c.eval_every and step % c.eval_every == 0 and step < c.num_steps and evaluate is not None:
      writer.write(step, {f"eval/{k}": v for k, v in evaluate(host_state(state), s.data, workdir).items()})
    if progress is not None:
      progress.update(1)
  if progress is not None:
    progress.close()
  ckpt.wait_until_finished()
  ckpt.close()

  final = dict(last_metrics)
  local = host_state(state)
  if evaluate is not None:
    ev = {f"eval/{k}": v for k, v in evaluate(local, s.data, workdir).items()}
    writer.write(c.num_steps, ev)
    final.update(ev)
  if c.report and s.method.report is not None and is_writer():
    final.update({f"report/{k}": v for k, v in s.method.report(local, s.data, workdir).items()})
  return state, final
