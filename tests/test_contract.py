"""The method contract, for every method of methods.REGISTRY on its tiny config: exact resume,
K = 2 seeds equal to the one-seed runs of their keys and data orders (seed 1's on 8 fake devices,
so one run checks both the seeds and the devices),
an injected objective (the default with one player's loss doubled) doubling that player's first
SGD update and leaving the others', and the evaluation's keys present after a run."""
import dataclasses
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from affectjax import methods, train
from affectjax.objective import Out
from conftest import REPO, agree_from_some_seed, load_config, run_killed_at, seeded, with_fields

METHODS = sorted(os.environ.get("AFFECTJAX_CONTRACT", "").split(",") if os.environ.get("AFFECTJAX_CONTRACT") else methods.REGISTRY)
STEPS, CHECKPOINT = 4, 2


def contract_config(name, **fields):
  """The tiny config with batches that split over 8 devices, STEPS steps, a checkpoint every
  CHECKPOINT, no report; fields as section__field=value."""
  c = load_config(name, "tiny")
  c.train.report = False
  c.train.batch_size = 8
  c.train.num_steps, c.train.checkpoint_every, c.train.log_every = STEPS, CHECKPOINT, CHECKPOINT
  c.train.eval_every = 0
  if "epochs" in c.train:
    c.train.epochs = 0  # train.num_steps as given
  if "triplets" in c:
    c.triplets.batch_size = 8
  return with_fields(c, **fields)


def sgd(name, **fields):
  """SGD: Adam turns the rounding of a near-zero gradient into a whole lr step, which would hide
  the comparisons below behind their tolerance."""
  return contract_config(name, optim__name="sgd", optim__b1=0.0, optim__lr=1e-6, **fields)


def run_steps(s, n=STEPS, keep=None):
  """n steps of the loop's own pieces: (final state, losses [n] or [n, K]); with keep=k, also
  the state after step k on the host."""
  state, step = train.init_state(s), train.compile_step(s)
  batches, losses, kept = train.input_batches(s, 0), [], None
  for i in range(n):
    state, metrics = step(state, train.to_global(s, next(batches)))
    losses.append(np.asarray(metrics["loss"]))
    if i + 1 == keep:
      kept = train.host_state(state)
  return (state, np.stack(losses)) if keep is None else (state, np.stack(losses), kept)


def leaves(state):
  return [np.asarray(x) for x in jax.tree.leaves(train.host_state(state))]


def assert_close(a, b, rtol=1e-4, atol=1e-5):
  """Leaf by leaf, atol relative to the leaf's largest magnitude (float32 rounding)."""
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    x, y = np.asarray(x), np.asarray(y)
    if not np.issubdtype(y.dtype, np.floating):
      np.testing.assert_array_equal(x, y)
      continue
    finite = np.isfinite(y)
    np.testing.assert_array_equal(np.isfinite(x), finite)  # e.g. a selection's -inf sentinel
    scale = max(1.0, float(np.max(np.abs(y[finite])))) if finite.any() else 1.0
    np.testing.assert_allclose(x[finite], y[finite], rtol=rtol, atol=atol * scale)


def one_seed_reference(config, i):
  """The one-seed run of seed i: config.seed's data set, root key and data order config.seed + i."""
  base = train.setup(seeded(sgd(config.method), config.seed))
  c = seeded(sgd(config.method), config.seed + i)
  return dataclasses.replace(base, config=c, root_key=jax.random.key(config.seed + i))


_DEVICES_SCRIPT = r"""
import sys, numpy as np, jax
sys.path[:0] = [{repo!r}, {tests!r}]
from conftest import seeded
from test_contract import sgd, run_steps, leaves, one_seed_reference
from affectjax import train
assert jax.device_count() == 8
with jax.threefry_partitionable(False):
  state, losses = run_steps(one_seed_reference(seeded(sgd(sys.argv[2]), int(sys.argv[3])), 1))
np.savez(sys.argv[1], *leaves(state), loss=losses)
"""


def on_eight_devices(name, seed, tmp_path):
  """(leaves, losses) of STEPS SGD steps of `name`'s one-seed run of seed 1 (one_seed_reference)
  from config.seed = seed, on 8 fake devices (a subprocess)."""
  tmp_path.mkdir(parents=True, exist_ok=True)
  (tmp_path / "run.py").write_text(_DEVICES_SCRIPT.format(repo=REPO, tests=os.path.join(REPO, "tests")))
  env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "out.npz"), name, str(seed)],
                 env=env, check=True, cwd=REPO)
  got = np.load(tmp_path / "out.npz")
  return [got[k] for k in got.files if k.startswith("arr_")], got["loss"]


