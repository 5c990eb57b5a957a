"""Verdicts over seeds: paired and Welch t-tests equal scipy's, Holm's adjustment a hand-computed
case, the seeds-needed power calculation textbook values, and the experiments' claim lists."""
import functools
import importlib.util
import math
import os

import numpy as np
import pytest
from scipy import stats

from affectjax.evaluate import seeds
from conftest import REPO


def test_paired_comparison_equals_scipy_and_its_interval_covers_by_construction():
  a, b = [0.61, 0.70, 0.66, 0.72], [0.55, 0.64, 0.65, 0.60]
  c = seeds.compare("A beats B", a, b, paired=True)
  assert c.test == "paired t" and c.n_a == c.n_b == 4
  np.testing.assert_allclose(c.p, stats.ttest_rel(a, b).pvalue, rtol=1e-12)
  d = np.subtract(a, b)
  half = stats.t.ppf(0.975, 3) * d.std(ddof=1) / 2
  np.testing.assert_allclose([c.diff, c.lo, c.hi], [d.mean(), d.mean() - half, d.mean() + half])


def test_a_paired_claim_over_arms_of_unequal_seeds_uses_and_shows_the_seeds_both_hold():
  """An arm with more seeds (--only added them) pairs its first seeds with the other's; the means
  the page shows are those seeds' means, so A - B is their difference."""
  a, b = [0.61, 0.70, 0.66, 0.72, 0.20, 0.21], [0.55, 0.64, 0.65, 0.60]
  c = seeds.compare("A beats B", a, b, paired=True)
  assert (c.n_a, c.n_b) == (4, 4)
  np.testing.assert_allclose(c.p, stats.ttest_rel(a[:4], b).pvalue, rtol=1e-12)
  np.testing.assert_allclose([c.mean_a, c.mean_b], [np.mean(a[:4]), np.mean(b)])
  assert c.mean_a - c.mean_b == pytest.approx(c.diff)


def test_welch_comparison_equals_scipy():
  a, b = [1.0, 1.4, 0.9, 1.2, 1.3], [0.2, 0.9, 0.4]
  c = seeds.compare("x", a, b, paired=False, higher_is_better=False)
  assert c.test == "Welch t" and (c.n_a, c.n_b) == (5, 3)
  np.testing.assert_allclose(c.p, stats.ttest_ind(a, b, equal_var=False).pvalue, rtol=1e-12)
  assert c.lo < c.diff < c.hi and c.diff == pytest.approx(np.mean(a) - np.mean(b))


def test_holm_is_the_step_down_adjustment():
  # sorted 0.01, 0.03, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.03), max(0.06, 1 * 0.04)
  assert seeds.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
  adjusted = seeds.holm([0.2, float("nan"), 0.001])
  assert adjusted[0] == pytest.approx(0.2) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.002)


def test_seeds_needed_matches_the_textbook_power_tables():
  # Cohen's d = 1 at alpha 0.05 two-sided, power 0.8: 10 pairs (paired), 17 per group (two groups)
  assert seeds._seeds_needed(1.0, paired=True) == 10
  assert seeds._seeds_needed(1.0, paired=False) == 17
  assert seeds._seeds_needed(0.01, paired=True) is None  # beyond 100


def test_judge_directions_correction_and_lines():
  claims = seeds.Claims()
  claims.add("A higher", [2.0, 2.1, 2.2, 2.05], [1.0, 1.1, 1.15, 1.0], paired=True)
  claims.add("A lower (is better) -- but it is higher", [2.0, 2.1, 2.2, 2.05], [1.0, 1.1, 1.15, 1.0],
             paired=True, higher_is_better=False)
  claims.add("noise", [1.0, 1.2, 0.9, 1.1], [1.05, 1.0, 1.1, 1.0], paired=True)
  claims.add("one seed", [1.0], [0.0], paired=True)
  judged = claims.judged()
  assert [c.verdict for c in judged] == ["holds", "does NOT hold", "inconclusive", "inconclusive"]
  assert judged[0].p_holm == pytest.approx(min(1, 3 * judged[0].p))  # 3 tested claims
  assert "n = 4 / 4" in judged[0].line() and "paired t p = " in judged[0].line()
  assert "seeds per arm would decide it" in judged[2].line()
  assert judged[3].line().startswith("inconclusive (n = 1 / 1")


