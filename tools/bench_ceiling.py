"""Times the training step of the supervised CNN ceiling (affectjax.evaluate.cnn_ceiling) alone.

  python tools/bench_ceiling.py [--image_size=64] [--batch=64] [--steps=50] [--warmup=3] [--matmul_peak]

The ceiling is no config's training step (tools/bench.py cannot time it): it is trained inside
LeVAsa's evaluation, with LeVAsa's heads (VA regression, VA classes, emotion) on the pooled
pixels, at config.eval.ceiling_batch_size (64). Random images and targets of those shapes; one
JSON line with the median step time, XLA's FLOP count of the step and (--matmul_peak) its
fraction of the device's float32 matmul rate. AFFECTJAX_CPU_CONV=0 times lax's convolutions on
CPU instead of affectjax.nn.cpu's (issue 27's A/B).
"""
import json
import os
import statistics
import sys
import time

import jax
import numpy as np
import optax
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (tools/bench.py: its flags and the matmul peak)

from affectjax.evaluate import cnn_ceiling  # noqa: E402
from affectjax.nn import cpu, cpu_kernel  # noqa: E402

_SIZE = flags.DEFINE_integer("image_size", 64, "Image side (LeVAsa's default data: 64).")
_BATCH = flags.DEFINE_integer("batch", 64, "Batch size (configs/levasa.py: eval.ceiling_batch_size).")
_STEPS, _WARMUP, _PEAK = bench._STEPS, bench._WARMUP, bench._PEAK  # --steps, --warmup, --matmul_peak
LEVELS, CLASSES = 3, 7  # LeVAsa's VA classes per axis (2 * levels + 1) and emotions


def main(argv):
  del argv
  n, size = _BATCH.value, _SIZE.value
  rng = np.random.default_rng(0)
  images = rng.uniform(-1, 1, (n, size, size, 3)).astype(np.float32)
  heads = {"va": cnn_ceiling.Regression(rng.uniform(-1, 1, (n, 2)).astype(np.float32)),
           "va_classes": cnn_ceiling.Classes(rng.integers(0, 2 * LEVELS + 1, (n, 2)), 2 * LEVELS + 1),
           "emotion": cnn_ceiling.Classes(rng.integers(0, CLASSES, (n, 1)), CLASSES)}
  model = cnn_ceiling.CNN(cnn_ceiling._spec(heads))
  kinds = {name: kind for name, kind, _ in model.heads}
  scales = cnn_ceiling._scales(heads, np.arange(n))
  params = cnn_ceiling.init_params(model, images.shape[1:], images.dtype, 0)
  tx = optax.adam(1e-3)
  opt = tx.init(params)
  step = cnn_ceiling.train_step(model, kinds, scales, tx)
  targets = cnn_ceiling._targets(heads, np.arange(n))
  t = time.perf_counter()
  lowered = step.lower(params, opt, images, targets)
  flops = cpu_kernel.lowered_flops(lowered)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t
  first_loss = float(compiled(params, opt, images, targets)[2])  # the loss before any update
  for _ in range(_WARMUP.value):
    params, opt, _ = jax.block_until_ready(compiled(params, opt, images, targets))
  times = []
  for _ in range(_STEPS.value):
    t = time.perf_counter()
    params, opt, loss = jax.block_until_ready(compiled(params, opt, images, targets))
    times.append(time.perf_counter() - t)
  ms = 1e3 * statistics.median(times)
  row = {"net": "cnn_ceiling", "backend": jax.default_backend(), "cpu_conv": cpu.on_cpu(),
         "image_size": size, "batch": n, "step_ms": round(ms, 3), "compile_s": round(compile_s, 2),
         "hlo_gflop": round(flops / 1e9, 4), "tflop_s": round(flops / ms / 1e9, 4),
         "first_loss": first_loss, "loss": float(loss)}
  if _PEAK.value:
    peak = bench.matmul_peak_tflop_s()
    row.update(matmul_peak_tflop_s=round(peak, 4), fraction_of_matmul_peak=round(row["tflop_s"] / peak, 3))
  print(json.dumps(row))


if __name__ == "__main__":
  app.run(main)
