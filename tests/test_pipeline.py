"""The input pipeline: batch indices as a pure function of (seed, step); tf.data and thread backends."""
import gc
import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from affectjax.data import pipeline
from affectjax.data.source import ArraySource
from conftest import REPO


def epoch_order(n, seed, epoch):
  """The whole permutation of one epoch, read as one global batch of size n at step = epoch."""
  return pipeline.batch_indices(epoch, n=n, seed=seed, global_batch=n)


def small_source(n=37, seed=0):
  rng = np.random.default_rng(seed)
  return ArraySource({
      "image": rng.integers(0, 256, (n, 4, 4, 3), dtype=np.uint8),
      "label": rng.integers(0, 8, n).astype(np.int32),
      "va": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
      "is_reference": rng.random(n) < 0.3,
  })


def assert_same_batches(got, want):
  assert len(got) == len(want)
  for g, w in zip(got, want):
    assert sorted(g) == sorted(w)
    for k in w:
      assert g[k].dtype == w[k].dtype, k
      np.testing.assert_array_equal(g[k], w[k], err_msg=k)


def read(source, n_batches, **kw):
  it = pipeline.train_batches(source, **kw)
  out = [next(it) for _ in range(n_batches)]
  if hasattr(it, "close"):
    it.close()
  return out


# ---------------------------------------------------------------- the index function

@pytest.mark.parametrize("n", [1, 2, 3, 5, 64, 97, 1000, 1024, 4099])
def test_every_epoch_is_a_permutation(n):
  for seed in (0, 3, -7):
    for epoch in (0, 1, 6):
      order = epoch_order(n, seed, epoch)
      assert order.dtype == np.int64
      np.testing.assert_array_equal(np.sort(order), np.arange(n))


def test_a_large_epoch_is_a_permutation():
  n = 1_000_003  # prime: the Feistel domain is larger than n, so cycle walking is exercised
  order = pipeline.permute(np.arange(n), np.full(n, 5), n=n, seed=11)
  np.testing.assert_array_equal(np.bincount(order, minlength=n), np.ones(n))


def test_batches_that_straddle_epochs_read_each_epoch_once():
  n, gb = 23, 7  # batches cross epoch boundaries; 23 steps hold exactly 7 epochs
  flat = np.concatenate([pipeline.batch_indices(s, n=n, seed=1, global_batch=gb)
                         for s in range(n)])
  for e, order in enumerate(flat.reshape(gb, n)):
    np.testing.assert_array_equal(order, epoch_order(n, 1, e))
    np.testing.assert_array_equal(np.sort(order), np.arange(n))


def test_epochs_and_seeds_give_different_orders():
  for n in (97, 1000, 4099):
    assert not np.array_equal(epoch_order(n, 0, 0), epoch_order(n, 0, 1))
    assert not np.array_equal(epoch_order(n, 0, 0), epoch_order(n, 1, 0))
    assert not np.array_equal(epoch_order(n, 0, 0), np.arange(n))
  # Tiny n: some epochs repeat an order by chance, but not all of them.
  assert len({tuple(epoch_order(5, 0, e)) for e in range(20)}) > 5


def test_small_epochs_are_shuffled_evenly():
  n, epochs = 5, 3000  # where each position lands over many epochs: about uniform
  orders = pipeline.batch_indices(0, n=n, seed=2, global_batch=n * epochs).reshape(epochs, n)
  counts = np.zeros((n, n))
  np.add.at(counts, (np.tile(np.arange(n), epochs), orders.reshape(-1)), 1)
  np.testing.assert_allclose(counts / epochs, 1 / n, atol=0.04)


def test_indices_are_pure_and_fast_for_huge_sources():
  n, gb, step = 10_000_000, 256, 123_456
  a = pipeline.batch_indices(step, n=n, seed=4, global_batch=gb)
  assert a.shape == (gb,) and a.min() >= 0 and a.max() < n and len(set(a.tolist())) == gb
  np.testing.assert_array_equal(a, pipeline.batch_indices(step, n=n, seed=4, global_batch=gb))
  times = []
  for s in range(50):
    t = time.perf_counter()
    pipeline.batch_indices(step + s, n=n, seed=4, global_batch=gb)
    times.append(time.perf_counter() - t)
  assert np.median(times) < 5e-3, f"median {np.median(times) * 1e3:.2f} ms for a batch of {gb}"


@pytest.mark.parametrize("count", [2, 3, 4, 12])
def test_process_slices_make_up_the_global_batch_in_order(count):
  n, gb = 29, 12
  for step in (0, 1, 7):
    whole = pipeline.batch_indices(step, n=n, seed=5, global_batch=gb)
    parts = [pipeline.batch_indices(step, n=n, seed=5, global_batch=gb, process_index=p,
                                    process_count=count) for p in range(count)]
    np.testing.assert_array_equal(np.concatenate(parts), whole)


def test_global_batch_must_divide_over_processes():
  with pytest.raises(ValueError, match="not divisible by 5 processes"):
    pipeline.batch_indices(0, n=10, seed=0, global_batch=12, process_index=0, process_count=5)


# ---------------------------------------------------------------- batches

def test_thread_batches_are_gathers_of_the_indices_and_resume_exactly():
  source = small_source()
  kw = dict(seed=3, global_batch=8, backend="thread")
  whole = read(source, 10, num_steps=10, **kw)
  for step, batch in enumerate(whole):
    want = source.gather(pipeline.batch_indices(step, n=len(source), seed=3, global_batch=8))
    assert_same_batches([batch], [{k: np.asarray(v) for k, v in want.items()}])
  assert_same_batches(read(source, 4, start_step=6, num_steps=4, **kw), whole[6:])
  assert_same_batches(read(source, 4, start_step=6, **kw), whole[6:])  # unbounded stream
  # The iterator ends after num_steps.
  assert len(list(pipeline.train_batches(source, num_steps=3, **kw))) == 3