def test_seeds_needed_of_an_inconclusive_claim_is_at_its_holm_level():
  """A claim whose raw p clears 0.05 but not its Holm level needs more seeds than its n: the
  estimate is at that level (0.05 / (m - rank)), not at 0.05 (which said 'about n')."""
  claims = seeds.Claims()
  claims.add("clear", [2.0, 2.1, 2.2], [1.0, 1.1, 1.15], paired=True)
  claims.add("borderline", [1.10, 1.30, 1.25], [1.00, 1.10, 1.10], paired=True)  # raw p ~ 0.035
  for k in range(3):  # a family of 5: the borderline claim's level is 0.05 / 4
    claims.add(f"noise {k}", [1.0, 1.2, 0.9], [1.05 + k / 10, 1.0, 1.1], paired=True)
  judged = claims.judged()
  b = judged[1]
  assert b.p < 0.05 and b.p_holm >= 0.05 and b.verdict == "inconclusive"
  d = np.subtract([1.10, 1.30, 1.25], [1.00, 1.10, 1.10])
  effect = d.mean() / d.std(ddof=1)
  at_05 = seeds._seeds_needed(effect, paired=True)
  rank = sorted(c.p for c in judged).index(b.p)
  assert b.seeds_needed == seeds._seeds_needed(effect, paired=True, alpha=0.05 / (5 - rank))
  assert b.seeds_needed > at_05 and b.seeds_needed > 3
  assert f"about {b.seeds_needed} seeds" in b.line() and "Holm level" in b.line()


def test_the_paper_is_one_holm_family_across_its_tables(monkeypatch):
  """Under experiment.run (PAPER_WIDE) two tables' groups of claims are corrected together:
  each line waits as a placeholder, and resolve() writes Holm over all three p-values."""
  monkeypatch.setattr(seeds, "JUDGED", [])
  monkeypatch.setattr(seeds, "PAPER_WIDE", True)
  first, second = seeds.Claims(), seeds.Claims()
  first.add("table 1", [2.0, 2.1, 2.2, 2.05], [1.0, 1.1, 1.15, 1.0], paired=True)
  second.add("table 2a", [1.0, 1.3, 0.9, 1.2], [1.0, 1.0, 1.0, 1.0], paired=True)
  second.add("table 2b", [3.0, 3.1, 3.3, 3.2], [1.0, 1.2, 1.1, 1.0], paired=True)
  text = "\n".join(f"- {c.text}: {c.line()}" for c in first.judged() + second.judged())
  assert "[[claim 0]]" in text and "[[claim 2]]" in text
  text = seeds.resolve(text)
  ps = [c.p for c in seeds.JUDGED]
  want = seeds.holm(ps)  # one family of 3, not a family of 1 and one of 2
  assert [c.p_holm for c in seeds.JUDGED] == pytest.approx(want)
  assert seeds.JUDGED[0].p_holm > ps[0]  # alone in its table's family it would keep its own p
  assert "[[claim" not in text and f"(Holm {want[1]:.3g})" in text
  assert all(c.verdict != "pending" for c in seeds.JUDGED)


@functools.cache
def _experiment(name):
  spec = importlib.util.spec_from_file_location(f"exp_{name}", os.path.join(REPO, "experiments", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_rbvae_claims_are_judged_together():
  rbvae = _experiment("rbvae")
  runs = {"vae": [{"main/avg": v, "z/avg": v} for v in (0.08, 0.085, 0.083)],
          "srbvae": [{"main/avg": e, "z/avg": z} for e, z in ((0.05, 0.09), (0.055, 0.088), (0.052, 0.091))]}
  text = rbvae._verdicts("digits", runs, "avg")
  assert "- sRb-VAE (e) beats VAE: holds: A - B = -0.0" in text
  assert "- sRb-VAE: e predicts the target factors better than z: holds" in text
  assert "Holm" in text and "n = 3 / 3" in text


def test_rbvae_sweep_chooses_on_the_fit_split_never_on_the_scored_one(tmp_path):
  """--sweep picks each baseline's value by the selection probe (fit split only): the scored
  numbers favour beta = 1, the selection numbers beta = 5; permuting what the scored split says
  (here: swapping its numbers between the two values) changes nothing."""
  import json
  from absl import flags
  rbvae = _experiment("rbvae")
  def write(scored):  # what affectjax.runner leaves for a finished run of 2 seeds
    for reg, sel in (("1", 0.09), ("5", 0.06)):
      d = os.path.join(str(tmp_path), *rbvae.run_name("digits", "beta_vae", reg).split("/"))
      os.makedirs(d, exist_ok=True)
      with open(os.path.join(d, "results.json"), "w") as fh:
        json.dump({"num_seeds": 2, "per_seed": [
            {"eval/main/mae_avg": scored[reg], "eval/select/main/mae_avg": sel + 0.001 * seed}
            for seed in range(2)]}, fh)
  flags.FLAGS(["rbvae", "--sweep=1,5", "--seeds=2", "--only=none"])
  try:
    write({"1": 0.05, "5": 0.10})
    runs, chosen = rbvae.collect(str(tmp_path), "digits")
    assert chosen["beta_vae"] == "5" and runs["beta_vae"][0]["main/mae_avg"] == 0.10
    write({"1": 0.10, "5": 0.05})
    assert rbvae.collect(str(tmp_path), "digits")[1]["beta_vae"] == "5"
  finally:
    flags.FLAGS.unparse_flags()
