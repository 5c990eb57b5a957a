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


def test_va_angle_closed_form():
  va = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [0.5, 0.5]])
  np.testing.assert_allclose(figures.va_angle(va), [0.0, 90.0, 180.0, -90.0, 45.0])


def test_unlabelled_circumplex_is_coloured_by_the_true_va(tmp_path):
  """An AFEW-like panel (every label -1) must not be one grey cloud: its dots carry colour."""
  import matplotlib.image
  rng = np.random.default_rng(0)
  va = rng.uniform(-1, 1, size=(300, 2))
  panel = {"z_v": va[:, :1] + 0.1 * rng.normal(size=(300, 2)), "z_a": va[:, 1:] + 0.1 * rng.normal(size=(300, 2)),
           "va": va, "labels": -np.ones(300, int)}
  img = matplotlib.image.imread(figures.plot_circumplex(str(tmp_path / "afew.png"), {"AFEW-like": panel}))
  rgb = img[..., :3]
  coloured = (rgb.max(-1) - rgb.min(-1)) > 0.2  # grey and black pixels have equal channels
  assert coloured.mean() > 0.01


# ---------------------------------------------------------------- like-for-like readouts (issue 9)

from affectjax.data.synthetic import FACTOR_NAMES  # noqa: E402
from affectjax.methods.levasa import evaluate as levasa_eval  # noqa: E402
from conftest import load_config  # noqa: E402

_FACTORS = list(FACTOR_NAMES)


def _config(variant):
  c = load_config("levasa", f"{variant},tiny")
  c.eval.probe_seed = 0
  return c


def _split(rng, n, chunks, labels=None):
  """A fake encoded split: chunks {name: [n, d]}, VA from the planted signals, factors with the
  true intensity, valence and arousal in their FACTOR_NAMES columns."""
  va = np.clip(rng.uniform(-0.8, 0.8, size=(n, 2)), -1, 1)
  factors = np.zeros((n, len(_FACTORS)), np.float32)
  factors[:, _FACTORS.index("intensity")] = rng.uniform(0, 1, n)
  factors[:, _FACTORS.index("valence")] = va[:, 0]
  factors[:, _FACTORS.index("arousal")] = va[:, 1]
  labels = rng.integers(0, 8, n) if labels is None else labels
  factors[:, _FACTORS.index("clean_label")] = labels
  enc = {"va": va.astype(np.float32), "label": labels, "factors": factors,
         "pixel_mse": np.full(n, 0.01)}
  enc.update({k: v(va) if callable(v) else v for k, v in chunks.items()})
  return enc


def _planted(rng, n, v_chunk="z_v", a_chunk="z_a"):
  chunks = {k: rng.normal(size=(n, 4)) for k in levasa_eval.CHUNKS}
  split = _split(rng, n, chunks)
  split[v_chunk] = split["va"][:, :1] + 0.1 * rng.normal(size=(n, 4))
  split[a_chunk] = split["va"][:, 1:] + 0.1 * rng.normal(size=(n, 4))
  return split


def test_linear_readout_is_ridge_on_standardised_inputs():
  from sklearn.linear_model import Ridge
  rng = np.random.default_rng(0)
  x, xt = rng.normal(2.0, 3.0, size=(200, 5)), rng.normal(2.0, 3.0, size=(50, 5))
  y = x @ rng.normal(size=5) + rng.normal(size=200)
  y[3] = np.nan  # dropped from the fit
  keep = np.isfinite(y)
  mean, std = x[keep].mean(0), x[keep].std(0)
  alpha = 0.1
  ref = Ridge(alpha=alpha * keep.sum()).fit((x[keep] - mean) / std, y[keep])
  np.testing.assert_allclose(alignment.linear_readout(x, y, xt, alpha=alpha),
                             ref.predict((xt - mean) / std), rtol=1e-8, atol=1e-10)


