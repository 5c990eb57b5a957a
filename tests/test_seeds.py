"""K seeds in one program (config.train.num_seeds), beyond what tests/test_contract.py checks for
every method (each seed is the one-seed run of its keys and data order; 1 vs 8 devices): GANmut's
shared data order, the NaN guard naming the seed, exact resume, per-seed evaluation, seeds table."""
import dataclasses
import json
import math
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest
from scipy import stats

from affectjax import train
from conftest import agree_from_some_seed, load_config, seeded, with_fields

STEPS = 2


def make_config(name, arg="tiny", **fields):
  c = load_config(name, arg)
  c.train.report = False
  return with_fields(c, **fields)


def run_steps(s, n=STEPS):
  """n steps of the loop's own pieces: (final state, losses [n] or [n, K])."""
  state, step = train.init_state(s), train.compile_step(s)
  batches, losses = train.input_batches(s, 0), []
  for _ in range(n):
    state, metrics = step(state, train.to_global(s, next(batches)))
    losses.append(np.asarray(metrics["loss"]))
  return state, np.stack(losses)


def one_seed_reference(config, i):
  """The one-seed run of seed i on config.seed's data set: root key config.seed + i and the
  data order of config.seed + i (of config.seed with train.shared_data_order)."""
  same = dict(optim__name=config.optim.name, optim__lr=config.optim.lr)
  c = make_config(config.method, "tiny", **same)
  base = train.setup(c)
  if not config.train.shared_data_order:
    c = make_config(config.method, "tiny", **same)
    c.seed = config.seed + i
  return dataclasses.replace(base, config=c, root_key=jax.random.key(config.seed + i))


def assert_trees_close(a, b, rtol=1e-4, atol=1e-5):
  """Leaf by leaf, atol relative to the leaf's largest magnitude (float32 rounding)."""
  la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    x, y = np.asarray(x), np.asarray(y)
    scale = max(1.0, float(np.max(np.abs(y)))) if y.size else 1.0
    np.testing.assert_allclose(x, y, rtol=rtol, atol=atol * scale)


def test_vmapped_and_unrolled_seeds_train_the_same_models():
  """train.seed_map: the vmapped step (accelerators) and the unrolled one (CPU's default, which
  tests/test_contract.py runs for every method) give each seed the same updates."""
  def check(seed):
    got = {}
    for how in ("vmap", "unroll"):
      s = train.setup(seeded(make_config("levasa", train__num_seeds=2, train__seed_map=how,
                                         optim__name="sgd"), seed))
      state, losses = run_steps(s)
      got[how] = (train.seed_states(s, state), losses)
    np.testing.assert_allclose(got["vmap"][1], got["unroll"][1], rtol=1e-5)
    assert abs(got["unroll"][1][0, 0] - got["unroll"][1][0, 1]) > 1e-6  # two different models
    for a, b in zip(got["vmap"][0], got["unroll"][0]):
      assert_trees_close(a, b)

  agree_from_some_seed(check, load_config("levasa", "tiny").seed, "vmapped vs unrolled seeds")
  with pytest.raises(train.UserError, match="train.seed_map='loop'"):
    train.validate(make_config("levasa", train__seed_map="loop"))


@pytest.mark.skipif(not os.environ.get("AFFECTJAX_SLOW"), reason="an option of the K-seed path (tests/test_contract.py runs the default on every method): AFFECTJAX_SLOW=1")
def test_shared_data_order_seed_one_is_the_one_seed_run_of_its_keys():
  # the loop's option, the same for every method (tests/test_contract.py runs every method's
  # K seeds with their own data orders): LeVAsa, the cheapest to compile
  c = make_config("levasa", train__num_seeds=2, train__shared_data_order=True, optim__name="sgd")
  s = train.setup(c)
  assert s.batch_sharding.spec == jax.sharding.PartitionSpec("data")  # one batch for both seeds
  assert train.first_batch(s)["data"]["image"].shape[0] == c.train.batch_size
  state, losses = run_steps(s)
  ref_state, ref_losses = run_steps(one_seed_reference(c, 1))
  states = train.seed_states(s, state)
  np.testing.assert_allclose(losses[:, 1], ref_losses, rtol=1e-5)
  assert_trees_close(states[1], train.host_state(ref_state))
  assert abs(losses[0, 0] - losses[0, 1]) > 1e-4 * abs(losses[0, 0])


