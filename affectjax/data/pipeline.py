"""Input pipeline: global batches whose contents are a pure function of (seed, step).

The sample at global position p = step * global_batch + i is example perm_{seed, p div n}(p mod n)
of the source, where perm_{seed, epoch} is a pseudo-random bijection of [0, n): every epoch is a
fresh permutation, and a run restarted at step s reads exactly what an uninterrupted run reads
from step s on. The permutation is a keyed Feistel network evaluated per index (NumPy, O(batch)
time and memory whatever n is), so no epoch-sized array is ever built. Each process reads only
its own slice of the global batch (multi-host pods).

Two backends schedule the gathers, yielding identical numpy batches: tf.data (parallel map,
deterministic order, prefetch; TensorFlow imported lazily and kept off GPUs) and, when TensorFlow
is not installed (JAX-only GPU/TPU hosts), a small thread-pool prefetcher.
"""
from __future__ import annotations

import collections
import concurrent.futures
import itertools
import queue
import threading
import weakref
from typing import Callable, Iterator

import numpy as np

from affectjax.data.source import Source

BACKENDS = ("auto", "tf", "thread")

# ---------------------------------------------------------------- the index permutation

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)


def _rounds(n: int) -> int:
  """Feistel rounds: tiny domains mix slowly (n=5 needs ~16 before its 120 orders come out equally often)."""
  return 16 if n < 1024 else 8


def _mix(x: np.ndarray) -> np.ndarray:
  """splitmix64's finaliser: a bijective avalanche of uint64 (wrapping arithmetic)."""
  x = (x ^ (x >> np.uint64(30))) * _C1
  x = (x ^ (x >> np.uint64(27))) * _C2
  return x ^ (x >> np.uint64(31))


def _round_keys(seed: int, epochs: np.ndarray, rounds: int) -> np.ndarray:
  """[rounds, len(epochs)] uint64 keys: a hash of (seed, epoch, round)."""
  base = _mix(np.asarray([(int(seed) * _GOLDEN + 0x632BE59BD9B4E019) & _M64], np.uint64))
  e = _mix(base ^ (epochs.astype(np.uint64) * np.uint64(_GOLDEN)))
  salts = np.arange(1, rounds + 1, dtype=np.uint64)[:, None] * np.uint64(0xD1B54A32D192ED03)
  return _mix(e[None, :] ^ salts)


