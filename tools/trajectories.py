"""Record or compare every method's tiny-config training trajectory (the refactoring guard).

  python tools/trajectories.py --record=DIR    # metrics of every step and the final state, per run
  python tools/trajectories.py --compare=DIR   # rerun and compare with DIR (rtol 1e-5)

A run is one (config, overrides) of RUNS: its first STEPS training steps from train.setup's state,
with the loop's keys and data order. The comparison lists, per run, whether the metrics and the
final state are bit-identical, within rtol, or different (and the largest relative difference).
State leaves are compared in flattening order with their shapes, so a renamed field still compares.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

STEPS = 6
# (name, config file, argument, overrides)
RUNS = [
    ("levasa_vanilla", "levasa", "tiny,vanilla", {}),
    ("levasa_continuous", "levasa", "tiny,continuous", {}),
    ("levasa_discrete", "levasa", "tiny,discrete", {}),
    ("ganmut_linear", "ganmut", "tiny,linear", {}),
    ("ganmut_linear_ncritic3", "ganmut", "tiny,linear", {"optim.n_critic": 3}),
    ("ganmut_gaussian", "ganmut", "tiny,gaussian", {}),
    ("ganmut_stargan", "ganmut", "tiny,stargan", {}),
    ("triplet_vae_m2", "triplet_vae", "tiny,m2", {}),
    ("triplet_vae_m2_prior", "triplet_vae", "tiny,m2_prior", {}),
    ("triplet_vae_m1", "triplet_vae", "tiny,m1", {}),
    ("triplet_vae_vae", "triplet_vae", "tiny,vae", {}),
    ("dual_domain_euclid", "dual_domain", "tiny,euclid", {}),
    ("dual_domain_gmm", "dual_domain", "tiny,gmm", {}),
    ("dual_domain_onehot", "dual_domain", "tiny,onehot", {}),
    ("rbvae_srbvae", "rbvae", "tiny,srbvae", {}),
    ("rbvae_rbvae", "rbvae", "tiny,rbvae", {}),
    ("rbvae_vae", "rbvae", "tiny,vae", {}),
    ("rbvae_beta_vae", "rbvae", "tiny,beta_vae", {}),
    ("rbvae_svae", "rbvae", "tiny,svae", {}),
    ("rbvae_dip_vae_i", "rbvae", "tiny,dip_vae_i", {}),
    ("rbvae_dip_vae_ii", "rbvae", "tiny,dip_vae_ii", {}),
]


def load_config(name: str, arg: str):
  from affectjax import configs
  return configs.get(name, arg)


def trajectory(config, steps: int = STEPS):
  """(per-step metrics {name: [steps]}, final state leaves) of the loop's first `steps` steps."""
  import jax
  from affectjax import train
  config.train.num_steps = max(config.train.num_steps, steps)
  if "epochs" in config.train:
    config.train.epochs = 0
  s = train.setup(config)
  state = train.init_state(s)
  step = train.compile_step(s)
  batches = train.input_batches(s, 0)
  metrics = {}
  for _ in range(steps):
    state, m = step(state, train.to_global(s, next(batches)))
    for k, v in jax.device_get(m).items():
      metrics.setdefault(k, []).append(float(v))
  leaves = [np.asarray(x) for x in jax.tree.leaves(train.host_state(state))]
  return {k: np.asarray(v) for k, v in metrics.items()}, leaves


def _config(file, arg, overrides):
  c = load_config(file, arg)
  c.train.report = False
  for path, value in overrides.items():
    section, field = path.split(".")
    c[section][field] = value
  return c


def record(out: str, only) -> None:
  os.makedirs(out, exist_ok=True)
  for name, file, arg, over in RUNS:
    if only and name not in only:
      continue
    metrics, leaves = trajectory(_config(file, arg, over))
    np.savez(os.path.join(out, f"{name}.npz"), **{f"m/{k}": v for k, v in metrics.items()},
             **{f"s/{i:05d}": x for i, x in enumerate(leaves)})
    print(f"recorded {name}: loss {metrics['loss']}", flush=True)


def _rel(a, b) -> float:
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  same = (np.isnan(a) & np.isnan(b)) | (a == b)
  with np.errstate(invalid="ignore"):
    d = np.where(same, 0.0, np.abs(a - b) / np.maximum(np.abs(b), 1e-6))
  return float(np.nanmax(d)) if d.size else 0.0


def compare(ref: str, only, rtol: float) -> bool:
  ok_all = True
  for name, file, arg, over in RUNS:
    path = os.path.join(ref, f"{name}.npz")
    if (only and name not in only) or not os.path.exists(path):
      continue
    saved = np.load(path)
    metrics, leaves = trajectory(_config(file, arg, over))
    old_m = {k[2:]: saved[k] for k in saved.files if k.startswith("m/")}
    old_s = [saved[k] for k in sorted(k for k in saved.files if k.startswith("s/"))]
    notes = []
    common = sorted(set(old_m) & set(metrics))
    if set(old_m) != set(metrics):
      notes.append(f"metric names differ: -{sorted(set(old_m) - set(metrics))} "
                   f"+{sorted(set(metrics) - set(old_m))}")
    m_rel = max([_rel(metrics[k], old_m[k]) for k in common] or [0.0])
    m_same = all(np.array_equal(metrics[k], old_m[k], equal_nan=True) for k in common)
    old_shapes = sorted((x.shape for x in old_s), key=str)
    new_shapes = sorted((x.shape for x in leaves), key=str)
    if old_shapes != new_shapes:
      notes.append("state shapes differ")
      s_rel, s_same = float("inf"), False
    else:  # match leaves by shape and order (a renamed field keeps its leaves' order within shape)
      by_shape_old, by_shape_new = {}, {}
      for x in old_s:
        by_shape_old.setdefault(x.shape, []).append(x)
      for x in leaves:
        by_shape_new.setdefault(x.shape, []).append(x)
      pairs = [(a, b) for sh in by_shape_old for a, b in zip(by_shape_new[sh], by_shape_old[sh])]
      s_rel = max([_rel(a, b) for a, b in pairs if np.issubdtype(b.dtype, np.floating)] or [0.0])
      s_same = all(np.array_equal(a, b) for a, b in pairs)
    ok = m_rel <= rtol and s_rel <= rtol
    ok_all &= ok
    verdict = "bit-identical" if (m_same and s_same) else ("within rtol" if ok else "DIFFERENT")
    print(f"{name}: {verdict} (metrics max rel {m_rel:.2e}, state max rel {s_rel:.2e})"
          + ("; " + "; ".join(notes) if notes else ""), flush=True)
  return ok_all


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--record")
  p.add_argument("--compare")
  p.add_argument("--only", default="", help="comma-separated run names")
  p.add_argument("--rtol", type=float, default=1e-5)
  a = p.parse_args(argv)
  only = set(filter(None, a.only.split(",")))
  if a.record:
    record(a.record, only)
    return 0
  if a.compare:
    return 0 if compare(a.compare, only, a.rtol) else 1
  p.error("give --record=DIR or --compare=DIR")


if __name__ == "__main__":
  sys.exit(main())