def test_identical_encoders_get_identical_table_1a_numbers():
  rng = np.random.default_rng(1)
  train, test = _planted(rng, 300), _planted(rng, 120)
  van = levasa_eval.summarize(train, test, _config("vanilla"), _FACTORS, references=False)
  # The same encoder with (continuous) heads: its chunks must score exactly as the Vanilla VAE's.
  heads = lambda s: {**s, "r_v": s["z_v"][:, :1] * 0.5, "r_a": s["z_a"][:, :1] * 0.5}
  lev = levasa_eval.summarize(heads(train), heads(test), _config("continuous"), _FACTORS,
                              references=False)
  assert van["chunks"] == lev["chunks"] == {"z_v": "z_v", "z_a": "z_a", "z_z": "z_z"}
  for subset in ("all", "expressive"):
    assert van["rows"]["model"][subset] == lev["rows"]["model"][subset]
  assert "heads" not in van["rows"]
  # The heads are their own row, scored against the target with their R^2 = 1 - MSE / Var.
  h = lev["rows"]["heads"]["all"]["align"]
  pred = 0.5 * test["z_v"][:, 0]
  np.testing.assert_allclose(h["mse_valence"], np.mean((pred - test["va"][:, 0]) ** 2), rtol=1e-6)
  np.testing.assert_allclose(h["r2_valence"], 1 - h["mse_valence"] / np.var(test["va"][:, 0]), rtol=1e-6)
  a = lev["rows"]["model"]["all"]["align"]
  assert a["r2_valence"] > 0.9 and a["r2_arousal"] > 0.9  # the planted signals are read out
  # 'expressive' holds exactly the test rows with true intensity > 0.5.
  intensity = test["factors"][:, _FACTORS.index("intensity")]
  assert lev["subsets"] == {"all": 120, "expressive": int(np.sum(intensity > 0.5))}


def test_vanilla_chunks_are_chosen_on_the_training_split():
  rng = np.random.default_rng(2)
  # Valence sits in z_z on the training split but in z_v on the test split.
  train, test = _planted(rng, 300, v_chunk="z_z"), _planted(rng, 120, v_chunk="z_v")
  on_test, _, _ = alignment.best_chunks({k: test[k] for k in levasa_eval.CHUNKS}, test["va"],
                                        readout="linear")
  assert on_test == "z_v"  # choosing on the test split would pick another chunk
  s = levasa_eval.summarize(train, test, _config("vanilla"), _FACTORS, references=False)
  assert s["chunks"] == {"z_v": "z_z", "z_a": "z_a", "z_z": "z_v"}
  # Table 1(a) valence is the ridge readout of the training-chosen chunk, scored on the test split.
  pred = alignment.linear_readout(train["z_z"], train["va"][:, 0], test["z_z"])
  np.testing.assert_allclose(s["rows"]["model"]["all"]["align"]["mse_valence"],
                             np.mean((pred - test["va"][:, 0]) ** 2), rtol=1e-9)
  assert s["rows"]["model"]["all"]["align"]["r2_valence"] < 0.1  # z_z carries nothing on test


def test_bce_heads_are_scored_with_normalised_sigmoids():
  rng = np.random.default_rng(3)
  c = _config("discrete")
  assert c.loss.va_loss == "bce"
  k = 2 * c.loss.va_levels + 1
  train, test = _planted(rng, 200), _planted(rng, 80)
  for s in (train, test):
    s["r_v"], s["r_a"] = rng.normal(size=(len(s["va"]), k)), rng.normal(size=(len(s["va"]), k))
  out = levasa_eval.summarize(train, test, c, _FACTORS, references=False)
  cls = np.clip(np.round(10 * test["va"]), -10, 10).astype(int) + 10
  sig = 1 / (1 + np.exp(-test["r_v"]))
  p = sig / sig.sum(1, keepdims=True)
  p = (1 - alignment.PROB_FLOOR) * p + alignment.PROB_FLOOR / k
  expected = -np.mean(np.log(p[np.arange(len(p)), cls[:, 0]]))
  ce = out["rows"]["heads"]["all"]["ce"]["valence"]
  np.testing.assert_allclose(ce, expected, rtol=1e-9)
  soft = alignment.discrete_alignment(test["r_v"], cls[:, 0], "logits")
  assert abs(ce - soft) > 0.05  # a softmax CE would be another number
  # The heads' continuous readout is the expected level under the same distribution.
  np.testing.assert_allclose(levasa_eval.head_va(test, c)[:, 0], p @ (np.arange(-10, 11) / 10))
  # The model row scores the same logistic probe as the Vanilla VAE's (not the heads).
  assert out["rows"]["model"]["all"]["ce"]["valence"] != ce


