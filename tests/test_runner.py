"""affectjax.runner: runs train their K seeds as one program into <workdir>/<name>/, leave
results.json with each seed's flat metrics (the loop's seeds.json values), are read instead of
retrained, and refuse another number of seeds."""
import json
import os
import shutil
import subprocess

import pytest

from affectjax import experiment, runner, train, workdir as workdir_lib
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
  assert record["blocks"][0]["code"] == runner.code_version()  # the code that trained it
  assert runner.finished_runs(str(tmp_path))[0]["code"] == [runner.code_version()]

  def no_training(*a, **k):
    raise AssertionError("a finished run was retrained")
  monkeypatch.setattr(train, "train_and_evaluate", no_training)
  assert runner.execute(str(tmp_path), runs[:1], seeds=2, log=lambda _: None) == got
  # a later sitting on another machine: only the records travel (no checkpoints), and they are read back
  kept = experiment.records(str(tmp_path), ("seeds.json", "seed_*/no_such_file.json"))
  assert kept == ["a/levasa/results.json", "a/levasa/seeds.json"]
  for rel in kept:
    os.makedirs(os.path.dirname(tmp_path / "later" / rel), exist_ok=True)
    shutil.copyfile(tmp_path / rel, tmp_path / "later" / rel)
  assert runner.execute(str(tmp_path / "later"), runs[:1], seeds=2, log=lambda _: None) == got
  # a run that may not train (an experiment's --only) is read with the seeds it holds
  lines = []
  assert runner.execute(str(tmp_path), runs[:1], seeds=3, train=False, log=lines.append) == got
  assert lines == ["== a/levasa: read with its 2 seed(s) of the 3 asked (not trained here)"]
  lines.clear()  # ... also when it holds more than asked (e.g. --seeds=5 beside a 7-seed run)
  assert runner.execute(str(tmp_path), runs[:1], seeds=1, train=False, log=lines.append) == got
  assert lines == ["== a/levasa: read with its 2 seed(s) of the 1 asked (not trained here)"]
  with pytest.raises(workdir_lib.WorkdirError, match=r"holds 2 seed\(s\), not the 1 asked for"):
    runner.execute(str(tmp_path), runs[:1], seeds=1, log=lambda _: None)
  assert runner.strip(got)["a/levasa"][0]["pixel_mse"] == got["a/levasa"][0]["eval/pixel_mse"]


def test_seeds_added_to_a_finished_run_are_the_seeds_one_program_would_train(tmp_path):
  """1 seed, then --seeds=3: seeds 1 and 2 train as one more program (train.first_seed = 1), and
  the three equal a 3-seed program's; their files are found in their block."""
  run = runner.Run("levasa", levasa_tiny(train__num_steps=2, train__report=True))
  quiet = dict(log=lambda _: None)
  runner.execute(str(tmp_path / "grown"), [run], seeds=1, **quiet)
  grown = runner.execute(str(tmp_path / "grown"), [run], seeds=3, **quiet)["levasa"]
  whole = runner.execute(str(tmp_path / "whole"), [run], seeds=3, **quiet)["levasa"]
  assert len(grown) == 3 and grown[1]["eval/pixel_mse"] != grown[2]["eval/pixel_mse"]
  for g, w in zip(grown, whole):
    assert g.keys() == w.keys()
    for k in w:
      assert g[k] == pytest.approx(w[k], rel=1e-4, abs=1e-6, nan_ok=True), k
  record = json.load(open(tmp_path / "grown" / "levasa" / runner.RESULTS))
  assert record["seeds"] == [0, 1, 2] and [b["dir"] for b in record["blocks"]] == [".", "seeds_1-2"]
  assert [b["code"] for b in record["blocks"]] == [runner.code_version()] * 2
  del record["blocks"][0]["code"]  # a block trained before records kept their code
  (tmp_path / "grown" / "levasa" / runner.RESULTS).write_text(json.dumps(record))
  assert runner.finished_runs(str(tmp_path / "grown"))[0]["code"] == ["—", runner.code_version()]
  assert runner.seed_dir(str(tmp_path / "grown"), "levasa", 2, 3) == str(tmp_path / "grown" / "levasa" / "seeds_1-2" / "seed_1")
  assert runner.seed_dir(str(tmp_path / "grown"), "levasa", 0, 3) == str(tmp_path / "grown" / "levasa")
  kept = experiment.records(str(tmp_path / "grown"), ("levasa_report.json", "seed_*/levasa_report.json"))
  assert kept == ["levasa/results.json", "levasa/levasa_report.json", "levasa/seeds_1-2/seed_0/levasa_report.json",
                  "levasa/seeds_1-2/seed_1/levasa_report.json"]