def test_nan_in_one_seed_names_it_keeps_the_checkpoint_and_the_run_resumes_exactly(tmp_path, monkeypatch):
  whole, _ = run_steps(train.setup(make_config("levasa", train__num_seeds=2)), 20)

  # A NaN image in seed 1's batch of step 13: seed 1 diverges, seed 0 does not.
  real_batches = train.input_batches

  def poisoned_batches(s, start):
    for i, batch in enumerate(real_batches(s, start)):
      if start + i + 1 == 13:
        batch["data"]["image"][1] = np.nan
      yield batch

  workdir = str(tmp_path / "run")
  monkeypatch.setattr(train, "input_batches", poisoned_batches)
  with pytest.raises(train.TrainingDiverged,
                     match=r"^non-finite loss=nan in seed 1 at step 15; .*checkpoint \(step 10\)"):
    train.train_and_evaluate(make_config("levasa", train__num_seeds=2), workdir)
  monkeypatch.setattr(train, "input_batches", real_batches)
  mgr = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
  assert mgr.all_steps() == [10]
  kept = mgr.restore(10, args=ocp.args.StandardRestore())
  mgr.close()
  assert all(np.isfinite(x).all() for x in jax.tree.leaves(kept["params"]))
  assert np.shape(jax.tree.leaves(kept["params"])[0])[0] == 2  # the seed axis

  # The same command again resumes from step 10 and ends where the uninterrupted run ended.
  resumed = train.train_and_evaluate(make_config("levasa", train__num_seeds=2, train__report=True),
                                     workdir)
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, whole.params),
               jax.tree.map(np.asarray, resumed[0].params))

  # metrics.jsonl: each seed's loss and their mean
  rows = [json.loads(l) for l in open(os.path.join(workdir, "metrics.jsonl"))]
  last = [r for r in rows if "loss" in r][-1]
  assert last["step"] == 20
  np.testing.assert_allclose(last["loss"], (last["loss/seed0"] + last["loss/seed1"]) / 2, rtol=1e-6)
  assert last["loss/seed0"] != last["loss/seed1"]

  # per-seed evaluation and report, and the seeds table: mean [95 % interval] over the 2 seeds
  metrics = resumed[1]
  for i in range(2):
    assert os.path.exists(os.path.join(workdir, f"seed_{i}", "levasa_report.md"))
  summary = json.load(open(os.path.join(workdir, "seeds.json")))
  assert summary["num_seeds"] == 2 and summary["seeds"] == [0, 1]
  for name in ("eval/pixel_mse", "report/align_mse_combined"):
    row = summary["metrics"][name]
    v = np.asarray(row["per_seed"])
    half = stats.t.ppf(0.975, 1) * v.std(ddof=1) / math.sqrt(2)
    np.testing.assert_allclose([row["mean"], row["lo"], row["hi"]],
                               [v.mean(), v.mean() - half, v.mean() + half], rtol=1e-9)
    assert metrics[name] == pytest.approx(v.mean(), rel=1e-12)
  eval_row = [r for r in rows if "eval/pixel_mse" in r][-1]
  assert eval_row["eval/pixel_mse/seed1"] == pytest.approx(summary["metrics"]["eval/pixel_mse"]["per_seed"][1])
  md = open(os.path.join(workdir, "seeds.md")).read()
  assert "| eval/pixel_mse |" in md and "| metric | mean [95 % interval] | seed 0 | seed 1 |" in md



def test_first_seed_shifts_keys_and_own_data_orders_not_a_shared_one():
  """train.first_seed = f: root key and data order of config.seed + f (the seeds a runner adds);
  a one-seed block of a shared-order run still reads config.seed's order, as its N-seed program."""
  batch = lambda s: train.first_batch(s)["data"]["image"]
  plain = train.setup(make_config("levasa"))
  shifted = train.setup(make_config("levasa", train__first_seed=2))
  moved = make_config("levasa")
  moved.seed = 2  # the order and key of seed 2, on config.seed 0's data set below
  reference = dataclasses.replace(plain, config=moved)
  np.testing.assert_array_equal(batch(shifted), batch(reference))
  assert not np.array_equal(batch(shifted), batch(plain))
  assert jax.random.key_data(shifted.root_key).tolist() == jax.random.key_data(jax.random.key(2)).tolist()
  shared = train.setup(make_config("levasa", train__first_seed=2, train__shared_data_order=True))
  np.testing.assert_array_equal(batch(shared), batch(plain))
