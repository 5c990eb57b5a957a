"""Fit, select, score: every choice a method makes from data (the triplet VAE's selected step and
SVM C, LeVAsa's chunks and CNN-ceiling step, Rb-VAE's fit-split selection probe that sweeps read)
is unchanged when the scoring split's labels are permuted, while the scored numbers move.
dual_domain and GANmut choose nothing from data (SWA and the evaluator run fixed schedules); the
triplet VAE experiment's per-model tuning reads the validation ELBO only."""
import dataclasses
import json
import os

import numpy as np
import pytest

from affectjax import train
from affectjax.data import source as source_lib, sources
from conftest import load_config, with_fields


def permute_scoring_labels(monkeypatch):
  """sources.load with the test split's labels, VA and factors permuted across its examples."""
  real = sources.load

  def load(config):
    s = real(config)
    perm = np.random.default_rng(0).permutation(len(s.test))
    fields = {k: source_lib.read_field(s.test, k)[perm] for k in ("label", "va", "factors")
              if k in s.test.gather(np.arange(1))}
    return dataclasses.replace(s, test=source_lib.WithFields(s.test, fields))

  monkeypatch.setattr(sources, "load", load)


def _config(name, arg, **fields):
  c = load_config(name, arg)
  c.train.progress = False
  return with_fields(c, **fields)


# (method, config arg, overrides, what is chosen, a scored number the permutation must move)
CASES = {
    "triplet_vae": ("m2,tiny", dict(train__num_steps=4, eval__select_every=2),
                    ("eval/best_step", "eval/svm_C"), "eval/accuracy"),
    "rbvae": ("srbvae,tiny", dict(train__num_steps=2, train__epochs=0),
              ("eval/select/main/mae_avg", "eval/select/z/mae_avg"), "eval/main/mae_avg"),
    "levasa": ("continuous,tiny", dict(train__num_steps=2, train__report=True), ("selection",),
               "report/align_mse_combined"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_selection_never_reads_the_scoring_split(name, tmp_path, monkeypatch):
  arg, fields, chosen, scored = CASES[name]

  def run(workdir):
    _, metrics = train.train_and_evaluate(_config(name, arg, **fields), str(workdir))
    if "selection" in chosen:  # LeVAsa's report writes its choices beside its tables
      metrics = dict(metrics, selection=json.load(open(os.path.join(workdir, "levasa_report.json")))["selection"])
    return metrics

  plain = run(tmp_path / "plain")
  permute_scoring_labels(monkeypatch)
  permuted = run(tmp_path / "permuted")
  for key in chosen:
    assert key in plain, (key, sorted(plain))
    assert permuted[key] == plain[key], key
  assert permuted[scored] != plain[scored]  # the permutation reached what is scored
  if name == "levasa":
    assert "ceiling_best_step" in plain["selection"]


def test_triplet_vae_tuning_chooses_on_validation_elbo_never_on_the_scored_split(tmp_path):
  """experiments/triplet_vae.py --tune_gamma picks M2's gamma by the validation ELBO: the scored
  accuracies favour 0.04, the validation ELBO 0.16; swapping the scored numbers changes nothing
  but the table's cell (the script runs in a subprocess: experiment modules define absl flags)."""
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

  def write(scored):  # what affectjax.runner leaves for a finished run of 2 seeds
    for g, elbo in (("0.04", -50.0), ("0.16", -30.0)):
      d = tmp_path / "posed" / "tune" / f"m2_g{g}"
      d.mkdir(parents=True, exist_ok=True)
      per_seed = [{"eval/best_val_elbo": elbo + seed, "report/m2_accuracy": scored[g],
                   **{f"report/{row}_{k}": v for row in ("raw", "pca", "m2")
                      for k, v in (("dim", 8.0), ("identity_chance", 0.1))}} for seed in range(2)]
      (d / "results.json").write_text(json.dumps({"num_seeds": 2, "per_seed": per_seed}))

  def tables():
    subprocess.run([sys.executable, os.path.join(repo, "experiments", "triplet_vae.py"),
                    f"--workdir={tmp_path}", "--tables_only", "--settings=posed", "--models=m2",
                    "--tune_gamma=0.04,0.16", "--seeds=2"], check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])})
    return (tmp_path / "tables.md").read_text()

  write({"0.04": 0.9, "0.16": 0.5})
  first = tables()
  assert "- M2: chose m2_g0.16 (loss.gamma=0.04: -49.5; loss.gamma=0.16: -29.5)" in first
  assert "| M2 | 8 | 0.500 [0.500, 0.500] |" in first
  write({"0.04": 0.5, "0.16": 0.9})
  second = tables()
  assert "- M2: chose m2_g0.16" in second and "| M2 | 8 | 0.900 [0.900, 0.900] |" in second


