"""affectjax.runner: runs train their K seeds as one program into <workdir>/<name>/, leave
results.json with each seed's flat metrics (the loop's seeds.json values), are read instead of
retrained, and refuse another number of seeds."""
import json
import os

import pytest

from affectjax import runner, train, workdir as workdir_lib
from conftest import levasa_tiny


def test_runs_train_once_and_are_read_back(tmp_path, monkeypatch):
  runs = [runner.Run("a/levasa", levasa_tiny(train__num_steps=2)),
          runner.Run("b/untrained", levasa_tiny(train__num_steps=2))]
  got = runner.execute(str(tmp_path), runs, seeds=2, train=lambda name: name.startswith("a/"), log=lambda _: None)
  assert list(got) == ["a/levasa"]  # the other was not to be trained
  seeds = json.load(open(tmp_path / "a" / "levasa" / "seeds.json"))["metrics"]
  assert len(got["a/levasa"]) == 2
  for name, row in seeds.items():
    assert [m[name] for m in got["a/levasa"]] == pytest.approx(row["per_seed"], nan_ok=True)
  assert got["a/levasa"][0]["eval/pixel_mse"] != got["a/levasa"][1]["eval/pixel_mse"]
  record = json.load(open(tmp_path / "a" / "levasa" / runner.RESULTS))
  assert record["seeds"] == [0, 1] and record["wall_s"] > 0

  def no_training(*a, **k):
    raise AssertionError("a finished run was retrained")
  monkeypatch.setattr(train, "train_and_evaluate", no_training)
  assert runner.execute(str(tmp_path), runs[:1], seeds=2, log=lambda _: None) == got
  with pytest.raises(workdir_lib.WorkdirError, match=r"holds 2 seed\(s\), not the 3 asked for"):
    runner.execute(str(tmp_path), runs[:1], seeds=3, log=lambda _: None)
  assert runner.strip(got)["a/levasa"][0]["pixel_mse"] == got["a/levasa"][0]["eval/pixel_mse"]
