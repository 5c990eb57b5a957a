"""LeVAsa evaluation: Table 1 alignment, Tables 2-3 probes and the figure writers."""
import jax
import numpy as np
import pytest

from affectjax.affect import ellipses as ell
from affectjax.affect.affectnet_stats import VA_MEANS, VA_STDS
from affectjax.data.example import EMOTIONS
from affectjax.evaluate import alignment, figures, probes


def test_continuous_alignment_hand_computed():
  pred = np.array([[0.5, 0.0], [0.0, -0.2], [1.0, 1.0]])
  true = np.array([[0.0, 0.2], [0.0, 0.2], [np.nan, 0.0]])  # third row has no truth: dropped
  m = alignment.continuous_alignment(pred, true)
  assert m["n"] == 2
  np.testing.assert_allclose(m["mse_valence"], (0.25 + 0.0) / 2)
  np.testing.assert_allclose(m["mae_valence"], (0.5 + 0.0) / 2)
  np.testing.assert_allclose(m["mse_arousal"], (0.04 + 0.16) / 2)
  np.testing.assert_allclose(m["mae_arousal"], (0.2 + 0.4) / 2)
  np.testing.assert_allclose(m["mse_combined"], 0.125 + 0.1)  # the paper's combined is V + A
  np.testing.assert_allclose(m["mae_combined"], 0.25 + 0.3)


def test_broadcast_errors_and_best_chunks():
  chunk = np.array([[1.0, 3.0], [0.0, 0.0]])
  e = alignment.broadcast_errors(chunk, np.array([1.0, 1.0]))
  np.testing.assert_allclose(e["mse"], (0 + 4 + 1 + 1) / 4)
  np.testing.assert_allclose(e["mae"], (0 + 2 + 1 + 1) / 4)
  rng = np.random.default_rng(0)
  va = rng.uniform(-1, 1, size=(500, 2))
  chunks = {"c0": rng.normal(size=(500, 4)),
            "c1": va[:, 1:2] + 0.05 * rng.normal(size=(500, 4)),  # planted arousal
            "c2": va[:, 0:1] + 0.05 * rng.normal(size=(500, 4))}  # planted valence
  v, a, errors = alignment.best_chunks(chunks, va)
  assert (v, a) == ("c2", "c1")
  assert errors["c2"]["valence"]["mse"] < 0.01 < errors["c0"]["valence"]["mse"]
  # One chunk good at both axes still yields two distinct chunks.
  v, a, _ = alignment.best_chunks({"x": chunks["c0"], "y": chunks["c2"]}, np.stack([va[:, 0]] * 2, 1))
  assert v != a


def test_discrete_alignment():
  logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
  t = np.array([0, 2])
  expected = -(np.log(np.exp(2) / (np.exp(2) + 2)) + np.log(1 / 3)) / 2
  np.testing.assert_allclose(alignment.discrete_alignment(logits, t), expected)
  probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  np.testing.assert_allclose(alignment.discrete_alignment(probs, t), expected)
  np.testing.assert_allclose(alignment.discrete_alignment(logits, np.array([0, -1])),
                             -np.log(np.exp(2) / (np.exp(2) + 2)))
  with pytest.raises(ValueError, match="class indices"):
    alignment.discrete_alignment(logits, np.array([0, 3]))


def test_paper_metric_is_about_half_the_true_mse():
  rng = np.random.default_rng(1)
  true = rng.uniform(-1, 1, size=(5000, 2))
  pred = true + rng.normal(0.0, [0.5, 0.3], size=(5000, 2))
  honest = alignment.continuous_alignment(pred, true)
  paper = alignment.paper_metric_alignment(pred, true, 0)
  for axis in ("valence", "arousal"):
    ratio = paper[f"mse_{axis}"] / honest[f"mse_{axis}"]
    assert 0.45 < ratio < 0.55  # 1,001 batch means / 2,000
    # |mean signed error| over 2 rows, halved: E|N(0, s^2 / 2)| / 2 = s / (2 sqrt(pi)).
    s = np.sqrt(honest[f"mse_{axis}"])
    assert abs(paper[f"mae_{axis}"] / (s / (2 * np.sqrt(np.pi))) - 1) < 0.1
  assert paper["mse_combined"] == paper["mse_valence"] + paper["mse_arousal"]
  # Exactly the notebook's arithmetic on a tiny case: 3 batches of 2, divisor (3 - 1) * 2.
  true = np.zeros((6, 2))
  pred = np.array([[1.0, 1.0], [1.0, -1.0]] * 3)
  m = alignment.paper_metric_alignment(pred, true, jax.random.key(0), num_batches=3)
  np.testing.assert_allclose(m["mse_valence"], 3 * 1.0 / 4)
  # Arousal errors +1, -1: a batch holding both has signed mean 0.
  assert m["mae_arousal"] <= m["mae_valence"] == 3 * 1.0 / 4
  # Chunks are scored by broadcast, as the original scored its 32-dim z_v and z_a.
  chunk_v = np.ones((6, 4))
  m = alignment.paper_metric_alignment((chunk_v, pred[:, 1]), true, 0, num_batches=3)
  np.testing.assert_allclose(m["mse_valence"], 0.75)