def test_tf_and_thread_backends_yield_identical_batches():
  pytest.importorskip("tensorflow")
  source = small_source()
  for kw in (dict(seed=0, global_batch=8, start_step=0, num_steps=9),
             dict(seed=7, global_batch=12, start_step=5, num_steps=6, process_index=1,
                  process_count=3, num_parallel_calls=3, prefetch=1)):
    tf_batches = list(pipeline.train_batches(source, backend="tf", **kw))
    thread_batches = list(pipeline.train_batches(source, backend="thread", **kw))
    assert len(tf_batches) == kw["num_steps"]
    assert_same_batches(thread_batches, tf_batches)
  resumed = read(source, 3, seed=0, global_batch=8, start_step=4, backend="tf")
  assert_same_batches(resumed, read(source, 7, seed=0, global_batch=8, backend="tf")[4:])


class PoisonedSource:
  """An ArraySource whose gather fails on one example."""

  def __init__(self, base, poison):
    self.base, self.poison = base, poison

  def __len__(self):
    return len(self.base)

  def gather(self, indices):
    if self.poison in np.asarray(indices):
      raise ValueError(f"poisoned example {self.poison}")
    return self.base.gather(indices)


@pytest.mark.parametrize("backend", ["thread", "tf"])
def test_an_error_while_gathering_reaches_the_consumer_as_raised(backend):
  if backend == "tf":
    pytest.importorskip("tensorflow")
  source = PoisonedSource(small_source(40), poison=13)
  first_bad = next(s for s in range(100)
                   if 13 in pipeline.batch_indices(s, n=40, seed=2, global_batch=4))
  assert first_bad > 0
  it = pipeline.train_batches(source, seed=2, global_batch=4, backend=backend)
  for _ in range(first_bad):
    next(it)
  with pytest.raises(ValueError, match="^poisoned example 13$"):
    next(it)


def _batch_threads():
  return [t for t in threading.enumerate() if t.name.startswith("affectjax-batches")]


def test_thread_prefetcher_stops_when_the_consumer_stops():
  source = small_source()
  before = len(_batch_threads())
  it = pipeline.train_batches(source, seed=0, global_batch=8, backend="thread",
                              num_parallel_calls=3, prefetch=4)
  next(it)
  assert len(_batch_threads()) == before + 3
  it.close()
  with pytest.raises(StopIteration):
    next(it)
  it = pipeline.train_batches(source, seed=0, global_batch=8, backend="thread")
  next(it)
  del it  # an abandoned iterator lets its workers go too
  gc.collect()
  deadline = time.time() + 10
  while len(_batch_threads()) > before and time.time() < deadline:
    time.sleep(0.01)
  assert len(_batch_threads()) == before
  assert all(t.daemon for t in _batch_threads())


def test_unknown_backend_is_one_clear_error():
  with pytest.raises(ValueError, match="backend='torch'"):
    pipeline.train_batches(small_source(), seed=0, global_batch=4, backend="torch")


# ---------------------------------------------------------------- without TensorFlow

_NO_TF_SCRIPT = textwrap.dedent("""
    import logging, sys
    sys.modules["tensorflow"] = None  # `import tensorflow` now raises ImportError
    sys.modules["tensorflow_datasets"] = None
    import ml_collections
    import numpy as np
    import affectjax.train, affectjax.main  # the whole in-memory path imports without TF
    from affectjax import config as config_lib, metric_writers
    from affectjax.data import builders, pipeline
    from affectjax.data.source import ArraySource

    arrays = dict(np.load(sys.argv[1]))
    it = pipeline.train_batches(ArraySource(arrays), seed=9, global_batch=6, start_step=2,
                                backend="auto")
    assert type(it).__name__ == "ThreadBatches", type(it)
    batches = [next(it) for _ in range(3)]
    it.close()
    np.savez(sys.argv[2], **{f"{i}/{k}": v for i, b in enumerate(batches) for k, v in b.items()})

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    writer = metric_writers.TensorBoardWriter(sys.argv[3])
    writer.write(1, {"loss": 0.5})  # a no-op
    try:
      builders.load_splits(ml_collections.ConfigDict({"name": "affectnet"}))
    except config_lib.ConfigError as e:
      print("builder error:", e)
    loaded = sorted(m for m, v in sys.modules.items() if m.startswith("tensorflow") and v)
    print("tensorflow modules:", loaded)
""")


def test_runs_without_tensorflow_and_matches_the_tf_data_path(tmp_path):
  source = small_source(31)
  np.savez(tmp_path / "source.npz", **source.arrays)
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  r = subprocess.run([sys.executable, "-c", _NO_TF_SCRIPT, str(tmp_path / "source.npz"),
                      str(tmp_path / "out.npz"), str(tmp_path / "work")],
                     cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "tensorflow modules: []" in r.stdout
  assert ("builder error: data.name=affectnet needs tensorflow and tensorflow-datasets: "
          "pip install tensorflow-cpu tensorflow-datasets") in r.stdout
  warnings = [l for l in r.stderr.splitlines() if "TensorBoard" in l]
  assert len(warnings) == 1 and "tensorflow is not installed" in warnings[0], r.stderr[-2000:]
  assert not (tmp_path / "work" / "tensorboard").exists()

  out = np.load(tmp_path / "out.npz")
  got = [{k.split("/", 1)[1]: out[k] for k in out.files if k.startswith(f"{i}/")} for i in range(3)]
  backend = "tf" if pipeline.tensorflow_available() else "thread"
  want = read(source, 3, seed=9, global_batch=6, start_step=2, backend=backend)
  assert_same_batches(got, want)