def test_reference_rows_equal_their_closed_forms():
  rng = np.random.default_rng(4)
  labels_tr = rng.choice(8, 300, p=[0.3, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05])
  train = _planted(rng, 300)
  train["label"] = labels_tr
  test = _planted(rng, 120)
  c = _config("continuous")
  s = levasa_eval.summarize(train, test, c, _FACTORS, references=True)
  chance = s["rows"]["chance"]
  mean = train["va"].astype(np.float64).mean(0)
  for subset, m in (("all", np.ones(120, bool)),
                    ("expressive", test["factors"][:, _FACTORS.index("intensity")] > 0.5)):
    y = test["va"][m].astype(np.float64)
    for i, axis in enumerate(("valence", "arousal")):
      mse = np.mean((y[:, i] - mean[i]) ** 2)
      np.testing.assert_allclose(chance[subset]["align"][f"mse_{axis}"], mse, rtol=1e-6)
      np.testing.assert_allclose(chance[subset]["align"][f"mae_{axis}"], np.mean(np.abs(y[:, i] - mean[i])), rtol=1e-6)
      np.testing.assert_allclose(chance[subset]["regression"][axis]["mse"], mse, rtol=1e-6)
      np.testing.assert_allclose(chance[subset]["regression"][axis]["ev"], 0.0, atol=1e-9)
      np.testing.assert_allclose(chance[subset]["regression"][axis]["r2"], 1 - mse / np.var(y[:, i]), rtol=1e-6)
      # CE of the training class frequencies (floored like every discrete readout).
      k = 21
      cls_tr = np.clip(np.round(10 * train["va"][:, i]), -10, 10).astype(int) + 10
      cls_te = np.clip(np.round(10 * y[:, i]), -10, 10).astype(int) + 10
      prior = np.bincount(cls_tr, minlength=k) / 300
      prior = (1 - alignment.PROB_FLOOR) * prior + alignment.PROB_FLOOR / k
      np.testing.assert_allclose(chance[subset]["ce"][axis], -np.mean(np.log(prior[cls_te])), rtol=1e-9)
    # Majority class: class 0 (30 % of the training labels).
    for combo, acc in chance[subset]["accuracy"].items():
      assert acc == np.mean(test["label"][m] == 0)
  # The factor ceiling reads the true VA, so it aligns almost perfectly; chance's R^2 is ~0.
  assert s["rows"]["factors"]["all"]["align"]["r2_valence"] > 0.99
  assert abs(chance["all"]["align"]["r2_valence"]) < 0.1
  assert "pixels" not in s["rows"]  # no pixels were encoded


def test_pixel_features_pool_and_project():
  rng = np.random.default_rng(5)
  imgs = rng.uniform(-1, 1, size=(60, 8, 8, 3)).astype(np.float32)
  pooled = probes._pool(imgs, 4)
  np.testing.assert_allclose(pooled[0, :3], imgs[0, :2, :2].mean(axis=(0, 1)), rtol=1e-6)
  tr, te = probes.pixel_features(imgs[:50], imgs[50:], components=256, max_side=4)
  assert tr.shape == (50, 5) and te.shape == (10, 5)  # one component per 10 training rows
  np.testing.assert_allclose(tr.mean(0), 0, atol=1e-5)  # centred on the training rows


def test_reconstruction_vs_energy_per_class():
  enc = {"pixel_mse": np.array([0.1, 0.2, 0.3, 0.4]), "label": np.array([0, 1, 1, -1]),
         "factors": np.zeros((4, len(_FACTORS)), np.float32)}
  enc["factors"][:, _FACTORS.index("clean_label")] = [0, 1, 1, 2]  # the true class wins over -1
  rows = levasa_eval.reconstruction_vs_energy(enc, np.array([1.0, 2.0, 4.0, 8.0]), 8, 10, _FACTORS)
  assert rows["all"] == {"n": 4, "recon_sse": 2.5, "expression_energy": 3.75, "ratio": 2.5 / 3.75}
  assert rows["happy"]["n"] == 2 and rows["happy"]["expression_energy"] == 3.0
  np.testing.assert_allclose(rows["happy"]["recon_sse"], 2.5)
  assert rows["sad"]["recon_sse"] == pytest.approx(4.0) and "fear" not in rows
  assert np.isnan(levasa_eval.reconstruction_vs_energy(enc, None, 8, 10, _FACTORS)["all"]["expression_energy"])


