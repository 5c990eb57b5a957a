"""Nothing lost, one clear line (the loop's side): the NaN guard keeps a checkpoint that is really
good; selection sentinels are not divergence; torn metrics.jsonl and config.json survive a kill;
one run per workdir; a full disk is one line; resuming another experiment, fewer steps than the
checkpoint and impossible configs are refused in one line before anything is compiled."""
import dataclasses
import errno
import json
import os
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from affectjax import config as config_lib
from affectjax import methods, metric_writers, train
from affectjax import workdir as workdir_lib
from conftest import REPO, levasa_tiny, load_config, run_killed_at


_levasa = levasa_tiny


def _restore_params(workdir, step, config):
  s = train.setup(config)
  mgr = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"),
                              item_handlers=ocp.StandardCheckpointHandler())
  state = mgr.restore(step, args=ocp.args.StandardRestore(train.abstract_state(s)))
  mgr.close()
  return state


def _poison_after(step_at, monkeypatch):
  """methods.get wrapped: from step `step_at` on, the update leaves NaN parameters while the
  step's loss (computed before its update) is still finite -- a divergence between log steps."""
  real_get = methods.get

  def get(config, data, **overrides):
    m = real_get(config, data, **overrides)
    real_step = m.train_step

    def step(state, batch, key):
      new, metrics = real_step(state, batch, key)
      nan = jnp.where(new.step >= step_at, jnp.nan, 0.0)
      return new.replace(params=jax.tree.map(lambda p: p + nan, new.params)), metrics

    return dataclasses.replace(m, train_step=step)

  monkeypatch.setattr(train.methods, "get", get)


def test_the_guard_never_saves_a_poisoned_state_and_the_kept_one_resumes(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  # checkpoints every 2 steps, logs every 100: the parameters break at step 6's update
  config = _levasa(train__num_steps=12, train__checkpoint_every=2, train__log_every=100)
  _poison_after(6, monkeypatch)
  with pytest.raises(train.TrainingDiverged) as e:
    train.train_and_evaluate(config, workdir)
  message = str(e.value)
  assert "non-finite state (params" in message and "step 6" in message
  assert "last good checkpoint (step 4)" in message and "\n" not in message
  assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2", "4"]
  kept = _restore_params(workdir, 4, config)
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(kept.params))
  # Resumed with a saner learning rate (an allowed change), it trains from step 4 to the end.
  monkeypatch.undo()
  sane = _levasa(train__num_steps=12, train__checkpoint_every=2, train__log_every=100,
                 optim__lr=config.optim.lr / 2)
  state, metrics = train.train_and_evaluate(sane, workdir)
  assert int(state.step) == 12 and np.isfinite(metrics["loss"])


def test_a_selection_sentinel_is_not_divergence(tmp_path):
  # triplet VAE: best_val_elbo is -inf until the first validation (step 10); logs at 5 and 10
  c = load_config("triplet_vae", "m2,tiny")
  c.train.num_steps, c.train.log_every, c.train.checkpoint_every = 10, 5, 10
  c.eval.select_every = 10
  c.train.report = False
  _, metrics = train.train_and_evaluate(c, str(tmp_path))
  rows = [json.loads(ln) for ln in open(tmp_path / "metrics.jsonl")]
  assert rows[0]["step"] == 5 and rows[0]["best_val_elbo"] == "-inf"
  assert np.isfinite(metrics["best_val_elbo"])  # selected at step 10


def test_host_metrics_sentinels_may_be_infinite_never_nan():
  s = train.Setup.__new__(train.Setup)
  s.num_seeds, s.method = 1, methods.Method(None, None, {}, sentinels=("best",))
  assert train.host_metrics(s, {"loss": 1.0, "best": -np.inf})[1] == ""
  assert train.host_metrics(s, {"loss": 1.0, "best": np.nan})[1] == "best=nan"
  assert train.host_metrics(s, {"loss": 1.0, "other": -np.inf})[1] == "other=-inf"


