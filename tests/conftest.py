"""Shared test set-up: quiet TensorFlow; one generated-data cache and one XLA compilation cache
per test run, shared by the pytest-xdist workers and the subprocesses the tests start."""
import os
import tempfile
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# One BLAS thread per pytest-xdist worker (one worker per core): with the default, two workers
# oversubscribe the cores and a handful of 256x256 eigen-decompositions (FED) takes 30x longer.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _run_dir(prefix: str) -> str:
  """A fresh directory per test run; under pytest-xdist the workers of one run share it."""
  run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
  if not run_id:
    return tempfile.mkdtemp(prefix=prefix)
  path = os.path.join(tempfile.gettempdir(), prefix + run_id)
  os.makedirs(path, exist_ok=True)
  return path


os.environ.setdefault("AFFECTJAX_CACHE", _run_dir("affectjax-test-cache-"))
# Most of the suite's time is XLA compiling the same tiny programs again (every run rebuilds its
# step); JAX's persistent cache (atomic writes) halves it. Set before any test imports jax.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _run_dir("affectjax-test-xla-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The suite's programs are tiny and compiled once each: XLA's backend optimisations cost more
# compile time than they save in run time (measured: the LeVAsa contract test 52 s -> 42 s).
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str, arg: str = ""):
  """configs/<name>.py's get_config(arg), as --config=configs/<name>.py:<arg> would load it."""
  from affectjax import configs
  return configs.get(name, arg)


def with_fields(config, **fields):
  """config with overrides given as section__field=value (in place; returned)."""
  for path, value in fields.items():
    section, field = path.split("__")
    config[section][field] = value
  return config


def seeded(config, seed: int):
  """config with config.seed = seed (in place; returned)."""
  config.seed = seed
  return config


def levasa_tiny(**over):
  """configs/levasa.py:tiny without its report, with overrides given as section__field=value."""
  c = load_config("levasa", "tiny")
  c.train.report = False
  return with_fields(c, **over)


def run_killed_at(config, workdir: str, step: int, monkeypatch) -> None:
  """train_and_evaluate(config, workdir) killed (KeyboardInterrupt) just before it reads the batch
  of `step`, as a process killed mid-run: only the checkpoints written before stay behind."""
  import pytest
  from affectjax import train
  real = train.input_batches

  def dying(s, start):
    for i, batch in enumerate(real(s, start)):
      if start + i == step:
        raise KeyboardInterrupt("simulated kill")
      yield batch

  monkeypatch.setattr(train, "input_batches", dying)
  with pytest.raises(KeyboardInterrupt):
    train.train_and_evaluate(config, workdir)
  monkeypatch.setattr(train, "input_batches", real)


# Trajectories that agree within float32 tolerance can part at a kink. A leaky ReLU whose
# pre-activation lies within rounding of 0 takes slope 1 in one program and 0.2 in another
# (vmapped, unrolled or on 8 devices, sums in another order): measured on FactorVAE's tiny config
# on an AMD EPYC (Zen 3) machine, step 4, one pre-activation of G's first layer at -6.9e-7 (median
# |.| 0.72) moved its unit's bias gradient by 14 % and every encoder gradient upstream by 5-15 %,
# while the same programs agreed to 1e-5 otherwise. Such a hit depends on the seed's values (about
# one pre-activation in 10^6 per step lands there); a fault in keys, data or devices changes every
# seed's run. So a disagreement is rechecked from config.seed + KINK_RETRY_OFFSET.
KINK_RETRY_OFFSET = 1000


def agree_from_some_seed(check, seed: int, what: str) -> None:
  """check(seed), which raises AssertionError where two programs' trajectories disagree; where it
  does, check(seed + KINK_RETRY_OFFSET) must pass (a kink hit is one seed's; see above), and a
  warning names the first disagreement."""
  try:
    check(seed)
  except AssertionError as first:
    check(seed + KINK_RETRY_OFFSET)
    warnings.warn(f"{what} disagreed from seed {seed} and agree from seed "
                  f"{seed + KINK_RETRY_OFFSET} (a kink within float32 rounding, see "
                  f"conftest.KINK_RETRY_OFFSET): {str(first).strip().splitlines()[0]}")