def test_loss_scale_converts_the_original_weights():
  from affectjax.losses import squared_error
  import jax.numpy as jnp
  c = load_config("levasa", "continuous")
  p = c.data.image_size ** 2 * 3
  # The code's objective on [0, 1] images, per-pixel means, times 4 P is this one on [-1, 1].
  rng = np.random.default_rng(6)
  x01, y01 = rng.uniform(size=(2, 8, 8, 3)), rng.uniform(size=(2, 8, 8, 3))
  code_recon = np.mean((x01 - y01) ** 2)  # the notebook's mse_loss (batch of 2, P = 192)
  ours = np.mean(squared_error(jnp.asarray(2 * x01 - 1), jnp.asarray(2 * y01 - 1)))
  np.testing.assert_allclose(ours, 4 * 192 * code_recon, rtol=1e-5)
  assert c.loss.kl_weight == 4 * p * 0.5 / p == 2.0
  np.testing.assert_allclose(c.loss.va_weight, 4 * p * 0.3)
  tiny = load_config("levasa", "continuous,tiny")
  np.testing.assert_allclose(tiny.loss.va_weight, 4 * 32 * 32 * 3 * 0.3)
  assert load_config("levasa", "vanilla").loss.va_weight == 0.0
  paper = load_config("levasa", "continuous,paper_length")
  assert paper.train.num_steps == 26_000 and paper.train.batch_size == 128


# ---------------------------------------------------------------- the supervised CNN ceiling (issue 9)

from affectjax.data import sources  # noqa: E402
from affectjax.evaluate import cnn_ceiling  # noqa: E402


def _pattern_images(va, labels, rng, classes=8, size=16):
  """Images that show the answers under faint noise: the top-left quarter's red level is the
  valence, the top-right quarter's the arousal, and a green stripe in the bottom half sits at the
  column block of the label."""
  x = 0.05 * rng.standard_normal((len(va), size, size, 3)).astype(np.float32)
  h, w = size // 2, size // classes
  x[:, :h, :h, 0] += va[:, 0, None, None]
  x[:, :h, h:, 0] += va[:, 1, None, None]
  for i, label in enumerate(labels):
    x[i, h:, label * w:(label + 1) * w, 1] += 1.0
  return x


def test_cnn_ceiling_reads_a_visible_pattern_and_keeps_its_best_validation_step():
  rng = np.random.default_rng(7)
  identity = np.repeat(np.arange(48), 10)
  va = rng.uniform(-0.9, 0.9, (480, 2)).astype(np.float32)
  labels = rng.integers(0, 4, 480)
  x = _pattern_images(va, labels, rng, classes=4)
  seen_va, seen_labels = va.copy(), labels.copy()
  seen_va[::7, 1], seen_labels[::5] = np.nan, -1  # unknown annotations are masked, not learned
  train, test = sources.split_by_identity(identity, 0.2, 0)
  fit_idx, val_idx = cnn_ceiling.validation_split(identity, train, 0)
  # Early stopping holds out whole TRAINING identities; the test identities are never seen.
  assert sorted(np.concatenate([fit_idx, val_idx]).tolist()) == train.tolist()
  assert not set(identity[fit_idx]) & set(identity[val_idx])
  assert len(np.unique(identity[val_idx])) == 4  # a tenth of the 38 training people
  heads = {"va": cnn_ceiling.Regression(seen_va),
           "va_classes": cnn_ceiling.Classes(alignment.va_targets_to_classes(seen_va, 2), 5),
           "emotion": cnn_ceiling.Classes(seen_labels[:, None], 4)}
  kw = dict(seed=0, eval_every=25, patience=3, batch_size=32)
  net = cnn_ceiling.fit(x, heads, fit_idx, val_idx, max_steps=800, **kw)
  out = cnn_ceiling.outputs(net, x, test)
  assert np.mean(out["emotion"][:, 0].argmax(-1) == labels[test]) >= 0.95
  mse = np.mean((out["va"] - va[test]) ** 2, 0)
  assert np.all(mse < 0.05 * np.var(va[test], 0)), mse  # R^2 > 0.95 on both axes
  cls = alignment.va_targets_to_classes(va[test], 2)
  assert np.mean(out["va_classes"].argmax(-1) == cls) > 0.8  # 5 levels per axis, chance ~0.2
  # It stopped `patience` evaluations after its best validation loss and kept that step's network:
  # training again for exactly best_step steps ends on the same parameters (deterministic).
  steps, losses = map(np.array, zip(*net.history))
  best = int(np.argmin(losses))
  assert net.best_step == steps[best] < net.steps < 800
  assert len(losses) - 1 - best == kw["patience"] and steps.tolist() == list(range(25, net.steps + 1, 25))
  again = cnn_ceiling.fit(x, heads, fit_idx, val_idx, max_steps=net.best_step, **kw)
  assert again.best_step == net.best_step and again.history == net.history[:best + 1]
  jax.tree_util.tree_map(np.testing.assert_array_equal, again.params, net.params)
  one_step = lambda seed: cnn_ceiling.outputs(cnn_ceiling.fit(  # noqa: E731
      x, heads, fit_idx, val_idx, max_steps=1, **{**kw, "seed": seed}), x, test)["va"]
  assert not np.allclose(one_step(0), one_step(1))  # another seed, another network


