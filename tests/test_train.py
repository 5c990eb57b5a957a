"""The generic training loop: resume, device-count invariance, NaN guard, config errors."""
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from affectjax import config as config_lib
from affectjax import methods, train
from conftest import REPO, levasa_tiny, load_config, run_killed_at


tiny = levasa_tiny


def params_of(result):
  return jax.tree.map(np.asarray, result[0].params)


def test_kill_and_resume_matches_uninterrupted_run(tmp_path, monkeypatch):
  whole = train.train_and_evaluate(tiny(), str(tmp_path / "whole"))

  # Kill the second run after step 15: its checkpoint at step 10 is the last one written.
  run_killed_at(tiny(), str(tmp_path / "killed"), 15, monkeypatch)
  assert train.finished(tiny(), str(tmp_path / "whole"))  # what experiments skip when rerun
  assert not train.finished(tiny(), str(tmp_path / "killed"))  # stopped at 10 of 20
  assert not train.finished(tiny(train__num_steps=30), str(tmp_path / "whole"))  # another config
  resumed = train.train_and_evaluate(tiny(), str(tmp_path / "killed"))
  assert train.finished(tiny(), str(tmp_path / "killed"))

  jax.tree.map(np.testing.assert_array_equal, params_of(whole), params_of(resumed))
  steps = [json.loads(l)["step"] for l in open(tmp_path / "killed" / "metrics.jsonl")]
  train_steps = [s for s in steps if s % 5 == 0]
  assert steps == sorted(steps) and train_steps.count(15) == 1  # stale lines were dropped


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  workdir = str(tmp_path)
  first = train.train_and_evaluate(tiny(train__num_steps=10), workdir)
  with pytest.raises(train.TrainingDiverged, match=r"non-finite .* step .*checkpoint \(step 10\)"):
    train.train_and_evaluate(tiny(train__num_steps=20, optim__lr=1e12), workdir)
  mgr = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"))
  assert mgr.latest_step() == 10
  restored = mgr.restore(10, args=ocp.args.StandardRestore())
  jax.tree.map(np.testing.assert_array_equal, params_of(first),
               jax.tree.map(np.asarray, restored["params"]))


@pytest.mark.parametrize("path,value,message", [
    ("method", "nope", "config.method='nope': expected one of 'levasa', 'ganmut', "),
    ("data.name", "nope", "config.data.name='nope': expected one of 'synthetic_faces', "),
    ("train.batch_size", -4, "config.train.batch_size=-4 must be a positive integer"),
    ("data.image_size", 0, "config.data.image_size=0 must be a positive integer"),
    ("train.batch_size", 12, "not divisible by the 8 devices"),
    ("optim.decay_start", 1.5, "config.optim.decay_start=1.5 must be in [0, 1]"),
    ("model.head_hidden", 0, "config.model.head_hidden=0 must be > 0"),
])
def test_bad_config_values_fail_before_compile(path, value, message):
  c = tiny()
  if "." in path:
    section, field = path.split(".")
    c[section][field] = value
  else:
    c[path] = value
  with pytest.raises(config_lib.ConfigError, match=re.escape(message)):
    methods.validate(c, num_devices=8)


# Variants of every config whose enumerated fields are walked below.
CONFIG_VARIANTS = {"levasa": ("", "discrete", "vanilla", "original", "afew,discrete", "tiny",
                              "paper_length"),
                   "ganmut": ("", "gaussian", "stargan", "small", "original", "tiny"),
                   "dual_domain": ("", "gmm", "onehot,noise30", "gmm,noise10,original", "small", "tiny", "evaluator"),
                   "triplet_vae": ("", "vae", "m1", "m2_prior", "spontaneous", "tiny"),
                   "rbvae": ("", "vae", "beta_vae", "svae", "dip_vae_i", "dip_vae_ii", "rbvae", "faces", "small", "tiny", "rbvae,faces,tiny")}


def _enumerated_fields(config):
  module = methods.module_of(config)
  table = {**config_lib.CHOICES, **getattr(module, "CHOICES", {})}
  out = {}
  for path, choices in table.items():
    try:
      out[path] = (config_lib.get_path(config, path), choices)
    except (KeyError, AttributeError):
      pass
  return out


@pytest.mark.parametrize("name", sorted(CONFIG_VARIANTS))
def test_every_enumerated_field_of_every_config_is_checked(name):
  walked = 0
  for arg in CONFIG_VARIANTS[name]:
    base = load_config(name, arg)
    methods.validate(base, num_devices=1)  # every shipped variant is valid
    for path, (value, choices) in _enumerated_fields(base).items():
      assert value in choices, (name, arg, path)
      c = load_config(name, arg)
      bad = 99 if isinstance(value, int) else "bogus"
      section, _, field = path.rpartition(".")
      (config_lib.get_path(c, section) if section else c)[field] = bad
      with pytest.raises(config_lib.ConfigError) as e:
        methods.validate(c, num_devices=1)
      assert str(e.value) == (f"config.{path}={bad!r}: expected one of "
                              f"{', '.join(repr(x) for x in choices)}")
      walked += 1
  assert walked >= 5 * len(CONFIG_VARIANTS[name])


def run_main(*args, timeout=240):
  return subprocess.run([sys.executable, "-m", "affectjax.main", "--config=configs/levasa.py:tiny", *args],
                        cwd=REPO, capture_output=True, text=True, timeout=timeout)


def test_cli_reports_unwritable_workdir_and_bad_values_in_one_line(tmp_path):
  blocked = tmp_path / "file"
  blocked.write_text("not a directory")
  res = run_main(f"--workdir={blocked}/run")
  assert res.returncode != 0
  assert res.stderr.strip().splitlines()[-1].startswith("affectjax: error: workdir")
  res = run_main(f"--workdir={tmp_path}/run", "--config.train.batch_size=-2")
  assert res.stderr.strip().splitlines()[-1] == (
      "affectjax: error: config.train.batch_size=-2 must be a positive integer")
  assert not os.path.exists(tmp_path / "run" / "checkpoints")  # failed before building anything
