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
