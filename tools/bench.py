"""Times the jitted train step of any config: steps/s, examples/s, seeds/s, compile time apart.

  python tools/bench.py --config=configs/levasa.py --steps=50 [--seeds=1,4,8] [--with_pipeline]
      [--config.X=...]

--seeds runs the benchmark once per K (config.train.num_seeds = K: K independent models vmapped
in one program) and prints one JSON line per K; seeds_per_s = K x steps/s, and
cost_vs_one_seed = (time of a K-seed step) / (time of a one-seed step) when K = 1 is in the list
(well under K means the seeds share the machine efficiently).

Without --with_pipeline one batch is placed on the devices once and reused (pure step time);
with it, every step reads a fresh batch through the real input pipeline. Each line includes
XLA's FLOP estimate of one step (from the lowered HLO, before fusion: an upper bound where the
step has a lax.cond, whose branches are both counted) and the FLOP rate it implies. A backend
whose lowered HLO has no cost analysis (CUDA, seen on an H100 with jax 0.11.2: NaN) gets the count
of the same step lowered for the CPU, the same program before fusion.
"""
import json
import math
import time

import jax
from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:variant]).")
_STEPS = flags.DEFINE_integer("steps", 50, "Timed steps after warm-up.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
_PIPELINE = flags.DEFINE_bool("with_pipeline", False, "Include the input pipeline in the timing.")
_SEEDS = flags.DEFINE_list("seeds", None, "Seed counts K to time, e.g. 1,4,8 (default: the "
                           "config's train.num_seeds).")


def _flops_of(lowered) -> float:
  cost = lowered.cost_analysis()
  cost = (cost[0] if isinstance(cost, (list, tuple)) else cost) or {}
  return float(cost.get("flops", float("nan")))


def hlo_flops(step, state, batch, lowered) -> float:
  """XLA's FLOP count of one step, or of its CPU lowering where this backend reports none."""
  flops = _flops_of(lowered)
  if not math.isnan(flops):
    return flops
  try:
    return _flops_of(step.trace(state, batch).lower(lowering_platforms=("cpu",)))
  except Exception:  # noqa: BLE001  (a FLOP count is a nicety; the timing stands without it)
    return float("nan")


def bench_one(config, num_seeds: int) -> dict:
  from affectjax import train
  config = config.copy_and_resolve_references()
  config.train.num_seeds = num_seeds
  s = train.setup(config)
  state = train.init_state(s)
  step = train.compile_step(s)
  batch = train.to_global(s, train.first_batch(s))

  t = time.perf_counter()
  lowered = step.lower(state, batch)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t
  gflop = hlo_flops(step, state, batch, lowered) / 1e9

  batches = train.input_batches(s, 0) if _PIPELINE.value else None
  next_batch = (lambda: train.to_global(s, next(batches))) if batches else (lambda: batch)
  for _ in range(_WARMUP.value):
    state, metrics = compiled(state, next_batch())
  jax.block_until_ready(metrics)
  t = time.perf_counter()
  for _ in range(_STEPS.value):
    state, metrics = compiled(state, next_batch())
  jax.block_until_ready((state, metrics))
  elapsed = time.perf_counter() - t
  steps_s = _STEPS.value / elapsed
  return {
      "config": f"{config.method}:{config.variant}", "devices": jax.device_count(),
      "platform": jax.devices()[0].platform, "device_kind": jax.devices()[0].device_kind,
      "num_seeds": num_seeds, "batch_size": config.train.batch_size,
      "image_size": config.data.image_size, "with_pipeline": _PIPELINE.value,
      "compile_s": round(compile_s, 3), "ms_per_step": round(1e3 / steps_s, 3),
      "steps_per_s": round(steps_s, 3), "seeds_per_s": round(num_seeds * steps_s, 3),
      "examples_per_s": round(num_seeds * steps_s * config.train.batch_size, 1),
      "gflop_per_step_hlo": round(gflop, 1), "tflop_per_s_hlo": round(gflop * steps_s / 1e3, 2)}


def main(argv):
  del argv
  config = _CONFIG.value
  counts = [int(k) for k in _SEEDS.value] if _SEEDS.value else [config.train.num_seeds]
  one_seed_ms = None
  for k in counts:
    row = bench_one(config, k)
    if k == 1:
      one_seed_ms = row["ms_per_step"]
    if one_seed_ms is not None:
      row["cost_vs_one_seed"] = round(row["ms_per_step"] / one_seed_ms, 3)
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
