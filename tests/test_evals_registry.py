"""config.evals (affectjax/evaluate/registry.py): evaluators added by config report the numbers of
the shared probes computed independently on the same features, a registered evaluator is called,
and bad entries are one ConfigError line."""
import ml_collections
import numpy as np
import pytest

from affectjax import config as config_lib, train
from affectjax.evaluate import probes, registry
from conftest import levasa_tiny


def _spec(**kw):
  return ml_collections.ConfigDict(kw)


def test_config_evals_equal_the_probes_on_the_same_features(tmp_path, monkeypatch):
  seen = {}

  monkeypatch.setattr(registry, "TARGETLESS", set(registry.TARGETLESS))
  monkeypatch.setattr(registry, "EVALUATORS", dict(registry.EVALUATORS))

  @registry.register("mean_norm", needs_target=False)  # a user's own evaluator
  def mean_norm(fit, score, spec, seed):
    seen["fit_rows"], seen["score_rows"] = len(fit["x"]), len(score["x"])
    return {"value": float(np.linalg.norm(score["x"], axis=1).mean())}

  c = levasa_tiny(train__num_steps=2, data__num_identities=8, data__test_fraction=0.25)  # 2 test people
  c.evals.expr = _spec(type="linear_probe", feature="mu", target="label", max_fit=200)
  c.evals.va = _spec(type="ridge_r2", feature="mu", target="va")
  c.evals.who = _spec(type="identity_leakage", feature="mu")
  c.evals.norm = _spec(type="mean_norm", feature="mu")
  s = train.setup(c)
  host = train.host_state(train.init_state(s))
  metrics = {f"eval/{k}": v for k, v in s.method.evaluate(host, s.data, str(tmp_path)).items()}
  assert "eval/pixel_mse" in metrics  # the method's own evaluation runs beside config.evals
  method = s.method
  feats = lambda split, n=None: {k: np.concatenate(v) for k, v in _collect(method, host, split, n).items()}
  fit, score = feats(s.data.train, 200), feats(s.data.test)
  # the fit split's people are known: its C is chosen on whole people (as the scored ones are new)
  expect = probes.linear_classifier((fit["mu"], fit["label"]), (score["mu"], score["label"]),
                                    people=fit["identity"], seed=c.seed)
  assert np.isfinite(expect["accuracy"]) and metrics["eval/expr/accuracy"] == pytest.approx(expect["accuracy"], abs=1e-6)
  assert metrics["eval/expr/C"] == expect["C"]
  full = feats(s.data.train, 5000)
  r2 = probes.ridge_r2((full["mu"], full["va"]), (score["mu"], score["va"]), people=full["identity"])
  assert np.isfinite(r2["mean"]) and metrics["eval/va/r2"] == pytest.approx(r2["mean"], abs=1e-6)
  leak = probes.identity_leakage(score["mu"], score["identity"], seed=c.seed)
  assert np.isfinite(leak["accuracy"]) and metrics["eval/who/accuracy"] == pytest.approx(leak["accuracy"], abs=1e-6)
  assert metrics["eval/norm/value"] == pytest.approx(np.linalg.norm(score["mu"], axis=1).mean(), rel=1e-5)
  assert seen == {"fit_rows": min(5000, len(s.data.train)), "score_rows": len(s.data.test)}


def _collect(method, state, split, n):
  out = {"mu": [], "label": [], "va": [], "identity": []}
  n = len(split) if n is None else min(n, len(split))
  for i in range(0, n, 64):
    b = split.gather(np.arange(i, min(i + 64, n)))
    out["mu"].append(np.asarray(method.represent(state, b)["mu"]))
    for k in ("label", "va", "identity"):
      out[k].append(b[k])
  return out


def test_bad_entries_are_one_line():
  c = levasa_tiny()
  c.evals.x = _spec(type="nope", feature="mu")
  with pytest.raises(config_lib.ConfigError, match=r"config.evals.x.type='nope': expected one of 'linear_probe'"):
    train.setup(c)
  c.evals.x = _spec(type="linear_probe", feature="mu")
  with pytest.raises(config_lib.ConfigError, match=r"config.evals.x: needs target"):
    train.setup(c)
  with pytest.raises(config_lib.ConfigError, match="has no representation"):
    registry.check(c.evals, "ganmut", has_represent=False)
