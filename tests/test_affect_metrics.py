"""Affect metrics (affectjax.evaluate.affect_metrics) against their formulas, scikit-learn and
hand-built cases."""
import numpy as np
import pytest
from sklearn.metrics import mean_squared_error

from affectjax.evaluate import affect_metrics as am


def _ccc_formula(x, y):
  """Lin's CCC as 2 rho s_x s_y / (s_x^2 + s_y^2 + (m_x - m_y)^2), from Pearson's rho."""
  rho = np.corrcoef(x, y)[0, 1]
  return 2 * rho * x.std() * y.std() / (x.var() + y.var() + (x.mean() - y.mean())**2)


def test_ccc_against_formula():
  rng = np.random.default_rng(0)
  x = rng.normal(size=500)
  x -= x.mean()
  y = 0.6 * x + 0.3 + rng.normal(scale=0.5, size=500)
  assert am.concordance_cc(x, y) == pytest.approx(_ccc_formula(x, y), rel=1e-10)
  assert am.concordance_cc(x, x) == pytest.approx(1.0)
  assert am.concordance_cc(x, -x) == pytest.approx(-1.0)  # x centred: no mean-shift term
  # A shift or rescale lowers CCC (unlike Pearson's r).
  assert am.concordance_cc(x, x + 0.5) < 1 - 1e-3 and am.concordance_cc(x, 2 * x) < 1 - 1e-3
  both = am.concordance_cc(np.stack([x, y], 1), np.stack([y, x], 1))
  np.testing.assert_allclose(both, [_ccc_formula(x, y)] * 2, rtol=1e-10)


def test_ccc_batch_mean_and_missing_rows():
  rng = np.random.default_rng(1)
  x, y = rng.normal(size=100), rng.normal(size=100)
  batched = am.concordance_cc(x, y, batch_size=25)
  expected = np.mean([_ccc_formula(x[i:i + 25], y[i:i + 25]) for i in range(0, 100, 25)])
  assert batched == pytest.approx(expected, rel=1e-10)
  assert batched != pytest.approx(am.concordance_cc(x, y))  # the two definitions differ
  xn = np.concatenate([x, [np.nan]])
  assert am.concordance_cc(xn, np.concatenate([y, [0.0]])) == pytest.approx(_ccc_formula(x, y))


def test_rmse():
  rng = np.random.default_rng(2)
  x, y = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
  np.testing.assert_allclose(am.rmse(x, y),
                             np.sqrt(mean_squared_error(x, y, multioutput="raw_values")))
  assert am.rmse([0.0, 0.0], [3.0, 4.0]) == pytest.approx(np.sqrt(12.5))


def test_macro_f1_and_accuracy():
  labels, preds = [0, 0, 1, 1, -1], [0, 1, 1, 1, 0]
  # class 0: P 1, R 1/2 -> F1 2/3; class 1: P 2/3, R 1 -> F1 4/5.
  assert am.macro_f1(labels, preds) == pytest.approx((2 / 3 + 4 / 5) / 2)
  assert am.macro_f1(labels, preds, num_classes=3) == pytest.approx((2 / 3 + 4 / 5) / 3)
  assert am.accuracy(labels, preds) == pytest.approx(0.75)


def test_ece_built_example():
  probs = np.array([[0.85, 0.15], [0.85, 0.15], [0.35, 0.65], [0.55, 0.45]])
  labels = np.array([0, 1, 1, 1])
  # Bins of 0.1: (0.8, 0.9] acc 1/2 conf 0.85; (0.6, 0.7] acc 1 conf 0.65;
  # (0.5, 0.6] acc 0 conf 0.55.
  expected = 2 / 4 * 0.35 + 1 / 4 * 0.35 + 1 / 4 * 0.55
  assert am.expected_calibration_error(probs, labels, num_bins=10) == pytest.approx(expected)
  d = am.reliability_diagram(probs, labels, num_bins=10)
  np.testing.assert_array_equal(d["counts"], [0, 0, 0, 0, 0, 1, 1, 0, 2, 0])
  np.testing.assert_allclose(d["accuracy"][[5, 6, 8]], [0, 1, 0.5])
  np.testing.assert_allclose(d["confidence"][[5, 6, 8]], [0.55, 0.65, 0.85])
  assert np.isnan(d["accuracy"][0])
  # Calibrated: confidence 0.75 and three of four right.
  cal = np.tile([[0.75, 0.25]], (4, 1))
  assert am.expected_calibration_error(cal, [0, 0, 0, 1]) == pytest.approx(0.0)


def test_ece_against_loop():
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(400, 5)) * 2
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  labels = rng.integers(0, 5, 400)
  conf, pred = probs.max(1), probs.argmax(1)
  ece = 0.0
  for lo, hi in zip(np.linspace(0, 1, 16)[:-1], np.linspace(0, 1, 16)[1:]):
    m = (conf > lo) & (conf <= hi)
    if m.any():
      ece += m.mean() * abs((pred[m] == labels[m]).mean() - conf[m].mean())
  assert am.expected_calibration_error(probs, labels) == pytest.approx(ece)


def test_plot_reliability(tmp_path):
  rng = np.random.default_rng(4)
  probs = rng.dirichlet(np.ones(3), size=60)
  labels = rng.integers(0, 3, 60)
  path = am.plot_reliability(str(tmp_path / "rel.png"), {"one-hot": probs, "fused": probs[::-1]},
                             labels, num_bins=5, title="test")
  with open(path, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
