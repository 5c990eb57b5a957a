"""Objectives and the one multi-player training step every method uses.

An objective is a pure function

    objective(params, aux, batch, key, step, ctx) -> Out(losses, metrics, aux)

- params: {player: parameters}, every player's (a GAN's generator loss reads D's parameters);
- aux: auxiliary state the objective updates, such as batch statistics (None when there is none);
- batch: {stream name: arrays} (see methods/base.py Stream);
- key: this step's PRNG key; split it by purpose inside. Every phase of a step receives the same
  key, so phases that must draw independently take different parts of one split;
- step: the training step (int32 scalar) before this update, for annealing schedules;
- ctx: the method's fixed context (networks, config, class weights, ...), built once by
  make_method and never traced.

Out.losses maps each player of the phase to the scalar that player minimises (a player that
ascends an objective gets its negation). Players given the very same array share one backward
pass (sRb-VAE's encoders and generator both minimise M). Out.metrics is a flat dict of scalars;
Out.aux the new auxiliary state (None: unchanged).

A method trains as a sequence of Phases. Each due phase calls its objective once on the current
parameters (those updated by the earlier phases of the same step), takes every one of its
players' gradient of that player's loss with respect to the player's own parameters, and moves
each player with its affectjax.optim.Player at the rate of the training step. A phase with
every=k runs when (step + 1) % k == 0 (GANmut's generator, n_critic = k); a phase that is not due
leaves its players as they were and reports zeros for its metrics.

Objectives are injectable the same way for every method: from Python,
`train.train_and_evaluate(config, workdir, objective=fn)` (a method with one phase) or
`objectives={phase: fn}`; from the command line `--config.loss.fn=package.module:function` (the
method's first phase) and `--config.loss.<phase>_fn=...` for the others (GANmut: g_fn).
"""
from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence

import flax
import jax
import jax.numpy as jnp

from affectjax.errors import UserError
from affectjax.nn import cpu


class Out(NamedTuple):
  losses: Mapping[str, jax.Array]  # {player: the scalar it minimises}
  metrics: Mapping[str, jax.Array]
  aux: Any = None  # the new auxiliary state; None: unchanged


@flax.struct.dataclass
class State:
  """The state of a method trained by `make_step`: the step, {player: parameters},
  {player: optimiser state} and the objectives' auxiliary state. Methods with more state
  (a selection's best parameters) use their own dataclass with these four fields and more."""
  step: jax.Array
  params: Any
  opt_state: Any
  aux: Any = None


@dataclasses.dataclass(frozen=True)
class Phase:
  """One call of `objective` and an update of `players` (their names in params); run when
  (step + 1) % every == 0. name: how the objective is injected (config.loss.fn for the first
  phase, config.loss.<name>_fn for the others)."""
  name: str
  objective: Callable[..., Out]
  players: Sequence[str]
  every: int = 1


# ---------------------------------------------------------------- injection

def config_field(phases: Sequence[Phase], name: str) -> str:
  """The config.loss field that names phase `name`'s objective."""
  return "fn" if name == phases[0].name else f"{name}_fn"


def import_function(spec: str) -> Callable:
  """The function named by 'package.module:function' (ValueError/ImportError otherwise)."""
  module, sep, name = spec.partition(":")
  if not sep or not module or not name:
    raise ValueError("expected 'package.module:function'")
  fn = getattr(importlib.import_module(module), name, None)
  if not callable(fn):
    raise ValueError(f"{module} has no function {name!r} (expected 'package.module:function')")
  return fn


def check_config(config, phase_names: Sequence[str]) -> None:
  """Every objective named in config.loss imports (one ConfigError line otherwise)."""
  from affectjax.config import ConfigError
  for i, name in enumerate(phase_names):
    field = "fn" if i == 0 else f"{name}_fn"
    spec = config.loss.get(field, "")
    if spec:
      try:
        import_function(spec)
      except (ImportError, ValueError) as e:
        raise ConfigError(f"config.loss.{field}={spec!r}: {e}") from None