def test_markdown_table():
  t = alignment.markdown_table(["Model", "MSE"], [["LeVAsa", 0.1234], ["Vanilla", 2]])
  assert t.splitlines() == ["| Model | MSE |", "|---|---|", "| LeVAsa | 0.123 |", "| Vanilla | 2 |"]


def test_va_regression_linear_and_noise():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(600, 6))
  w = rng.normal(size=(6, 2))
  va = 0.15 * z @ w  # noiseless and linear
  res = probes.va_regression(z[:400], va[:400], z[400:], va[400:], seed=0)
  for axis in ("valence", "arousal"):
    assert res[axis]["r2"] > 0.95 and res[axis]["ev"] > 0.95
    assert res[axis]["mse"] < 0.05 * np.var(va[400:, 0 if axis == "valence" else 1])
  noise = rng.uniform(-1, 1, size=(600, 2))
  res = probes.va_regression(z[:400], noise[:400], z[400:], noise[400:], seed=0)
  for axis in ("valence", "arousal"):
    assert -0.3 < res[axis]["r2"] < 0.1
  # A (z for valence, z for arousal) pair regresses each axis from its own chunk.
  res = probes.va_regression((z[:400], noise[:400]), va[:400], (z[400:], noise[400:]), va[400:], 0)
  assert res["valence"]["r2"] > 0.9 and res["arousal"]["r2"] < 0.5


def test_emotion_accuracy_separable_and_noise():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 7, size=700)
  centres = rng.normal(0, 5, size=(7, 8))
  z = centres[labels] + rng.normal(size=(700, 8))
  assert probes.emotion_accuracy(z[:500], labels[:500], z[500:], labels[500:], seed=0) > 0.95
  noise = rng.normal(size=(700, 8))
  acc = probes.emotion_accuracy(noise[:500], labels[:500], noise[500:], labels[500:], seed=0,
                                max_iter=100)
  assert acc < 0.3  # chance is 1/7


def test_chunk_combinations():
  rows = probes.chunk_combinations()
  assert list(rows) == ["z_v", "z_a", "z_z", "z_v+z_a", "z_v+z_a+z_z"]
  assert rows["z_v+z_a+z_z"] == ["z_v", "z_a", "z_z"]
  chunks = {"z_v": np.ones((3, 2)), "z_a": np.zeros((3, 1)), "z_z": np.ones((3, 4))}
  assert probes.concat_chunks(chunks, rows["z_v+z_a"]).shape == (3, 3)


def test_figures_write_pngs(tmp_path):
  e = ell.from_stats(VA_MEANS, VA_STDS)
  labels = np.repeat(np.arange(8), 50)
  va = np.asarray(ell.sample_va(jax.random.key(0), e, labels))
  p = figures.plot_ellipses(str(tmp_path / "fig2.png"), e, EMOTIONS, samples=(va, labels))
  rng = np.random.default_rng(0)
  panel = {"z_v": va[:, :1] + rng.normal(size=(400, 3)), "z_a": rng.normal(size=(400, 3)),
           "va": va, "labels": labels}
  q = figures.plot_circumplex(str(tmp_path / "fig3.png"), {"LeVAsa": panel, "Vanilla": panel})
  imgs = {"original": rng.uniform(-1, 1, size=(5, 16, 16, 3)),
          "LeVAsa": rng.integers(0, 255, size=(5, 16, 16, 3), dtype=np.uint8),
          "gray": rng.uniform(0, 1, size=(3, 16, 16, 1))}
  r = figures.plot_reconstructions(str(tmp_path / "fig4.png"), imgs)
  for path in (p, q, r):
    with open(path, "rb") as f:
      head = f.read()
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) > 5000
