"""The one training loop shared by every method.

Sections: setup (validation, workdir, mesh, data, method) -> input streams -> state (init or
restore, with safe resume) -> jitted step -> loop (log, NaN guard, checkpoint, eval) -> final
evaluation and report. A method plugs in through affectjax.methods.base.Method; nothing here
knows which paper it is running.

Many seeds, one program (config.train.num_seeds = K > 1): the state gets a leading seed axis
(every leaf but the shared `step`), init is vmapped over it and the step mapped (train.seed_map:
vmapped, or on CPU unrolled into K one-seed steps in the one program), and seed i is trained
with root key jax.random.key(config.seed + i) and the data order of config.seed + i (or, with
train.shared_data_order, config.seed's order read once and broadcast; train.first_seed = f shifts
keys and orders to config.seed + f + i, how a runner adds seeds to a finished run), so model i is the model a
one-seed run with those keys and that order trains. The data set and everything the method
computes from it (make_method) is config.seed's for all K seeds: the seed axis varies the
training randomness, not the data. Every stream's batch is [K, B, ...] sharded over 'data' on B.
Metrics are logged per seed (loss/seed0, ...) and as their mean (loss); each seed is evaluated
and reported into workdir/seed_<i>/, and workdir/seeds.md / seeds.json give every scalar as the
mean over seeds with its 95 % interval (affectjax.evaluate.seeds).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import shutil
import time
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from affectjax import methods
from affectjax import metric_writers
from affectjax import workdir as workdir_lib
from affectjax.data import pipeline, sources
from affectjax.evaluate import registry
from affectjax.errors import UserError, warn


class TrainingDiverged(UserError, FloatingPointError):
  """A non-finite loss: the run stops and the last good checkpoint stays as it was."""


WorkdirError = workdir_lib.WorkdirError  # the workdir cannot be written, is in use, or holds another run


# ---------------------------------------------------------------- setup

def quiet_console_logging() -> None:
  """Console at WARNING unless --verbosity was given: Orbax logs every checkpoint save at INFO."""
  from absl import flags, logging
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  workdir_lib.quiet_disk_error_logs()  # a full disk is reported once, in one line


def is_writer() -> bool:
  """Workdir files (config, metrics, tables, figures) are written by process 0 only."""
  return jax.process_index() == 0


def seed_report_dir(workdir: str, i: int) -> str:
  """Where seed i of a K-seed run is evaluated and reported (workdir_lib.run_workdir inverts it)."""
  return os.path.join(workdir, workdir_lib.SEED_DIR.format(i))


def finished(config, workdir: str) -> bool:
  """Whether workdir holds a run of exactly this config trained to its last step (its config.json
  equals config's, its newest checkpoint is at config.train.num_steps); experiments skip such runs
  when they are rerun, instead of evaluating them again."""
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      if f.read() != config.to_json_best_effort(indent=2):
        return False
    steps = [int(d) for d in os.listdir(os.path.join(workdir, "checkpoints")) if d.isdigit()]
  except OSError:
    return False
  return bool(steps) and max(steps) == config.train.num_steps


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
  batch_sharding: NamedSharding  # K seeds with their own data orders: P(None, 'data')
  num_seeds: int = 1  # config.train.num_seeds
  root_keys: Optional[jax.Array] = None  # K > 1: [K] keys, key(config.seed + i)
  shared_data_order: bool = False  # K > 1: one batch [B, ...] for every seed
  state_axes: Any = None  # K > 1: vmap axes of the state (seed_axes), filled on first use

  @property
  def per_seed_data(self) -> bool:
    """Whether every stream's batch carries a leading seed axis [K, B, ...]."""
    return self.num_seeds > 1 and not self.shared_data_order


def validate(config) -> None:
  """Every config check, before any data is generated, read or compiled."""
  methods.validate(config, jax.device_count())
  resolve_seed_map(config.train.get("seed_map", "auto"))


def setup(config, **overrides) -> Setup:
  """Validates the config (before any compile), loads data and builds the method.

  overrides: objective=fn or objectives={phase: fn} (affectjax.objective), or a method's own
  keyword arguments (dual_domain's splits=)."""
  validate(config)
  return _build(config, **overrides)


def _build(config, **overrides) -> Setup:
  """setup() for a config already validated."""
  mesh = make_mesh()
  loaded = sources.load(config)
  method = registry.with_evals(methods.get(config, loaded, **overrides), config)
  data = method.data if method.data is not None else loaded
  k, shared = config.train.num_seeds, bool(config.train.shared_data_order)
  first = first_seed(config)
  if k == 1:
    return Setup(config, mesh, data, method, jax.random.key(config.seed + first),
                 NamedSharding(mesh, P()), NamedSharding(mesh, P("data")))
  root_keys = jnp.stack([jax.random.key(config.seed + first + i) for i in range(k)])
  batch_spec = P("data") if shared else P(None, "data")
  return Setup(config, mesh, data, method, root_keys[0], NamedSharding(mesh, P()),
               NamedSharding(mesh, batch_spec), num_seeds=k, root_keys=root_keys,
               shared_data_order=shared)


# ---------------------------------------------------------------- input streams

def first_seed(config) -> int:
  """train.first_seed (0 for configs written before it existed)."""
  return int(config.train.get("first_seed", 0))


def _stream_seed(s: Setup, stream, seed_index: int = 0) -> int:
  """The data-order seed of a stream for seed i of the run: config.seed + first_seed + i + its
  offset (config.seed's order when every seed shares it, in a one-seed block of such a run too)."""
  first = 0 if s.config.train.shared_data_order else first_seed(s.config)
  return s.config.seed + first + seed_index + stream.seed_offset


def _select(batch: dict, keys) -> dict:
  return batch if keys is None else {k: batch[k] for k in keys}


def _stack_seeds(batches: list) -> dict:
  """Per-seed batches -> one batch whose every field has a leading seed axis [K, ...]."""
  return jax.tree.map(lambda *xs: np.stack(xs), *batches)


def _data_seeds(s: Setup) -> range:
  """The seed indices that read their own data order (one, 0, when every seed shares it)."""
  return range(s.num_seeds) if s.per_seed_data else range(1)


def first_batch(s: Setup) -> dict:
  """One global-batch-shaped numpy batch per stream for shape inference (what step 0 reads);
  with K seeds of their own data orders, every field is [K, B, ...]."""
  per_seed = []
  for i in _data_seeds(s):
    out = {}
    for name, st in s.method.streams.items():
      idx = pipeline.batch_indices(0, n=len(st.source), seed=_stream_seed(s, st, i),
                                   global_batch=st.batch_size)
      out[name] = _select(st.source.gather(idx), st.keys)
    per_seed.append(out)
  return _stack_seeds(per_seed) if s.per_seed_data else per_seed[0]


def input_batches(s: Setup, start_step: int):
  """This process's slice of every stream's global batch, steps start_step + 1, ..., as
  {stream: numpy batch}; each stream is a pure function of (its seed, step). With K seeds of
  their own data orders, seed i reads the order of config.seed + i and every field is [K, b, ...]."""
  c = s.config
  iters = {
      (name, i): pipeline.train_batches(
          st.source, seed=_stream_seed(s, st, i), global_batch=st.batch_size,
          start_step=start_step, num_steps=c.train.num_steps - start_step,
          process_index=jax.process_index(), process_count=jax.process_count(),
          num_parallel_calls=c.data.num_parallel_calls, prefetch=c.data.prefetch)
      for i in _data_seeds(s) for name, st in s.method.streams.items()}
  keys = {name: st.keys for name, st in s.method.streams.items()}
  while True:
    try:
      per_seed = [{name: _select(next(iters[name, i]), keys[name]) for name in keys}
                  for i in _data_seeds(s)]
    except StopIteration:
      return
    yield _stack_seeds(per_seed) if s.per_seed_data else per_seed[0]


def to_global(s: Setup, local_batch: dict) -> dict:
  """This process's numpy batches -> global jax arrays sharded over the mesh's 'data' axis."""
  return jax.tree.map(lambda v: jax.make_array_from_process_local_data(s.batch_sharding, v),
                      local_batch)


# ---------------------------------------------------------------- state

def seed_axes(s: Setup):
  """The vmap axes of a K-seed state: 0 (the seed axis) on every leaf but `step`, which the
  seeds share (it stays a scalar, so a step-gated lax.cond stays a cond under vmap)."""
  if s.state_axes is None:
    batch = jax.tree.map(lambda x: x[0], first_batch(s)) if s.per_seed_data else first_batch(s)
    one = jax.eval_shape(lambda k: s.method.init(k, batch), jax.random.key(0))
    axes = jax.tree.map(lambda _: 0, one)
    if dataclasses.is_dataclass(axes) and "step" in {f.name for f in dataclasses.fields(axes)}:
      axes = dataclasses.replace(axes, step=None)
    s.state_axes = axes
  return s.state_axes


def _seed_init(s: Setup):
  """keys [K] -> the K seeds' initial states (vmapped init, seed i on its own first batch)."""
  batch, axes = first_batch(s), seed_axes(s)
  init = jax.vmap(s.method.init, in_axes=(0, 0 if s.per_seed_data else None), out_axes=axes)
  return lambda keys: init(keys, batch)


def init_state(s: Setup):
  """The method's initial state, built directly with replicated sharding."""
  if s.num_seeds > 1:
    keys = jax.vmap(lambda k: jax.random.fold_in(k, 0x1A17))(s.root_keys)
    return jax.jit(_seed_init(s), out_shardings=s.replicated)(keys)
  batch = first_batch(s)
  init_key = jax.random.fold_in(s.root_key, 0x1A17)
  init = jax.jit(lambda k: s.method.init(k, batch), out_shardings=s.replicated)
  return init(init_key)


def abstract_state(s: Setup):
  if s.num_seeds > 1:
    shapes = jax.eval_shape(_seed_init(s), s.root_keys)
  else:
    batch = first_batch(s)
    shapes = jax.eval_shape(lambda k: s.method.init(k, batch), jax.random.key(0))
  return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s.replicated), shapes)


