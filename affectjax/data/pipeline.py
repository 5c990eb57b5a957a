"""Input pipeline: global batches whose contents are a pure function of (seed, step).

The sample at global position p = step * global_batch + i is example
index_shuffle(p mod n, seed=(seed, p div n)) of the source: every epoch is a fresh permutation,
and a run restarted at step s reads exactly what an uninterrupted run reads from step s on.
Each process reads only its own slice of the global batch (multi-host pods). tf.data provides
the background prefetch and parallel gathers; TensorFlow is imported lazily and kept off GPUs.
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

from affectjax.data.source import Source


def _tf():
  import tensorflow as tf
  try:  # TF must not take the accelerator JAX uses.
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # already initialised: devices can no longer change
    pass
  return tf


def step_indices(tf, step, *, n: int, seed: int, global_batch: int, lo: int, hi: int):
  """Source indices of positions [lo, hi) of global batch `step` (a TF op, usable in tf.data)."""
  positions = tf.cast(step, tf.int64) * global_batch + tf.range(lo, hi, dtype=tf.int64)
  epoch, within = positions // n, positions % n
  seeds = tf.stack([tf.fill(tf.shape(epoch), tf.cast(seed, tf.int64)), epoch,
                    tf.zeros_like(epoch)], axis=-1)
  # The raw op takes one [3] seed per index; the public wrapper mis-pads a batch of seeds.
  return tf.raw_ops.RandomIndexShuffle(index=within, seed=seeds,
                                       max_index=tf.constant(n - 1, tf.int64), rounds=4)


def batch_indices(step: int, *, n: int, seed: int, global_batch: int,
                  process_index: int = 0, process_count: int = 1) -> np.ndarray:
  """The source indices this process reads at `step` (eager; what train_batches yields)."""
  tf = _tf()
  lo, hi = _local_range(global_batch, process_index, process_count)
  return step_indices(tf, step, n=n, seed=seed, global_batch=global_batch, lo=lo, hi=hi).numpy()


def _local_range(global_batch: int, process_index: int, process_count: int):
  if global_batch % process_count:
    raise ValueError(f"global batch {global_batch} is not divisible by {process_count} processes")
  local = global_batch // process_count
  return process_index * local, (process_index + 1) * local


def train_batches(source: Source, *, seed: int, global_batch: int, start_step: int = 0,
                  num_steps: int | None = None, process_index: int = 0, process_count: int = 1,
                  num_parallel_calls: int = 2, prefetch: int = 2) -> Iterator[dict]:
  """Yields this process's part of global batches start_step, start_step + 1, ... as numpy dicts."""
  tf = _tf()
  n = len(source)
  if n == 0:
    raise ValueError("the training split is empty")
  lo, hi = _local_range(global_batch, process_index, process_count)
  probe = source.gather(np.zeros((1,), np.int64))
  keys = sorted(probe)
  dtypes = [tf.as_dtype(probe[k].dtype) for k in keys]
  shapes = [(hi - lo,) + probe[k].shape[1:] for k in keys]

  def gather(indices):
    batch = source.gather(indices)
    return [np.asarray(batch[k], dtype=probe[k].dtype) for k in keys]

  def load(step):
    idx = step_indices(tf, step, n=n, seed=seed, global_batch=global_batch, lo=lo, hi=hi)
    values = tf.numpy_function(gather, [idx], dtypes, stateful=False)
    return {k: tf.ensure_shape(v, s) for k, v, s in zip(keys, values, shapes)}

  end = start_step + num_steps if num_steps is not None else np.iinfo(np.int64).max
  options = tf.data.Options()
  options.threading.private_threadpool_size = max(1, num_parallel_calls)
  options.deterministic = True
  ds = tf.data.Dataset.range(start_step, end).map(load, num_parallel_calls=num_parallel_calls)
  ds = ds.with_options(options).prefetch(prefetch)
  return ds.as_numpy_iterator()


def map_batches(fn: Callable[[dict], dict], source: Source, batch_size: int,
                limit: int | None = None) -> dict:
  """Applies `fn` to the whole source in order, in fixed-size batches (one compile), concatenated.

  The last batch is padded by repeating its final example; padded rows are dropped from the output.
  """
  n = len(source) if limit is None else min(limit, len(source))
  outs = []
  for start in range(0, n, batch_size):
    idx = np.arange(start, min(start + batch_size, n))
    valid = len(idx)
    idx = np.concatenate([idx, np.full(batch_size - valid, idx[-1])])
    out = fn(source.gather(idx))
    outs.append({k: np.asarray(v)[:valid] for k, v in out.items()})
  return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]} if outs else {}