def test_triplet_vae_tables_pair_each_claim_over_the_seeds_both_arms_hold(tmp_path):
  """--only=m2 --seeds=4 after a 2-seed run of every model: the VAE is read with its 2 seeds, M2
  has 4; M2 vs VAE pairs 2 seeds, M2 vs the raw landmarks 4 (the raw row, the same in every
  seed's report, is taken from the run with the most seeds)."""
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  for model, n in (("vae", 2), ("m2", 4)):
    d = tmp_path / "posed" / model
    d.mkdir(parents=True)
    per_seed = [{"report/raw_accuracy": 0.5, "report/vae_accuracy": 0.6 + 0.01 * s,
                 "report/m2_accuracy": 0.7 + 0.02 * s * s,
                 **{f"report/{row}_{k}": v for row in ("raw", "pca", model)
                    for k, v in (("dim", 8.0), ("identity_chance", 0.1))}} for s in range(n)]
    (d / "results.json").write_text(json.dumps({"num_seeds": n, "per_seed": per_seed}))
  subprocess.run([sys.executable, os.path.join(repo, "experiments", "triplet_vae.py"),
                  f"--workdir={tmp_path}", "--tables_only", "--settings=posed", "--models=vae,m2",
                  "--only=m2", "--seeds=4"], check=True, capture_output=True,
                 env={**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])})
  lines = (tmp_path / "tables.md").read_text().splitlines()
  raw = next(line for line in lines if line.startswith("- M2 > None (raw) on accuracy"))
  vae = next(line for line in lines if line.startswith("- M2 > VAE on accuracy"))
  assert "n = 4 / 4" in raw and "n = 2 / 2" in vae, (raw, vae)


def test_dual_domain_train_only_reads_the_other_runs_with_their_seeds(tmp_path):
  """--seeds=4 --train_only='t3_euclid_*' over finished 2-seed one-hot and 4-seed Euclidean runs:
  nothing trains, one-hot is read with its 2 seeds (its cells say n = 2), and the claim pairs 2;
  a run with no results that --train_only excludes is a clear error, not a silent gap."""
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  rng = np.random.default_rng(0)
  for name, n in (("t3_onehot_noise0", 2), ("t3_euclid_noise0", 4)):
    d = tmp_path / name
    d.mkdir()
    per_seed = [{"report/f1": 0.8 + 0.01 * s, "report/accuracy_clean": 0.8, "report/ece": 0.1,
                 "report/accuracy": 0.8, "report/rmse_v": 0.2, "report/rmse_a": 0.2,
                 "report/ccc_v": 0.5, "report/ccc_a": 0.5} for s in range(n)]
    (d / "results.json").write_text(json.dumps({"num_seeds": n, "per_seed": per_seed}))
    for s in range(n):
      (d / f"seed_{s}").mkdir()
      np.savez(d / f"seed_{s}" / "predictions.npz", label=rng.integers(0, 8, 50),
               va=rng.uniform(-1, 1, (50, 2)))
  script = [sys.executable, os.path.join(repo, "experiments", "dual_domain.py"),
            f"--workdir={tmp_path}", "--size=tiny", "--only=table3", "--noise=0", "--seeds=4",
            "--train_only=t3_euclid_*"]
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
  out = subprocess.run(script + ["--kinds=onehot,euclid"], capture_output=True, text=True, env=env)
  assert out.returncode == 0, out.stderr[-2000:]
  assert "t3_onehot_noise0: read with its 2 seed(s) of the 4 asked" in out.stdout
  lines = (tmp_path / "tables.md").read_text().splitlines()
  f1 = next(line for line in lines if line.startswith("| 0 |"))
  assert f1.count("(n = 2)") == 1 and "0.805 [" in f1, f1  # one-hot: the mean of 0.80, 0.81
  claim = next(line for line in lines if line.startswith("- Fusion (Euclidean) beats one-hot at 0 % noise: F1"))
  assert "n = 2 / 2" in claim, claim
  missing = subprocess.run(script + ["--kinds=onehot,gmm"], capture_output=True, text=True, env=env)
  assert missing.returncode != 0 and "t3_gmm_noise0 has no results" in missing.stderr + missing.stdout


