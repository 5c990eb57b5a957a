"""LeVAsa losses against closed forms, and a training run whose VA alignment beats the Vanilla VAE's."""
import jax
import jax.numpy as jnp
import numpy as np

from affectjax import losses, train
from affectjax.methods import levasa
from conftest import load_config


def test_gaussian_kl_closed_form():
  mu = jnp.array([[0.5, -1.0, 2.0]])
  logvar = jnp.log(jnp.array([[0.25, 1.0, 4.0]]))
  # KL(N(m, s^2) || N(0, 1)) = 0.5 (m^2 + s^2 - ln s^2 - 1) per dimension.
  expected = 0.5 * sum(m * m + s2 - np.log(s2) - 1 for m, s2 in ((0.5, 0.25), (-1.0, 1.0), (2.0, 4.0)))
  np.testing.assert_allclose(losses.gaussian_kl(mu, logvar), [expected], rtol=1e-6)
  np.testing.assert_allclose(losses.gaussian_kl(jnp.zeros((2, 5)), jnp.zeros((2, 5))), [0.0, 0.0])


def test_squared_kl_is_sum_of_squared_chunk_kls():
  key = jax.random.key(0)
  mu = jax.random.normal(key, (4, 7))
  logvar = 0.3 * jax.random.normal(jax.random.fold_in(key, 1), (4, 7))
  chunks = (2, 2, 3)
  per_chunk = [losses.gaussian_kl(mu[:, a:b], logvar[:, a:b]) for a, b in ((0, 2), (2, 4), (4, 7))]
  np.testing.assert_allclose(losses.squared_kl(mu, logvar, chunks),
                             sum(np.square(k) for k in per_chunk), rtol=1e-5)
  # Squaring differs from the plain KL: (k1 + k2 + k3) != k1^2 + k2^2 + k3^2 in general.
  assert not np.allclose(losses.squared_kl(mu, logvar, chunks), sum(per_chunk))


def test_va_losses_against_closed_forms():
  np.testing.assert_allclose(losses.va_mse(jnp.array([[0.5], [0.0]]), jnp.array([0.1, -0.2])),
                             [0.16, 0.04], rtol=1e-6)
  np.testing.assert_allclose(losses.va_broadcast_mse(jnp.array([[0.0, 1.0]]), jnp.array([0.5])), [0.25])
  logits = jnp.array([[2.0, -1.0, 0.0]])
  sig = lambda x: 1 / (1 + np.exp(-x))
  bce = -(np.log(1 - sig(2.0)) + np.log(sig(-1.0)) + np.log(1 - sig(0.0)))  # target class 1
  np.testing.assert_allclose(losses.va_bce(logits, jnp.array([1])), [bce], rtol=1e-5)
  ce = -(-1.0 - np.log(np.exp(2.0) + np.exp(-1.0) + 1.0))
  np.testing.assert_allclose(losses.va_cross_entropy(logits, jnp.array([1])), [ce], rtol=1e-5)


def test_va_regularisation_masks_unknown_va_and_discretises():
  out = {"r_v": jnp.zeros((3, 21)), "r_a": jnp.zeros((3, 21)), "z": jnp.zeros((3, 6))}
  va = jnp.array([[0.3, -0.3], [np.nan, np.nan], [1.0, -1.0]])
  reg = levasa.va_regularisation(out, va, variant="discrete", va_loss="ce", levels=10, chunk_sizes=(2, 2, 2))
  np.testing.assert_allclose(reg, [2 * np.log(21), 0.0, 2 * np.log(21)], rtol=1e-5)
  out = {"r_v": jnp.array([[0.3], [0.0], [0.0]]), "r_a": jnp.array([[0.0], [0.0], [0.0]])}
  reg = levasa.va_regularisation(out, va, variant="continuous", va_loss="mse", levels=10, chunk_sizes=(2, 2, 2))
  np.testing.assert_allclose(reg, [0.09, 0.0, 2.0], rtol=1e-5)


def _run(variant, workdir, references):
  c = load_config("levasa", f"{variant},tiny")
  c.train.num_steps = 100
  c.train.checkpoint_every = 100
  c.data.num_identities = 8
  c.data.images_per_identity = 40
  c.eval.max_train_examples = 200
  c.eval.reference_rows = references  # chance and ceilings: once is enough for the test
  return train.train_and_evaluate(c, workdir)[1]


def test_levasa_aligns_with_va_better_than_vanilla(tmp_path):
  lev = _run("continuous", str(tmp_path / "levasa"), True)
  van = _run("vanilla", str(tmp_path / "vanilla"), False)
  import json
  ls = json.load(open(tmp_path / "levasa" / "levasa_report.json"))
  vs = json.load(open(tmp_path / "vanilla" / "levasa_report.json"))
  # Table 1(a) on held-out identities, like for like: the same ridge readout fitted on the
  # training split reads LeVAsa's z_v, z_a and the Vanilla VAE's best (training-chosen) chunks.
  lm, vm = ls["rows"]["model"]["all"], vs["rows"]["model"]["all"]
  assert lm["align"]["mse_combined"] < vm["align"]["mse_combined"]
  # ... and LeVAsa's z_v carries valence: its readout beats predict-the-training-mean.
  assert lm["align"]["mse_valence"] < ls["rows"]["chance"]["all"]["align"]["mse_valence"]
  assert lm["align"]["r2_valence"] > vm["align"]["r2_valence"]
  assert lm["align_true_va"]["n"] == ls["n_test"] > 0
  assert set(ls["rows"]) == {"model", "heads", "chance", "pixels", "cnn", "factors"}
  # The supervised CNN ceiling fills every table's cell: VA (1a, 2), VA classes (1b), emotion (3).
  cnn = ls["rows"]["cnn"]["all"]
  assert set(cnn) == {"align", "align_true_va", "ce", "regression", "accuracy"} and set(cnn["accuracy"]) == {"all"}
  assert np.isfinite(cnn["align"]["mse_combined"]) and np.isfinite(cnn["ce"]["combined"])
  assert set(vs["rows"]) == {"model"}
  # Expression energy re-rendered from the generator (its self-check passed): surprise moves
  # more pixels than a neutral face.
  rec = ls["reconstruction"]
  assert rec["surprise"]["expression_energy"] > rec["neutral"]["expression_energy"] > 0
  assert "Smoke-scale run" in (tmp_path / "levasa" / "levasa_report.md").read_text()
  for name in ("levasa_report.md", "circumplex.png", "reconstructions.png", "encodings.npz"):
    assert (tmp_path / "levasa" / name).stat().st_size > 0
  assert np.isfinite(lev["loss"]) and np.isfinite(van["loss"])