def host_state(state):
  """A process-local copy of a replicated state (numpy), for evaluation and reports: on a pod
  every process has the whole state, so no process waits on another."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)) if isinstance(x, jax.Array)
                      else x, state)


def seed_states(s: Setup, state) -> list:
  """Host-local copies of each seed's state (slice i of the seed axis), i < K."""
  local, axes = host_state(state), seed_axes(s)
  return [jax.tree.map(lambda ax, x: x if ax is None else x[i], axes, local,
                       is_leaf=lambda a: a is None)
          for i in range(s.num_seeds)]


def _config_diff(workdir: str, config) -> list[str]:
  saved = workdir_lib.read_config(workdir)
  if saved is None:
    return []
  old, new = workdir_lib.flat(saved), workdir_lib.flat(json.loads(config.to_json_best_effort()))
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
    warn(f"the checkpoint at step {step} in {ckpt_dir} cannot be read ({type(cause).__name__}: "
         f"{reason}); moved to {dest}, trying the next older one")
  probe.close()
  return init_state(s), 0


def resolve_seed_map(how: str) -> str:
  """'vmap' or 'unroll' (config.train.seed_map); 'auto': unroll on CPU, vmap elsewhere."""
  if how == "auto":
    return "unroll" if jax.default_backend() == "cpu" else "vmap"
  if how not in ("vmap", "unroll"):
    raise UserError(f"train.seed_map={how!r}: expected auto, vmap or unroll")
  return how