def _radices(n: int) -> tuple[int, int]:
  """a, b >= 2 with a * b >= n and a * b - n < a (the Feistel domain hugs n: little cycle walking)."""
  a = max(2, int(np.ceil(np.sqrt(n))))
  while (a - 1) * (a - 1) >= n:  # float sqrt may overshoot for huge n
    a -= 1
  a = max(2, a)
  b = max(2, -(-n // a))
  return a, b


def _feistel(x: np.ndarray, keys: np.ndarray, a: int, b: int) -> np.ndarray:
  """A bijection of [0, a*b): an unbalanced mixed-radix Feistel network (as in FF1/FF3).

  x = L*b + R with L in Z_a, R in Z_b; each round (L, R) -> (R, (L + F_k(R)) mod |L|), the
  halves swapping radix; F_k(R) = mix(R ^ k) with a per-element round key k.
  """
  m1, m2 = np.uint64(a), np.uint64(b)
  left, right = x // m2, x % m2
  for r in range(keys.shape[0]):
    left, right = right, (left + _mix(right ^ keys[r]) % m1) % m1
    m1, m2 = m2, m1
  return left * m2 + right


def permute(within: np.ndarray, epochs: np.ndarray, *, n: int, seed: int) -> np.ndarray:
  """perm_{seed, epoch}(within) for arrays of positions within an epoch and their epochs (int64).

  Feistel over [0, a*b) with a*b >= n, then cycle walking (re-apply until the value falls in
  [0, n)), which restricts a bijection of the larger domain to a bijection of [0, n).
  """
  within = np.asarray(within, np.int64)
  if n == 1:
    return np.zeros_like(within)
  a, b = _radices(n)
  epochs = np.asarray(epochs, np.int64)
  e0 = int(epochs.min()) if epochs.size else 0
  last = int(epochs.max()) if epochs.size else e0
  table = _round_keys(seed, np.arange(e0, last + 1), _rounds(n))
  keys = table[:, epochs - e0]  # [rounds, len]
  y = _feistel(within.astype(np.uint64), keys, a, b)
  out = np.flatnonzero(y >= np.uint64(n))
  while out.size:
    z = _feistel(y[out], keys[:, out], a, b)
    y[out] = z
    out = out[z >= np.uint64(n)]
  return y.astype(np.int64)


def batch_indices(step: int, *, n: int, seed: int, global_batch: int,
                  process_index: int = 0, process_count: int = 1) -> np.ndarray:
  """The source indices (int64 [global_batch // process_count]) this process reads at `step`.

  Global position p = step * global_batch + i reads example perm_{seed, p // n}(p % n).
  """
  if n <= 0:
    raise ValueError("the training split is empty")
  lo, hi = _local_range(global_batch, process_index, process_count)
  positions = int(step) * global_batch + np.arange(lo, hi, dtype=np.int64)
  return permute(positions % n, positions // n, n=n, seed=seed)


def _local_range(global_batch: int, process_index: int, process_count: int):
  if global_batch % process_count:
    raise ValueError(f"global batch {global_batch} is not divisible by {process_count} processes")
  local = global_batch // process_count
  return process_index * local, (process_index + 1) * local


# ---------------------------------------------------------------- batches

def _tf():
  import tensorflow as tf
  try:  # TF must not take the accelerator JAX uses.
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # already initialised: devices can no longer change
    pass
  return tf


def tensorflow_available() -> bool:
  try:
    import tensorflow  # noqa: F401
  except ImportError:
    return False
  return True


def train_batches(source: Source, *, seed: int, global_batch: int, start_step: int = 0,
                  num_steps: int | None = None, process_index: int = 0, process_count: int = 1,
                  num_parallel_calls: int = 2, prefetch: int = 2,
                  backend: str = "auto") -> Iterator[dict]:
  """Yields this process's part of global batches start_step, start_step + 1, ... as numpy dicts.

  backend: "tf" (tf.data), "thread" (a thread pool of num_parallel_calls workers keeping
  max(prefetch, num_parallel_calls) batches ahead) or "auto" (tf when TensorFlow imports, else
  thread). Both give identical batches (keys sorted); an error raised while gathering a batch is
  re-raised in the consumer as it was raised.
  """
  if backend not in BACKENDS:
    raise ValueError(f"backend={backend!r}; expected one of {BACKENDS}")
  n = len(source)
  if n == 0:
    raise ValueError("the training split is empty")
  lo, hi = _local_range(global_batch, process_index, process_count)
  probe = source.gather(np.zeros((1,), np.int64))
  keys = sorted(probe)
  dtypes = {k: np.asarray(probe[k]).dtype for k in keys}
  shapes = {k: (hi - lo,) + np.shape(probe[k])[1:] for k in keys}

  def load(step) -> dict:
    idx = batch_indices(int(step), n=n, seed=seed, global_batch=global_batch,
                        process_index=process_index, process_count=process_count)
    batch = source.gather(idx)
    out = {k: np.asarray(batch[k], dtype=dtypes[k]) for k in keys}
    for k in keys:
      if out[k].shape != shapes[k]:
        raise ValueError(f"source.gather gave {k} of shape {out[k].shape}, expected {shapes[k]}")
    return out

  end = start_step + num_steps if num_steps is not None else None
  if backend == "auto":
    backend = "tf" if tensorflow_available() else "thread"
  if backend == "tf":
    return _tf_batches(load, keys, dtypes, shapes, start_step, end, num_parallel_calls, prefetch)
  steps = range(start_step, end) if end is not None else itertools.count(start_step)
  return ThreadBatches(load, steps, num_workers=num_parallel_calls,
                       ahead=max(prefetch, num_parallel_calls, 1))


def _tf_batches(load, keys, dtypes, shapes, start, end, num_parallel_calls, prefetch):
  tf = _tf()
  errors = {}  # step -> the exception raised by `load`, re-raised as it was in the consumer
  lock = threading.Lock()

  def gather(step):
    try:
      batch = load(step)
    except Exception as e:
      with lock:
        errors[int(step)] = e
      raise
    return [batch[k] for k in keys]

  def load_tf(step):
    values = tf.numpy_function(gather, [step], [tf.as_dtype(dtypes[k]) for k in keys],
                               stateful=False)
    return {k: tf.ensure_shape(v, shapes[k]) for k, v in zip(keys, values)}

  options = tf.data.Options()
  options.threading.private_threadpool_size = max(1, num_parallel_calls)
  options.deterministic = True
  ds = tf.data.Dataset.range(start, end if end is not None else np.iinfo(np.int64).max)
  ds = ds.map(load_tf, num_parallel_calls=max(1, num_parallel_calls))
  ds = ds.with_options(options).prefetch(prefetch)

  def batches():
    it = ds.as_numpy_iterator()
    while True:
      try:
        batch = next(it)
      except StopIteration:
        return
      except tf.errors.OpError:
        with lock:
          first = min(errors) if errors else None
        if first is None:
          raise
        raise errors[first].with_traceback(errors[first].__traceback__) from None
      yield batch

  return batches()


class ThreadBatches:
  """An in-order iterator over load(step) for `steps`, computed by a pool of worker threads.

  Keeps `ahead` batches submitted ahead of the consumer. Closing it (close(), the end of a `with`
  block, the end of `steps`, an error, or dropping the last reference) cancels what is pending and
  lets the workers go. The workers are daemon threads: an abandoned iterator never holds the
  interpreter open.
  """

  def __init__(self, load: Callable[[int], dict], steps, *, num_workers: int = 2, ahead: int = 2):
    self._load = load
    self._steps = iter(steps)
    self._ahead = max(1, ahead)
    self._tasks = queue.SimpleQueue()
    self._pending = collections.deque()
    self._workers = [threading.Thread(target=_work, args=(self._tasks,), daemon=True,
                                      name=f"affectjax-batches-{i}")
                     for i in range(max(1, num_workers))]
    for t in self._workers:
      t.start()
    self._finalizer = weakref.finalize(self, _shutdown, self._tasks, self._pending,
                                       len(self._workers))
    self._fill()

  def _fill(self):
    while len(self._pending) < self._ahead:
      step = next(self._steps, None)
      if step is None:
        return
      future = concurrent.futures.Future()
      self._pending.append(future)
      self._tasks.put((future, self._load, step))

  def __iter__(self):
    return self

  def __next__(self) -> dict:
    if not self._pending:
      self.close()
      raise StopIteration
    future = self._pending.popleft()
    try:
      batch = future.result()
    except BaseException:
      self.close()
      raise
    self._fill()
    return batch

  def close(self):
    """Cancels pending batches and stops the workers (each finishes at most its current batch)."""
    self._finalizer()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


def _work(tasks):
  while True:
    item = tasks.get()
    if item is None:
      return
    future, load, step = item
    if not future.set_running_or_notify_cancel():
      continue
    try:
      future.set_result(load(step))
    except BaseException as e:
      future.set_exception(e)
    del item, future, load  # hold nothing while waiting for the next task


def _shutdown(tasks, pending, num_workers):
  for future in pending:
    future.cancel()
  pending.clear()
  for _ in range(num_workers):
    tasks.put(None)


# ---------------------------------------------------------------- evaluation