def test_rescore_evaluates_every_block_again_from_its_checkpoints_without_training(tmp_path, monkeypatch):
  """An evaluation changed after training: --rescore recomputes each seed's metrics from the final
  checkpoint of every program of the run (no step trained), writes them back, and names a program
  whose checkpoint is gone."""
  run = runner.Run("levasa", levasa_tiny(train__num_steps=2))
  quiet = dict(log=lambda _: None)
  runner.execute(str(tmp_path), [run], seeds=1, **quiet)
  true = runner.execute(str(tmp_path), [run], seeds=3, **quiet)["levasa"]
  path = tmp_path / "levasa" / runner.RESULTS
  record = json.load(open(path))
  for m in record["per_seed"]:  # what an older evaluation code would have left
    m["eval/pixel_mse"], m["eval/gone_metric"] = 999.0, 1.0
  path.write_text(json.dumps(record))
  starts, loop = [], train._loop
  monkeypatch.setattr(train, "_loop", lambda s, state, start, *a: starts.append(start) or loop(s, state, start, *a))
  lines = []
  got = runner.execute(str(tmp_path), [run], seeds=3, rescore=lambda n: n == "levasa", log=lines.append)["levasa"]
  assert starts == [2, 2]  # both programs (seed 0; seeds 1-2) restored at their last step
  assert lines == ["== levasa: seeds 0..0 evaluated again from their checkpoints",
                   "== levasa: seeds 1..2 evaluated again from their checkpoints"]
  for g, t in zip(got, true):
    assert g["eval/pixel_mse"] == pytest.approx(t["eval/pixel_mse"], rel=1e-5)
    assert g["eval/gone_metric"] == 1.0  # a metric the code no longer gives is kept
  assert json.load(open(path))["rescored"]
  here = runner.code_version()
  assert runner.finished_runs(str(tmp_path))[0]["code"] == [here, f"rescored at {here}"]
  assert runner.execute(str(tmp_path), [run], seeds=3, **quiet)["levasa"] == got  # written back
  shutil.rmtree(tmp_path / "levasa" / "seeds_1-2" / "checkpoints")
  with pytest.raises(workdir_lib.WorkdirError, match=r"seeds_1-2/checkpoints has no checkpoint of step 2: "
                     r"levasa's seeds 1\.\.2 cannot be evaluated again"):
    runner.execute(str(tmp_path), [run], seeds=3, rescore=True, **quiet)


def test_overrides_reach_every_run_and_a_run_of_another_config_is_refused(tmp_path, monkeypatch):
  run = runner.Run("levasa", levasa_tiny(train__num_steps=3))
  quiet = dict(log=lambda _: None)
  with pytest.raises(Exception, match=r"override train\.no_such_field=1: the config has no field"):
    runner.execute(str(tmp_path), [run], overrides={"train.no_such_field": 1}, **quiet)
  got = runner.execute(str(tmp_path), [run], overrides={"train.num_steps": 2}, **quiet)
  assert json.load(open(tmp_path / "levasa" / "config.json"))["train"]["num_steps"] == 2
  assert run.config.train.num_steps == 3  # the run's own config is left as it was

  def no_training(*a, **k):
    raise AssertionError("a finished run was retrained")
  monkeypatch.setattr(train, "train_and_evaluate", no_training)
  # a renamed run with another presentation field (train.progress) is the same run
  moved = tmp_path / "moved"
  os.rename(tmp_path / "levasa", moved)
  again = runner.Run("moved", with_progress(run.config))
  assert runner.execute(str(tmp_path), [again], overrides={"train.num_steps": 2}, **quiet)["moved"] == got["levasa"]
  with pytest.raises(workdir_lib.WorkdirError, match=r"another config \(train\.num_steps: 2 -> 3\)"):
    runner.execute(str(tmp_path), [again], **quiet)