def _is_none(x) -> bool:
  return x is None


def map_seeds(fn, in_axes, out_axes, k: int, how: str):
  """fn over a seed axis, as jax.vmap(fn, in_axes, out_axes) (axes 0 or None, as prefix trees).
  'unroll' calls fn once per seed on its slices and stacks the results: each call is a one-seed
  program, so XLA:CPU compiles its ordinary (not grouped) convolutions; outputs at axis None
  (the shared step counter) are seed 0's."""
  if how == "vmap":
    return jax.vmap(fn, in_axes=in_axes, out_axes=out_axes)

  def take(tree, axes, i):
    return jax.tree.map(lambda ax, sub: sub if ax is None else jax.tree.map(lambda x: x[i], sub),
                        axes, tree, is_leaf=_is_none)

  def stack(trees, axes):
    return jax.tree.map(lambda ax, *subs: subs[0] if ax is None else
                        jax.tree.map(lambda *xs: jnp.stack(xs), *subs), axes, *trees, is_leaf=_is_none)

  def unrolled(*args):
    outs = [fn(*(take(a, ax, i) for a, ax in zip(args, in_axes))) for i in range(k)]
    return tuple(stack([o[j] for o in outs], ax) for j, ax in enumerate(out_axes))

  return unrolled


def compile_step(s: Setup):
  """The jitted train step: batch sharded over 'data', state replicated, old state donated.

  K seeds: the step mapped over (state, batch, key) (map_seeds: vmapped, or unrolled on CPU),
  seed i's key fold_in(its train key, step) as in a one-seed run; every metric comes back [K]."""
  if s.num_seeds > 1:
    train_keys = jax.vmap(lambda k: jax.random.fold_in(k, 0x57E9))(s.root_keys)
    axes = seed_axes(s)

    def one_seed(state, batch, key):
      return s.method.train_step(state, batch, jax.random.fold_in(key, state.step))

    seeds_step = map_seeds(one_seed, (axes, 0 if s.per_seed_data else None, 0), (axes, 0),
                           s.num_seeds, resolve_seed_map(s.config.train.get("seed_map", "auto")))
    step = lambda state, batch: seeds_step(state, batch, train_keys)
  else:
    train_key = jax.random.fold_in(s.root_key, 0x57E9)

    def step(state, batch):
      return s.method.train_step(state, batch, jax.random.fold_in(train_key, state.step))

  return jax.jit(step, in_shardings=(s.replicated, s.batch_sharding),
                 out_shardings=(s.replicated, s.replicated), donate_argnums=(0,))


