"""Input-pipeline throughput on AffectNet-format JPEGs (no training step): examples/second.

  python tools/bench_input.py --n=512 --size=128 --batch=64 --steps=40 [--encoding=png|jpeg]

Writes n random 128x128 JPEGs with an AffectNet CSV to a temp dir, prepares them with the AffectNet
builder (crop + resize to --size), then times (1) Source.gather alone and (2) the training input
pipeline (affectjax.data.pipeline.train_batches: tf.data over gather, 2 parallel calls).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--n", type=int, default=512)
  p.add_argument("--size", type=int, default=128)
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--steps", type=int, default=40)
  p.add_argument("--encoding", default="png")
  p.add_argument("--parallel", type=int, default=2)
  a = p.parse_args()
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import numpy as np
  import fixtures_real as fx
  from affectjax.data import builders
  root = tempfile.mkdtemp(prefix="bench_input_")
  fx.write_affectnet_bench(os.path.join(root, "manual"), a.n, a.size)
  t = time.time()
  s = builders.load_splits(fx.data_config("affectnet", os.path.join(root, "manual"),
                                          os.path.join(root, "tfds"), image_size=a.size,
                                          encoding=a.encoding))
  prep = time.time() - t
  rng = np.random.default_rng(0)
  s.train.gather(rng.integers(0, len(s.train), a.batch))  # warm-up
  t = time.time()
  for _ in range(a.steps):
    s.train.gather(rng.integers(0, len(s.train), a.batch))
  gather_eps = a.steps * a.batch / (time.time() - t)
  from affectjax.data import pipeline
  it = pipeline.train_batches(s.train, seed=0, global_batch=a.batch, num_steps=a.steps + 2,
                              num_parallel_calls=a.parallel, prefetch=2)
  next(it)
  t = time.time()
  for _ in range(a.steps):
    next(it)
  pipe_eps = a.steps * a.batch / (time.time() - t)
  print(json.dumps({"examples": len(s.train), "size": a.size, "encoding": a.encoding, "batch": a.batch,
                    "prepare_s": round(prep, 2), "prepare_examples_per_s": round(len(s.train) / prep, 1),
                    "gather_examples_per_s": round(gather_eps, 1),
                    "pipeline_examples_per_s": round(pipe_eps, 1), "cpus": os.cpu_count()}))


if __name__ == "__main__":
  main()