def with_progress(config):
  c = config.copy_and_resolve_references()
  c.train.progress = not c.train.progress
  return c


def test_a_run_trained_outside_the_runner_is_adopted_from_its_seeds_json(tmp_path):
  d = tmp_path / "ganmut"
  d.mkdir()
  (d / "seeds.json").write_text(json.dumps({"num_seeds": 2, "metrics": {
      "report/fed": {"per_seed": [3.0, None]}, "eval/acc": {"per_seed": [0.5, 0.7]}}}))
  assert not runner.adopt(str(tmp_path), "absent")
  assert runner.adopt(str(tmp_path), "ganmut")
  got = runner.execute(str(tmp_path), [runner.Run("ganmut", levasa_tiny())], seeds=2, train=False,
                       log=lambda _: None)["ganmut"]
  assert got[0] == {"report/fed": 3.0, "eval/acc": 0.5}
  assert got[1]["eval/acc"] == 0.7 and got[1]["report/fed"] != got[1]["report/fed"]  # NaN


def test_a_config_whose_epochs_set_its_steps_is_compared_by_its_epochs():
  """Rb-VAE's faces config estimates num_steps from the expected unlabelled count; make_method
  records the exact one (779, not 756). Reading that run back is no change of question; other
  steps at epochs = 0, or other epochs, are."""
  trained = {"train": {"epochs": 20.0, "num_steps": 779}, "optim": {"lr": 3e-4}}
  asked = {"train": {"epochs": 20.0, "num_steps": 756}, "optim": {"lr": 3e-4}}
  assert runner._changed(trained, asked) == []
  assert runner._changed({"train": {"epochs": 0, "num_steps": 779}}, {"train": {"epochs": 0, "num_steps": 756}}) \
      == ["train.num_steps: 779 -> 756"]
  assert runner._changed(trained, {"train": {"epochs": 30.0, "num_steps": 779}, "optim": {"lr": 3e-4}}) \
      == ["train.epochs: 20.0 -> 30.0"]
  assert runner._changed(trained, dict(asked, optim={"lr": 1e-4})) == ["optim.lr: 0.0003 -> 0.0001"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_code_version_is_the_checkouts_commit_dirty_only_for_code_edits(tmp_path):
  repo = tmp_path / "checkout"
  for rel in ("affectjax/__init__.py", "experiments/x.py", "README.md"):
    (repo / rel).parent.mkdir(parents=True, exist_ok=True)
    (repo / rel).write_text("a\n")

  def git(*args, cwd=repo):
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()
  git("init", "-q")
  git("add", ".")
  git("commit", "-qm", "first")
  head = git("rev-parse", "--short=7", "HEAD")
  package = str(repo / "affectjax")
  assert runner.code_version(package) == head
  (repo / "README.md").write_text("b\n")  # not code: the numbers cannot differ
  assert runner.code_version(package) == head
  (repo / "experiments" / "x.py").write_text("b\n")
  assert runner.code_version(package) == head + "+dirty"
  git("commit", "-qam", "second")
  assert runner.code_version(package) == git("rev-parse", "--short=7", "HEAD") != head
  (repo / "affectjax" / "new.py").write_text("a\n")  # an untracked module is an edit too
  assert runner.code_version(package).endswith("+dirty")
  # a package inside someone else's repository (a venv in a project) is not that repository's commit
  nested = repo / "venv" / "site" / "affectjax"
  nested.mkdir(parents=True)
  assert runner.code_version(str(nested)).startswith("affectjax ")
  plain = tmp_path / "site" / "affectjax"
  plain.mkdir(parents=True)
  assert runner.code_version(str(plain)).startswith("affectjax ")