def test_levasa_only_reads_the_other_runs_with_their_seeds(tmp_path):
  """LeVAsa's page records with Vanilla IMFDB cut to 2 seeds, then --seeds=<levasa_afew's seeds>
  --only=levasa_afew: nothing trains, Vanilla IMFDB is read with its 2, the tables say so, its
  claims pair 2 seeds and the means beside a line are over those seeds; an --only that names no
  model is a usage error."""
  import shutil
  import subprocess
  import sys
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  records = os.path.join(repo, "docs", "results", "levasa")
  shutil.copytree(records, tmp_path, dirs_exist_ok=True)
  k = json.loads((tmp_path / "levasa_afew" / "results.json").read_text())["num_seeds"]
  assert k >= 3  # the run --only names: --seeds = its seeds, so it trains nothing
  path = tmp_path / "vanilla_imfdb" / "results.json"
  record = json.loads(path.read_text())
  record.update(num_seeds=2, per_seed=record["per_seed"][:2], seeds=record["seeds"][:2],
                blocks=[dict(record["blocks"][0], num_seeds=2)])
  path.write_text(json.dumps(record))
  script = [sys.executable, os.path.join(repo, "experiments", "levasa.py"), f"--workdir={tmp_path}",
            f"--seeds={k}"]
  env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
  out = subprocess.run(script + ["--only=levasa_afew"], capture_output=True, text=True, env=env)
  assert out.returncode == 0, out.stderr[-2000:]
  assert f"vanilla_imfdb: read with its 2 seed(s) of the {k} asked" in out.stdout
  assert "== levasa_afew" not in out.stdout  # nothing trained
  text = (tmp_path / "tables.md").read_text()
  assert "Seeds per model: vanilla_imfdb 2, levasa_imfdb_continuous " in text
  lines = text.splitlines()
  vs_vanilla = next(line for line in lines if line.startswith("- z_v regresses valence better"))
  own = next(line for line in lines if line.startswith("- LeVAsa's z_v+z_a beats its own"))
  assert "n = 2 / 2" in vs_vanilla and "n = 2 / 2" not in own, (vs_vanilla, own)
  discrete = next(line for line in lines if line.startswith("- z_v+z_a predicts emotion better (Table 3, discrete)"))
  assert "n = 2 / 2" in discrete, discrete  # vanilla_imfdb's 2 beside levasa_imfdb_discrete's 3
  a, b = (float(x.split(" [")[0]) for x in discrete.rsplit("(", 1)[1].rstrip(")").split(" vs "))
  diff = float(discrete.split("A - B = ")[1].split(" ")[0])
  assert abs((a - b) - diff) < 2e-4, discrete  # the cells are over the seeds the test pairs
  bad = subprocess.run(script + ["--only=levasa"], capture_output=True, text=True, env=env)
  assert bad.returncode != 0 and "--only=levasa: not a model here" in bad.stderr + bad.stdout