# ---------------------------------------------------------------- loop

def _bad(name: str, value: float, sentinels) -> bool:
  """Non-finite, except a selection sentinel's infinity (never its NaN)."""
  return math.isnan(value) or (math.isinf(value) and name not in sentinels)


def host_metrics(s: Setup, metrics) -> tuple[dict, str, str]:
  """(metrics as floats, the first non-finite one as 'name=value[ in seed i]' or '', a note).

  K seeds: each metric's mean under its name and seed i's value under name/seed<i>; the
  non-finite one named is the first seed's ('loss' checked first); the note lists every seed
  that is non-finite when there are several. Method.sentinels may be infinite (not NaN)."""
  got, sent = jax.device_get(metrics), tuple(s.method.sentinels)
  if s.num_seeds == 1:
    out = {k: float(v) for k, v in got.items()}
    bad = next((k for k in sorted(out, key=lambda k: k != "loss") if _bad(k, out[k], sent)), "")
    return out, f"{bad}={out[bad]}" if bad else "", ""
  per = {k: np.asarray(v, np.float64).reshape(s.num_seeds) for k, v in got.items()}
  names = sorted(per, key=lambda k: k != "loss")
  broken = [i for i in range(s.num_seeds) if any(_bad(k, per[k][i], sent) for k in names)]
  if broken:
    i = broken[0]
    name = next(k for k in names if _bad(k, per[k][i], sent))
    note = f" (non-finite in seeds {', '.join(map(str, broken))})" if len(broken) > 1 else ""
    return {}, f"{name}={per[name][i]} in seed {i}", note
  out = {}
  for k, v in per.items():
    out[k] = float(v.mean())
    out.update({f"{k}/seed{i}": float(x) for i, x in enumerate(v)})
  return out, "", ""


def compile_state_check(s: Setup):
  """A jitted state -> {top-level field: whether all its floating leaves are finite}: the guard
  looks at the state itself, so a checkpoint is never written from non-finite parameters (the
  loss of a step is computed before its update). Method.sentinels' fields may be infinite."""
  sentinels = set(s.method.sentinels)

  def check(state):
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
      if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
        continue
      name = jax.tree_util.keystr(path[:1]).strip(".[]'\"")
      ok = ~jnp.any(jnp.isnan(leaf)) if name in sentinels else jnp.all(jnp.isfinite(leaf))
      out[name] = out[name] & ok if name in out else ok
    return out

  return jax.jit(check)