def test_validation_split_by_identity():
  ids = np.array([5, 5] + [6, 6, 7, 7, 8, 8, 9, 9] + [-1] * 10)
  rows = np.arange(2, 20)  # rows 0 and 1 are not training rows: never in either part
  fit_idx, val_idx = cnn_ceiling.validation_split(ids, rows, 0, fraction=0.5)
  assert sorted(np.concatenate([fit_idx, val_idx]).tolist()) == rows.tolist()
  known = lambda idx: {i for i in ids[idx] if i >= 0}  # noqa: E731
  assert not known(fit_idx) & known(val_idx)
  # Unknown identities (-1) are people of their own: 4 known + 10 unknown people, half held out.
  assert len(known(val_idx)) + np.sum(ids[val_idx] < 0) == 7
  # One person alone: rows are held out instead (a tenth of them).
  f, v = cnn_ceiling.validation_split(np.zeros(20, int), np.arange(20), 0)
  assert len(v) == 2 and len(f) == 18 and not set(f) & set(v)


def test_cnn_row_trains_on_the_training_split_and_is_scored_like_every_row(monkeypatch):
  rng = np.random.default_rng(8)
  train, test = _planted(rng, 200), _planted(rng, 60)
  for s, first in ((train, 0), (test, 100)):
    s["identity"] = first + np.arange(len(s["va"])) // 10
    s["pixels"] = _pattern_images(s["va"], s["label"], rng)
  c = _config("continuous")  # tiny: a few CNN steps
  seen = {}
  real_fit = cnn_ceiling.fit

  def spy(images, heads, train_idx, val_idx, **kw):
    seen.update(images=images, heads=heads, train=train_idx, val=val_idx, **kw)
    return real_fit(images, heads, train_idx, val_idx, **kw)

  monkeypatch.setattr(cnn_ceiling, "fit", spy)
  pred = levasa_eval.cnn_predictions(train, test, c, seed=0)
  # One network, trained on the training rows only, stopped on a tenth of their identities.
  np.testing.assert_array_equal(seen["images"], train["pixels"])
  assert sorted(np.concatenate([seen["train"], seen["val"]]).tolist()) == list(range(200))
  assert not set(train["identity"][seen["train"]]) & set(train["identity"][seen["val"]])
  assert (seen["max_steps"], seen["eval_every"], seen["patience"], seen["batch_size"]) == (
      c.eval.ceiling_max_steps, c.eval.ceiling_eval_every, c.eval.ceiling_patience, c.eval.ceiling_batch_size)
  # Its heads' targets are Table 1(b)'s round(10 v) + 10 classes, the VA and the labels.
  np.testing.assert_array_equal(seen["heads"]["va_classes"].labels,
                                np.clip(np.round(10 * train["va"]), -10, 10).astype(int) + 10)
  assert seen["heads"]["va_classes"].num_classes == 21 and seen["heads"]["emotion"].num_classes == 8
  # predict()'s form, probabilities floored as every discrete readout.
  form = levasa_eval.chance_predictions(train, 60, c, ["all"])
  assert set(pred) == set(form) | {"best_step"} and set(pred["labels"]) == {"all"}
  assert pred["va_linear"].shape == pred["va_mlp"].shape == (60, 2) and len(pred["probs"]) == 2
  for p in pred["probs"]:
    assert p.shape == (60, 21) and p.min() >= alignment.PROB_FLOOR / 21
    np.testing.assert_allclose(p.sum(1), 1.0)
  # The test split's annotations play no part: shuffled, the predictions are the same numbers.
  shuffled = {**test, "va": test["va"][::-1].copy(), "label": test["label"][::-1].copy()}
  again = levasa_eval.cnn_predictions(train, shuffled, c, seed=0)
  np.testing.assert_array_equal(again["va_linear"], pred["va_linear"])
  np.testing.assert_array_equal(again["labels"]["all"], pred["labels"]["all"])
  np.testing.assert_array_equal(again["probs"][0], pred["probs"][0])
  # score() reads it like any row: Table 1(a)/2 from the VA head, 1(b) its CE, 3 its accuracy.
  true_va = levasa_eval._true_va(test, _FACTORS)
  s = levasa_eval.score(pred, test, np.ones(60, bool), c, true_va)
  y = test["va"].astype(np.float64)
  np.testing.assert_allclose(s["align"]["mse_valence"], np.mean((pred["va_linear"][:, 0] - y[:, 0]) ** 2))
  np.testing.assert_allclose(s["regression"]["arousal"]["mse"], np.mean((pred["va_mlp"][:, 1] - y[:, 1]) ** 2))
  cls = np.clip(np.round(10 * y), -10, 10).astype(int) + 10
  np.testing.assert_allclose(s["ce"]["arousal"], -np.mean(np.log(pred["probs"][1][np.arange(60), cls[:, 1]])))
  assert s["accuracy"] == {"all": np.mean(pred["labels"]["all"] == test["label"])}
  # summarize() puts it beside the other rows, for every subset (pixels encoded: references on).
  monkeypatch.setattr(levasa_eval, "predict", lambda *a: {})  # the probes' rows are tested above
  out = levasa_eval.summarize(train, test, c, _FACTORS, references=True)
  assert set(out["rows"]) == {"model", "chance", "pixels", "cnn", "factors"}
  for subset, m in levasa_eval.test_subsets(test, _FACTORS).items():
    assert out["rows"]["cnn"][subset] == levasa_eval.score(pred, test, m, c, true_va)
  assert levasa_eval.ROW_NAMES["cnn"] == "ceiling: supervised CNN on pixels"
  assert "ceiling" not in levasa_eval.ROW_NAMES["pixels"]