def injected_update_check(s, default_one_step):
  """The default objective with the last phase's last player's loss doubled: that player's first
  SGD update doubles; every other player of that phase moves as with the default."""
  phase = s.method.phases[-1]
  player = phase.players[-1]

  def doubled(params, aux, batch, key, step, ctx):
    out = phase.objective(params, aux, batch, key, step, ctx)
    return Out({**out.losses, player: 2.0 * out.losses[player]}, out.metrics, out.aux)

  injected = train.setup(sgd(s.config.method), objectives={phase.name: doubled})
  mine = train.host_state(run_steps(injected, 1)[0]).params
  start = train.host_state(train.init_state(s)).params

  def update(params, who):
    moved = jax.tree.map(lambda a, b: np.asarray(a, np.float64) - np.asarray(b, np.float64),
                         params[who], start[who])
    return np.concatenate([x.ravel() for x in jax.tree.leaves(moved)])

  def ulp(who):  # float32 spacing at the start: the rounding of p + update, per parameter
    return np.concatenate([np.spacing(np.abs(np.asarray(x, np.float32))).ravel().astype(np.float64)
                           for x in jax.tree.leaves(start[who])])

  for who in phase.players:
    predicted = (2.0 if who == player else 1.0) * update(default_one_step.params, who)
    tol = 1e-3 * np.abs(predicted).max() + 4 * ulp(who)
    assert (np.abs(predicted) > 10 * tol).any(), f"{who}'s update is below float32 resolution"
    bad = np.abs(update(mine, who) - predicted) > tol
    assert not bad.any(), (who, int(bad.sum()), update(mine, who)[bad][:5], predicted[bad][:5])


def seeds_and_devices_check(name, seed, tmp_path, one=None):
  """K = 2 seeds from config.seed = seed: seed 0 equals the one-seed run of `seed` (`one`:
  run_steps' (state, losses) of it, when already run) and seed 1 the one-seed run of seed + 1 run
  on 8 fake devices (one compilation for both checks: seed 1 on 1 device in the K-seed run equals
  it on 8 within the devices' float32 tolerance). Vmapped: the method's ops under batching are
  what can differ by method (GPU/TPU's path); CPU's default unrolled map is method-agnostic
  plumbing, checked against vmap in tests/test_seeds.py."""
  state, losses = one or run_steps(train.setup(seeded(sgd(name), seed)))
  k = train.setup(seeded(sgd(name, train__num_seeds=2, train__seed_map="vmap"), seed))
  k_state, k_losses = run_steps(k)
  seeds = train.seed_states(k, k_state)
  np.testing.assert_allclose(k_losses[:, 0], losses, rtol=1e-5)
  assert_close(seeds[0], train.host_state(state))
  assert abs(k_losses[0, 0] - k_losses[0, 1]) > 1e-6 * abs(k_losses[0, 0])  # two models
  got, got_losses = on_eight_devices(name, seed, tmp_path)
  np.testing.assert_allclose(got_losses, k_losses[:, 1], rtol=1e-5)
  assert_close(got, [np.asarray(x) for x in jax.tree.leaves(seeds[1])], rtol=2e-4, atol=2e-6)


@pytest.mark.parametrize("name", METHODS)
def test_the_method_contract(name, tmp_path, monkeypatch):
  with jax.threefry_partitionable(False):  # XLA:CPU compiles GANmut's partitionable PRNG far slower
    s = train.setup(sgd(name))
    state, losses, one = run_steps(s, keep=1)

    # an injected objective moves its player as predicted
    injected_update_check(s, one)

    # K = 2 seeds (seeds_and_devices_check), from another seed too where the first disagrees
    seed = s.config.seed
    agree_from_some_seed(
        lambda sd: seeds_and_devices_check(name, sd, tmp_path / f"seeds{sd}",
                                           (state, losses) if sd == seed else None),
        seed, f"{name}: K seeds vs one-seed runs")

    # the loop killed just before step CHECKPOINT + 1 (its checkpoint at CHECKPOINT is what a
    # killed process leaves) and rerun ends on the straight run's state exactly, and evaluates
    run_killed_at(sgd(name), str(tmp_path / "killed"), CHECKPOINT + 1, monkeypatch)
    resumed, metrics = train.train_and_evaluate(sgd(name), str(tmp_path / "killed"))
  evals = {k_: v for k_, v in metrics.items() if k_.startswith("eval/")}
  assert evals and any(np.isfinite(v) for v in evals.values()), metrics
  for a, b in zip(leaves(state), leaves(resumed)):
    np.testing.assert_array_equal(a, b)