def inject(phases: Sequence[Phase], config, objective: Optional[Callable] = None,
           objectives: Optional[Mapping[str, Callable]] = None) -> list[Phase]:
  """The phases with their objectives replaced: Python's `objective=` (one-phase methods) and
  `objectives={phase: fn}` first, then the config's loss.fn / loss.<phase>_fn."""
  names = [p.name for p in phases]
  given = dict(objectives or {})
  if objective is not None:
    if len(phases) != 1:
      raise UserError(f"objective=: {config.method} trains in {len(phases)} phases "
                      f"({', '.join(names)}); pass objectives={{phase: fn}}")
    given[names[0]] = objective
  unknown = sorted(set(given) - set(names))
  if unknown:
    raise UserError(f"objectives={unknown}: {config.method}'s phases are {', '.join(names)}")
  out = []
  for p in phases:
    fn = given.get(p.name)
    spec = config.loss.get(config_field(phases, p.name), "")
    if fn is None and spec:
      fn = import_function(spec)
    out.append(dataclasses.replace(p, objective=fn) if fn is not None else p)
  return out


# ---------------------------------------------------------------- the step

def _gradients(phase: Phase, params, aux, batch, key, step, ctx):
  """({player: gradient of its loss w.r.t. its own parameters}, metrics, new aux): one forward
  pass and one backward pass per distinct loss array."""
  groups: dict[str, int] = {}

  def forward(p):
    out = phase.objective(p, aux, batch, key, step, ctx)
    distinct: list = []
    for name in phase.players:
      loss = out.losses[name]
      index = next((i for i, d in enumerate(distinct) if d is loss), None)
      if index is None:
        distinct.append(loss)
        index = len(distinct) - 1
      groups[name] = index
    return tuple(distinct), (dict(out.metrics), out.aux)

  distinct, pullback, (metrics, new_aux) = jax.vjp(forward, params, has_aux=True)
  grads = {}
  for index in sorted(set(groups.values())):
    cot = tuple(jnp.ones_like(d) if i == index else jnp.zeros_like(d) for i, d in enumerate(distinct))
    (g,) = pullback(cot)
    grads.update({name: g[name] for name, i in groups.items() if i == index})
  return grads, metrics, new_aux


def resolve_gating(gating: str = "auto") -> str:
  """'cond' or 'masked' (see make_step); 'auto' is 'cond' unless XLA:CPU would run the skipped
  phase's convolution gradients unrewritten (nn.cpu.CANONICAL_GRADIENTS off)."""
  if gating == "auto":
    return "masked" if jax.default_backend() == "cpu" and not cpu.CANONICAL_GRADIENTS else "cond"
  return gating


def make_step(phases: Sequence[Phase], players: Mapping[str, Any], ctx=None, *,
              gating: str = "auto") -> Callable:
  """(state, batch, key) -> (state, metrics): the phases in order, each updating its players
  (affectjax.optim.Player by name) from the parameters the earlier phases left.

  gating: how a phase with every > 1 is skipped inside the one jitted step. 'cond' (lax.cond:
  computed only when due) is the fast choice everywhere now that nn.cpu's convolutions carry
  their own gradients (XLA:CPU ran lax's backward convolutions inside a conditional 5-120x slower
  than at top level, when 'masked', computed every step and kept when due, was faster there);
  'auto' resolves as resolve_gating says. Both give the same updates.
  """
  gating = resolve_gating(gating)
  for p in phases:
    missing = [n for n in p.players if n not in players]
    if missing:
      raise ValueError(f"phase {p.name!r}: no optimiser for players {missing}")

  def run_phase(phase, state, batch, key):
    grads, metrics, new_aux = _gradients(phase, state.params, state.aux, batch, key, state.step, ctx)
    params, opt = dict(state.params), dict(state.opt_state)
    for name in phase.players:
      params[name], opt[name] = players[name].update(grads[name], opt[name], params[name], state.step)
    aux = state.aux if new_aux is None else new_aux
    return state.replace(params=params, opt_state=opt, aux=aux), metrics

  def step(state, batch, key):
    metrics = {}
    for phase in phases:
      if phase.every == 1:
        state, m = run_phase(phase, state, batch, key)
      else:
        due = (state.step + 1) % phase.every == 0
        update = lambda s: run_phase(phase, s, batch, key)
        skip = lambda s: (s, jax.tree.map(jnp.zeros_like, jax.eval_shape(update, s)[1]))
        if gating == "cond":
          state, m = jax.lax.cond(due, update, skip, state)
        else:
          new, old = update(state), skip(state)
          state, m = jax.tree.map(lambda a, b: jnp.where(due, a, b), new, old)
      metrics.update({k: v for k, v in m.items() if k not in metrics})  # the first phase's wins
    return state.replace(step=state.step + 1), metrics

  return step


def init_opt_state(players: Mapping[str, Any], params) -> dict:
  """{player: its optimiser's initial state} for params {player: parameters}."""
  return {name: player.init(params[name]) for name, player in players.items()}