def test_ceiling_fields_are_validated():
  from affectjax.config import ConfigError
  from affectjax.methods import levasa
  for name in ("ceiling_max_steps", "ceiling_eval_every", "ceiling_patience", "ceiling_batch_size"):
    c = _config("continuous")
    c.eval[name] = 0
    with pytest.raises(ConfigError, match=f"config.eval.{name}=0 must be > 0"):
      levasa.validate(c)


def test_encoding_twice_compiles_once():
  """encode's jitted function is kept per model: a second pass over a split reuses the compile."""
  from affectjax import train
  from affectjax.methods.levasa import evaluate as ev
  from conftest import levasa_tiny
  s = train.setup(levasa_tiny())
  state = train.host_state(train.init_state(s))
  model = s.method.evaluate.keywords["model"]
  first = ev.encode(state, s.data.test, model=model, config=s.config, limit=8, reconstruct=True)
  fn = ev._encoder(model, True)
  compiled = fn._cache_size()  # >= 1: an equal model in an earlier test may share the entry
  again = ev.encode(state, s.data.test, model=model, config=s.config, limit=8, reconstruct=True)
  assert compiled >= 1 and fn._cache_size() == compiled and ev._encoder(model, True) is fn
  np.testing.assert_array_equal(first["mu"], again["mu"])