def nonfinite_fields(check, state) -> list[str]:
  return sorted(k for k, ok in jax.device_get(check(state)).items() if not bool(ok))


# ---------------------------------------------------------------- K seeds: evaluation and summary

def _scalar(v) -> float:
  try:
    return float(v)
  except (TypeError, ValueError):
    return float("nan")


def evaluate_seeds(fn, s: Setup, states: list, workdir: str) -> dict[str, list[float]]:
  """fn(seed i's state, data, workdir/seed_<i>) for every seed -> {name: [K values]}
  (a name a seed did not return counts as NaN for that seed)."""
  results = []
  for i, st in enumerate(states):
    seed_dir = seed_report_dir(workdir, i)
    os.makedirs(seed_dir, exist_ok=True)
    results.append(fn(st, s.data, seed_dir))
  names = list(dict.fromkeys(k for r in results for k in r))
  return {k: [_scalar(r.get(k, float("nan"))) for r in results] for k in names}


def seed_entries(prefix: str, per_seed: dict) -> dict:
  """{prefix/name: mean over seeds} and {prefix/name/seed<i>: seed i's value}."""
  from affectjax.evaluate import seeds as seeds_lib  # scipy: imported only for K seeds
  out = {}
  for k, values in per_seed.items():
    out[f"{prefix}/{k}"] = seeds_lib.summarize(values)["mean"]
    out.update({f"{prefix}/{k}/seed{i}": v for i, v in enumerate(values)})
  return out


def json_safe(x):
  """x with non-finite floats as None (JSON has no NaN), lists and dicts walked."""
  if isinstance(x, dict):
    return {k: json_safe(v) for k, v in x.items()}
  if isinstance(x, (list, tuple)):
    return [json_safe(v) for v in x]
  if isinstance(x, float) and not math.isfinite(x):
    return None
  return x


def _decimals(values) -> int:
  """Decimals that show about 4 significant digits of the mean."""
  from affectjax.evaluate import seeds as seeds_lib
  mean = seeds_lib.summarize(values)["mean"]
  if not math.isfinite(mean) or mean == 0:
    return 3
  return min(8, max(2, 3 - math.floor(math.log10(abs(mean)))))


def write_seed_summary(s: Setup, workdir: str, table: dict[str, list[float]]) -> None:
  """workdir/seeds.md (mean [95 % interval] and each seed's value) and seeds.json (the same
  with affectjax.evaluate.seeds.summarize's fields and the per-seed values, null for NaN)."""
  from affectjax.evaluate import seeds as seeds_lib
  c, k = s.config, s.num_seeds
  seeds = [c.seed + first_seed(c) + i for i in range(k)]
  order = ("config.seed's order, shared by every seed" if s.shared_data_order
           else "seed i reads the order of config.seed + train.first_seed + i")
  rows = {name: {**seeds_lib.summarize(v), "per_seed": list(v)} for name, v in table.items()}
  with open(os.path.join(workdir, "seeds.json"), "w") as f:
    json.dump(json_safe({"method": c.method, "variant": c.variant, "num_seeds": k, "seeds": seeds,
                          "shared_data_order": s.shared_data_order, "metrics": rows}), f, indent=1)
  lines = [f"# {c.method} ({c.variant}): {k} seeds\n",
           f"Mean over the seeds with its 95 % interval (Student t). Seed i: root key "
           f"config.seed + train.first_seed + i ({', '.join(map(str, seeds))}); data order: {order}; the data set is "
           f"config.seed's for every seed. Each seed's own tables are in seed_<i>/; per-seed "
           f"values also in seeds.json.\n",
           "| metric | mean [95 % interval] | " + " | ".join(f"seed {i}" for i in range(k)) + " |",
           "|---|---|" + "---|" * k]
  for name, values in table.items():
    d = _decimals(values)
    cells = [f"{v:.{d}f}" if math.isfinite(v) else "—" for v in values]
    lines.append(f"| {name} | {seeds_lib.cell(values, d)} | " + " | ".join(cells) + " |")
  with open(os.path.join(workdir, "seeds.md"), "w") as f:
    f.write("\n".join(lines) + "\n")


