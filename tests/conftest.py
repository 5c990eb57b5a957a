"""Shared test set-up: quiet TensorFlow, one generated-data cache per test session."""
import importlib.util
import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("AFFECTJAX_CACHE", tempfile.mkdtemp(prefix="affectjax-test-cache-"))

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_config(name: str, arg: str = ""):
  """configs/<name>.py's get_config(arg), as --config=configs/<name>.py:<arg> would load it."""
  path = os.path.join(REPO, "configs", f"{name}.py")
  spec = importlib.util.spec_from_file_location(f"configs_{name}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


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
