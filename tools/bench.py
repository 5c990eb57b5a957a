"""Times the jitted train step of any config: steps/s, examples/s, compile time reported apart.

  python tools/bench.py --config=configs/levasa.py --steps=50 [--with_pipeline] [--config.X=...]

Without --with_pipeline one batch is placed on the devices once and reused (pure step time);
with it, every step reads a fresh batch through the real input pipeline. Prints one JSON line,
including XLA's FLOP estimate of one step (from the lowered HLO, before fusion: an upper bound
where the step has a lax.cond, whose branches are both counted) and the FLOP rate it implies.
"""
import json
import time

import jax
from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:variant]).")
_STEPS = flags.DEFINE_integer("steps", 50, "Timed steps after warm-up.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
_PIPELINE = flags.DEFINE_bool("with_pipeline", False, "Include the input pipeline in the timing.")


def main(argv):
  del argv
  from affectjax import train
  config = _CONFIG.value
  s = train.setup(config)
  state = train.init_state(s)
  step = train.compile_step(s)
  batch = train.to_global(s, train.first_batch(s))

  t = time.perf_counter()
  lowered = step.lower(state, batch)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t
  cost = lowered.cost_analysis()
  cost = (cost[0] if isinstance(cost, (list, tuple)) else cost) or {}
  gflop = cost.get("flops", float("nan")) / 1e9

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
  print(json.dumps({
      "config": f"{config.method}:{config.variant}", "devices": jax.device_count(),
      "platform": jax.devices()[0].platform, "device_kind": jax.devices()[0].device_kind,
      "batch_size": config.train.batch_size, "image_size": config.data.image_size,
      "with_pipeline": _PIPELINE.value, "compile_s": round(compile_s, 3),
      "ms_per_step": round(1e3 / steps_s, 3), "steps_per_s": round(steps_s, 3),
      "examples_per_s": round(steps_s * config.train.batch_size, 1),
      "gflop_per_step_hlo": round(gflop, 1), "tflop_per_s_hlo": round(gflop * steps_s / 1e3, 2)}))


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)