def _finish_seeds(s: Setup, state, workdir: str, writer) -> dict:
  """K seeds' final evaluation and report, each into workdir/seed_<i>/, then seeds.md and
  seeds.json; returns every scalar's mean over the seeds."""
  from affectjax.evaluate import seeds as seeds_lib
  c = s.config.train
  states = seed_states(s, state)
  table = {}
  if s.method.evaluate is not None:
    ev = evaluate_seeds(s.method.evaluate, s, states, workdir)
    writer.write(c.num_steps, seed_entries("eval", ev))
    table.update({f"eval/{k}": v for k, v in ev.items()})
  if c.report and s.method.report is not None and is_writer():
    rep = evaluate_seeds(s.method.report, s, states, workdir)
    table.update({f"report/{k}": v for k, v in rep.items()})
  if table and is_writer():
    write_seed_summary(s, workdir, table)
  return {k: seeds_lib.summarize(v)["mean"] for k, v in table.items()}


def _diverged(ckpt, workdir: str, what: str, step: int) -> TrainingDiverged:
  ckpt.wait_until_finished()
  kept = ckpt.latest_step()
  return TrainingDiverged(
      f"non-finite {what} at step {step}; stopped. The last good checkpoint "
      f"({'step ' + str(kept) if kept is not None else 'none'}) in {workdir}/checkpoints is "
      f"kept unchanged: rerun with a smaller --config.optim.lr (or other optim settings) to "
      f"resume from it")


def _loop(s: Setup, state, start: int, ckpt, writer, progress, workdir: str):
  """Steps start+1 .. num_steps: log with the NaN guard (metrics and the state itself),
  checkpoint (only a state the guard passed), periodic evaluation. Returns (state, the last
  logged metrics)."""
  c, evaluate = s.config.train, s.method.evaluate
  step_fn, state_check = compile_step(s), compile_state_check(s)
  batches = input_batches(s, start)
  last_metrics, t0, t_steps = {}, time.perf_counter(), 0
  for step in range(start + 1, c.num_steps + 1):
    state, metrics = step_fn(state, to_global(s, next(batches)))
    t_steps += 1
    is_ckpt = c.checkpoint_every and (step % c.checkpoint_every == 0 or step == c.num_steps)
    if step % c.log_every == 0 or is_ckpt or step == c.num_steps:
      metrics, bad, note = host_metrics(s, metrics)
      if bad:
        raise _diverged(ckpt, workdir, bad + note, step)
      broken = nonfinite_fields(state_check, state)
      if broken:  # the loss was computed before this step's update; the update broke the state
        raise _diverged(ckpt, workdir, f"state ({', '.join(broken)}; loss {metrics.get('loss')})",
                        step)
      elapsed = time.perf_counter() - t0
      metrics["steps_per_sec"] = t_steps / max(elapsed, 1e-9)
      if s.num_seeds > 1:
        metrics["seed_steps_per_sec"] = s.num_seeds * metrics["steps_per_sec"]
      writer.write(step, metrics)
      last_metrics, t0, t_steps = metrics, time.perf_counter(), 0
      if progress is not None:
        progress.set_postfix(loss=f"{metrics['loss']:.4g}")
    if is_ckpt:  # the state was checked above, at this same step
      ckpt.save(step, args=ocp.args.StandardSave(state))
    # periodic evaluation; the last step's is the final evaluation below (run once)
    if c.eval_every and step % c.eval_every == 0 and step < c.num_steps and evaluate is not None:
      if s.num_seeds > 1:
        writer.write(step, seed_entries("eval", evaluate_seeds(evaluate, s, seed_states(s, state),
                                                               workdir)))
      else:
        writer.write(step, {f"eval/{k}": v for k, v in evaluate(host_state(state), s.data, workdir).items()})
    if progress is not None:
      progress.update(1)
  ckpt.wait_until_finished()
  return state, last_metrics