def test_a_torn_metrics_line_is_dropped_reported_and_kept(tmp_path, caplog):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 5, "loss": 1.0}\n{"step": 10, "loss": 0.5}\n{"step": 15, "lo')
  metric_writers.JsonlWriter(str(tmp_path), resume_step=10).write(15, {"loss": 0.25})
  rows = [json.loads(ln) for ln in open(path)]
  assert [r["step"] for r in rows] == [5, 10, 15] and rows[2]["loss"] == 0.25
  assert (tmp_path / "metrics.jsonl.torn").read_text() == '{"step": 15, "lo\n'
  assert "dropped 1 line(s) that are not JSON (line 3" in caplog.text


def test_a_run_killed_with_torn_files_resumes(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  config = _levasa(train__num_steps=10, train__checkpoint_every=5, train__log_every=5)
  run_killed_at(config, workdir, 8, monkeypatch)
  with open(tmp_path / "metrics.jsonl", "a") as f:
    f.write('{"step": 6, "loss": 0.')  # kill -9 in the middle of a write
  (tmp_path / "config.json").write_text('{"method": "levasa", "var')
  with pytest.warns(UserWarning, match="config.json is not valid JSON"):
    state, _ = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 10
  assert json.load(open(tmp_path / "config.json"))["method"] == "levasa"
  rows = [json.loads(ln) for ln in open(tmp_path / "metrics.jsonl")]
  assert [r["step"] for r in rows if "loss" in r] == [5, 10]  # step 6's torn line is gone
  assert (tmp_path / "metrics.jsonl.torn").read_text() == '{"step": 6, "loss": 0.\n'
  assert any(n.startswith("config.json.unreadable_") for n in os.listdir(workdir))


def test_config_json_is_replaced_atomically(tmp_path, monkeypatch):
  path = str(tmp_path / "config.json")
  workdir_lib.write_atomic(path, "old")

  def no_room(*a, **k):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(os, "fsync", no_room)
  with pytest.raises(OSError):
    workdir_lib.write_atomic(path, "new")
  assert open(path).read() == "old" and os.listdir(tmp_path) == ["config.json"]


def test_one_run_per_workdir_and_a_stale_lock_is_taken_over(tmp_path, capsys):
  workdir = str(tmp_path)
  live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
  try:
    holder = {"host": workdir_lib._me()["host"], "pid": live.pid,
              "start": workdir_lib._start_time(live.pid), "since": "then"}
    (tmp_path / workdir_lib.LOCK).write_text(json.dumps(holder))
    with pytest.raises(train.WorkdirError) as e:
      train.train_and_evaluate(_levasa(), workdir)
    assert f"in use by process {live.pid} on this host" in str(e.value)
    assert "\n" not in str(e.value) and not os.path.exists(tmp_path / "checkpoints")
  finally:
    live.kill()
    live.wait()
  with workdir_lib.lock(workdir):  # the holder is gone: its lock is stale
    assert json.load(open(tmp_path / workdir_lib.LOCK))["pid"] == os.getpid()
  assert f"took over the stale lock of process {live.pid}" in capsys.readouterr().out
  assert not os.path.exists(tmp_path / workdir_lib.LOCK)  # released
  other = dict(holder, host="another-host")
  (tmp_path / workdir_lib.LOCK).write_text(json.dumps(other))
  with pytest.raises(workdir_lib.WorkdirError, match="on host another-host"):
    with workdir_lib.lock(workdir):
      pass


def test_a_full_disk_is_one_line_and_what_was_written_survives(tmp_path, monkeypatch):
  workdir = str(tmp_path)
  config = _levasa(train__num_steps=10, train__checkpoint_every=5, train__log_every=5)
  real = metric_writers.JsonlWriter.write

  def write(self, step, metrics):
    if step >= 10:
      raise OSError(errno.ENOSPC, "No space left on device", self.path)
    real(self, step, metrics)

  monkeypatch.setattr(metric_writers.JsonlWriter, "write", write)
  with pytest.raises(train.WorkdirError) as e:
    train.train_and_evaluate(config, workdir)
  message = str(e.value)
  assert message.startswith(f"cannot write {tmp_path / 'metrics.jsonl'}: No space left on device")
  assert "\n" not in message
  assert [json.loads(ln)["step"] for ln in open(tmp_path / "metrics.jsonl")] == [5]
  monkeypatch.undo()  # room again: the run resumes from its step-5 checkpoint
  state, _ = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 10


def test_fewer_steps_than_the_checkpoint_is_one_line(tmp_path):
  workdir = str(tmp_path)
  train.train_and_evaluate(_levasa(train__num_steps=10, train__checkpoint_every=10), workdir)
  with pytest.raises(train.WorkdirError) as e:
    train.train_and_evaluate(_levasa(train__num_steps=5, train__checkpoint_every=5), workdir)
  assert "holds step 10, beyond config.train.num_steps=5" in str(e.value)


@pytest.mark.parametrize("method,old,new,field", [
    ("triplet_vae", "m2,tiny", "m1,tiny", "variant: 'm2' -> 'm1'"),
    ("dual_domain", "tiny,euclid", "tiny,onehot", "labels.kind: 'euclid' -> 'onehot'"),
    ("levasa", "tiny", "tiny", "loss.kl: 'squared' -> 'plain'"),
])
def test_resuming_another_experiment_is_refused_unless_allowed(tmp_path, method, old, new, field):
  workdir = str(tmp_path)
  (tmp_path / "checkpoints" / "10").mkdir(parents=True)  # a run of `old` was checkpointed
  (tmp_path / "config.json").write_text(load_config(method, old).to_json_best_effort(indent=2))
  config = load_config(method, new)
  if method == "levasa":
    config.loss.kl = "plain"
  config.optim.lr = config.optim.lr / 2  # allowed: named beside the refused ones
  with pytest.raises(train.WorkdirError) as e:
    train.train_and_evaluate(config, workdir)
  message = str(e.value)
  assert field in message and "allow_config_change=True" in message and "\n" not in message
  assert "optim.lr" not in message.split("would change")[1].split(". Nothing")[0]
  refused, allowed = workdir_lib.config_changes(
      json.load(open(tmp_path / "config.json")), json.loads(config.to_json_best_effort()))
  assert any(field in r for r in refused) and any(a.startswith("optim.lr") for a in allowed)


@pytest.mark.parametrize("override,message", [
    ({"train__keep_checkpoints": 0}, "config.train.keep_checkpoints=0 must be an integer >= 1"),
    ({"train__keep_checkpoints": -1}, "config.train.keep_checkpoints=-1 must be an integer >= 1"),
    ({"eval__batch_size": 0}, "config.eval.batch_size=0 must be a positive integer"),
    ({"data__image_size": 30}, "config.data.image_size=30: model.arch='paper' halves the image"),
    ({"data__image_size": 8}, "config.data.image_size=8: model.arch='paper' halves the image"),
])
def test_impossible_configs_are_one_line_before_anything_runs(tmp_path, override, message):
  with pytest.raises(config_lib.ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
    train.train_and_evaluate(_levasa(**override), str(tmp_path / "w"))
  assert not os.path.exists(tmp_path / "w")  # refused before the workdir is created


def test_negative_seed_and_ganmut_eval_batch_size_are_refused_up_front():
  c = load_config("levasa", "tiny")
  c.seed = -1
  with pytest.raises(config_lib.ConfigError, match=r"config.seed=-1 must be an integer >= 0"):
    train.validate(c)
  g = load_config("ganmut", "tiny")
  g.eval.batch_size = 0
  with pytest.raises(config_lib.ConfigError, match=r"config.eval.batch_size=0 must be a positive"):
    train.validate(g)


@pytest.mark.parametrize("args,expected", [
    (["--config=configs/levasa.py", "--config.train.num_step=5"],
     "affectjax: error: --config.train.num_step: no such config field (did you mean 'num_steps'?)"),
    (["--config=configs/levasa.py:contnuous"],
     "affectjax: error: --config=configs/levasa.py:contnuous: configs/levasa.py: bad argument "
     "'contnuous'"),
    (["--config=configs/nope.py"], "No such file or directory"),
    (["--config=configs/levasa.py", "--config.train.num_steps=abc"],
     "affectjax: error: --config.train.num_steps=abc: invalid literal for int()"),
])
def test_command_line_mistakes_are_one_line(tmp_path, args, expected):
  out = subprocess.run([sys.executable, "-m", "affectjax.main", *args, f"--workdir={tmp_path}/w"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
  lines = [ln for ln in (out.stdout + out.stderr).splitlines() if ln.strip()]
  assert out.returncode == 1 and len(lines) == 1, lines
  assert expected in lines[0] and lines[0].startswith("affectjax: error: ")


def test_a_failed_write_names_the_file_it_was_writing(tmp_path):
  (tmp_path / "template.txt").write_text("t")

  def write_report(path):
    with open(path, "w") as f, open(tmp_path / "template.txt") as template:  # read: not named
      f.write(template.read())
      raise OSError(errno.ENOSPC, "No space left on device")  # as f.write/close raise it: no filename

  try:
    try:
      write_report(tmp_path / "report.json")
    except OSError as e:
      raise RuntimeError("the evaluation failed") from e
  except RuntimeError as wrapped:
    found = workdir_lib.disk_error(wrapped)
  assert found.errno == errno.ENOSPC and found.filename == str(tmp_path / "report.json")
  bare = workdir_lib.disk_error(OSError(errno.ENOSPC, "No space left on device"))
  assert bare.filename is None  # nothing open: the message falls back to the workdir
  assert workdir_lib.describe_disk_error(bare, "/runs/x").startswith("cannot write /runs/x: ")


def test_orbax_disk_errors_are_recognised_in_their_text():
  orbax_style = ValueError(
      'RESOURCE_EXHAUSTED: Error writing "params/0" in OCDBT database at local file '
      '"/runs/x/checkpoints/10.orbax-checkpoint-tmp/": Failed writing: "/runs/x/d/ab": Failed to '
      "write 6627328 bytes to file 15: No space left on device [os_error_code='28']")
  found = workdir_lib.disk_error(RuntimeError("wrapped")) or workdir_lib.disk_error(orbax_style)
  assert found.errno == errno.ENOSPC and found.filename == "/runs/x/checkpoints/10.orbax-checkpoint-tmp/"
  assert workdir_lib.disk_error(ValueError("a shape mismatch")) is None


def test_a_failed_write_task_collected_at_exit_is_not_a_second_traceback(monkeypatch):
  """asyncio logs a failed task nobody awaited when it is collected (at exit, after the loop's one
  line): a disk error's is dropped, any other error's still printed; likewise unraisable ones."""
  import asyncio
  import gc
  import logging
  seen = []

  class Collect(logging.Handler):
    def emit(self, record):
      seen.append(record.getMessage() + str(record.exc_info and record.exc_info[1]))

  for name in ("absl", "asyncio"):
    monkeypatch.setattr(logging.getLogger(name), "filters", list(logging.getLogger(name).filters))
  monkeypatch.setattr(sys, "unraisablehook", sys.unraisablehook)
  handler = Collect()
  logging.getLogger("asyncio").addHandler(handler)
  try:
    workdir_lib.quiet_disk_error_logs()

    def fail_unawaited(message):
      async def write():
        raise ValueError(message)
      loop = asyncio.new_event_loop()
      task = loop.create_task(write())
      loop.run_until_complete(asyncio.sleep(0))  # the task runs and fails; nobody awaits it
      loop.close()
      del task
      gc.collect()

    fail_unawaited('Error writing "params/0": Failed writing: "/runs/x/d/ab": Failed to write 224205 '
                   "bytes to file 14: No space left on device [os_error_code='28']")
    assert seen == []
    fail_unawaited("a shape mismatch")
    assert len(seen) == 1 and "never retrieved" in seen[0] and "a shape mismatch" in seen[0]
  finally:
    logging.getLogger("asyncio").removeHandler(handler)

  printed = []
  class Unraisable:
    def __init__(self, e):
      self.exc_type, self.exc_value = type(e), e
  workdir_lib._ignore_closed_loop(Unraisable(OSError(errno.ENOSPC, "No space left on device")), printed.append)
  workdir_lib._ignore_closed_loop(Unraisable(RuntimeError("Event loop is closed")), printed.append)
  assert printed == []
  other = Unraisable(KeyError("x"))
  workdir_lib._ignore_closed_loop(other, printed.append)
  assert printed == [other]


@pytest.mark.parametrize("quiet", [False, True])
def test_a_save_s_unscheduled_coroutines_collected_at_exit_print_nothing(quiet):
  """A failed save leaves Orbax's write coroutines unscheduled; collected at exit they printed
  'coroutine ... was never awaited' under the one line (a CI run). The control shows the warning
  this silences is real."""
  script = ("import gc\nfrom affectjax import workdir\n"
            + ("workdir.quiet_disk_error_logs()\n" if quiet else "")
            + "async def write_fragment():\n  pass\n"
              "pending = [write_fragment() for _ in range(3)]\ndel pending\ngc.collect()\n")
  out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                       timeout=120)
  assert out.returncode == 0, out.stderr
  printed = [ln for ln in out.stderr.splitlines() if "never awaited" in ln]
  assert (printed == []) if quiet else (len(printed) >= 1), out.stderr


@pytest.fixture
def tiny_filesystem(tmp_path):
  """A 3 MiB tmpfs (root only): a real full disk under Orbax's asynchronous saves."""
  mount = tmp_path / "full"
  mount.mkdir()
  if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                    capture_output=True).returncode:
    pytest.skip("cannot mount a tmpfs here (not root)")
  yield mount
  subprocess.run(["umount", str(mount)], check=False)


def test_a_real_full_disk_under_main_is_one_line(tiny_filesystem):
  out = subprocess.run(
      [sys.executable, "-m", "affectjax.main", "--config=configs/levasa.py:tiny",
       f"--workdir={tiny_filesystem}/run", "--config.train.progress=False"],
      cwd=REPO, capture_output=True, text=True, timeout=600)
  lines = [ln for ln in (out.stdout + out.stderr).splitlines()
           if ln.strip() and "oneDNN" not in ln and "absl::InitializeLog" not in ln]
  assert out.returncode == 1 and len(lines) == 1, lines[:20]
  # Usually the checkpoint's file; under load sometimes metrics.jsonl or another file fills first.
  assert re.match(rf"affectjax: error: cannot write {re.escape(str(tiny_filesystem))}/run(/\S+)?: "
                  r"No space left on device\.", lines[0]), lines[0]
