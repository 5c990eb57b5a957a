"""Fit, select, score: every choice a method makes from data (the triplet VAE's selected step and
SVM C, LeVAsa's chunks and CNN-ceiling step, Rb-VAE's fit-split selection probe that sweeps read)
is unchanged when the scoring split's labels are permuted, while the scored numbers move.
dual_domain and GANmut choose nothing from data (SWA and the evaluator run fixed schedules)."""
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