def train_and_evaluate(config, workdir: str, **overrides):
  """Trains config.method for config.train.num_steps (resuming from workdir) and evaluates.

  overrides: objective= / objectives= (affectjax.objective) and the method's own keywords. Returns (state, metrics): the
  final state and the last logged training metrics merged with the final evaluation and report.
  With K seeds the state has the seed axis, the training metrics carry name/seed<i> beside each
  mean, and every evaluation/report scalar is the mean over the seeds (seeds.json has the rest).

  One run per workdir at a time (workdir/.affectjax.lock); a full disk or a read-only workdir
  stops the run with one WorkdirError line and leaves what was written before as it was.
  """
  validate(config)  # before anything slow or written: a bad config is one clear line
  check_workdir(workdir)
  try:
    with workdir_lib.lock(workdir, enabled=is_writer()):
      return _train_and_evaluate(config, workdir, **overrides)
  except UserError:
    raise
  except Exception as e:  # noqa: BLE001 - only the filesystem's errors are translated
    disk = workdir_lib.disk_error(e)
    if disk is None:
      raise
    raise WorkdirError(workdir_lib.describe_disk_error(disk, workdir)) from None


def train_prerequisites(method, workdir: str) -> None:
  """Trains (or resumes) every run the method's evaluation needs (Method.prerequisites) that is
  not already in its directory, and lets the method save its result there."""
  for pre in method.prerequisites:
    d = pre.workdir(workdir_lib.run_workdir(workdir))
    if pre.ready(d):
      continue
    print(f"training {pre.name} in {d} (this run's evaluation needs it)", flush=True)
    state, metrics = train_and_evaluate(pre.config, d, **dict(pre.overrides))
    if is_writer():
      pre.save(d, host_state(state), metrics)


def _train_and_evaluate(config, workdir: str, **overrides):
  c = config.train
  ckpt_dir = os.path.join(os.path.abspath(workdir), "checkpoints")
  if os.path.isdir(ckpt_dir) and any(d.isdigit() for d in os.listdir(ckpt_dir)):
    workdir_lib.check_resume_config(workdir, config)  # before data is loaded or anything compiled
  s = _build(config, **overrides)  # validated by train_and_evaluate, before the workdir
  if s.method.evaluate is not None or s.method.report is not None:  # what evaluation needs, only
    train_prerequisites(s.method, workdir)
  state, start = restore_or_init(s, workdir, ckpt_dir)
  if start > c.num_steps:
    raise WorkdirError(
        f"{workdir}/checkpoints holds step {start}, beyond config.train.num_steps={c.num_steps}: "
        f"nothing to train. Pass --config.train.num_steps={start} (or more) to evaluate or "
        f"continue that run, or use a new --workdir")
  if start:
    print(f"resuming from the checkpoint at step {start} in {workdir}", flush=True)
  ckpt = ocp.CheckpointManager(
      ckpt_dir, options=ocp.CheckpointManagerOptions(max_to_keep=c.keep_checkpoints, create=True))
  writers = []
  if is_writer():
    workdir_lib.write_atomic(os.path.join(workdir, workdir_lib.CONFIG),
                             config.to_json_best_effort(indent=2))
    writers = [metric_writers.JsonlWriter(workdir, resume_step=start),
               metric_writers.TensorBoardWriter(workdir)]
  writer = metric_writers.MultiWriter(writers)
  progress = None
  if c.progress and is_writer():
    from tqdm import tqdm
    progress = tqdm(total=c.num_steps, initial=start, desc=config.method, unit="step",
                    dynamic_ncols=True)
  try:
    state, last_metrics = _loop(s, state, start, ckpt, writer, progress, workdir)
  finally:  # Ctrl-C or an error: a checkpoint being written is finished, not lost
    with contextlib.suppress(Exception):
      ckpt.wait_until_finished()
      ckpt.close()
    if progress is not None:
      progress.close()

  evaluate = s.method.evaluate
  final = dict(last_metrics)
  if s.num_seeds > 1:
    final.update(_finish_seeds(s, state, workdir, writer))
    return state, final
  local = host_state(state)
  if evaluate is not None:
    ev = {f"eval/{k}": v for k, v in evaluate(local, s.data, workdir).items()}
    writer.write(c.num_steps, ev)
    final.update(ev)
  if c.report and s.method.report is not None and is_writer():
    final.update({f"report/{k}": v for k, v in s.method.report(local, s.data, workdir).items()})
  return state, final
