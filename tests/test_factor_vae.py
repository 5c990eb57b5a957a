"""FactorVAE (affectjax/methods/factor_vae): the TC estimate against a closed form, permute_dims,
which player each loss moves, and a tiny run scored by Rb-VAE's Table 1 evaluation."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from affectjax import train
from affectjax.config import ConfigError
from affectjax.data import sources
from affectjax.methods import factor_vae as fv
from affectjax.methods import rbvae
from conftest import load_config


def tiny(**loss):
  c = load_config("factor_vae", "tiny")
  c.train.report = False
  for k, v in loss.items():
    c.loss[k] = v
  return c


def test_tc_estimate_is_the_mean_logit_and_matches_the_gaussian_closed_form():
  logits = jnp.array([2.0, -1.0, 0.5, 3.5])
  d = jax.nn.sigmoid(logits)
  np.testing.assert_allclose(fv.tc_estimate(logits), np.mean(np.log(d / (1 - d))), rtol=1e-5)
  # z ~ N(0, [[1, r], [r, 1]]): the product of its marginals is N(0, I) and TC = -log(1 - r^2) / 2.
  # The optimal D's logit is log q(z) - log prod_j q(z_j); its mean over q's samples is the TC.
  r = 0.8
  cov = np.array([[1.0, r], [r, 1.0]])
  z = np.random.default_rng(0).multivariate_normal([0.0, 0.0], cov, size=200_000)
  inv = np.linalg.inv(cov)
  optimal = (-0.5 * np.einsum("ni,ij,nj->n", z, inv, z) - 0.5 * np.log(np.linalg.det(cov))
             + 0.5 * np.sum(z ** 2, -1))
  np.testing.assert_allclose(float(fv.tc_estimate(jnp.asarray(optimal))), -0.5 * np.log(1 - r * r),
                             rtol=0.02)


def test_discriminator_loss_is_the_cross_entropy_of_q_against_the_permuted_samples():
  np.testing.assert_allclose(fv.discriminator_loss(jnp.zeros(4), jnp.zeros(4)), np.log(2.0), rtol=1e-6)
  q, p = jnp.array([1.0, -2.0]), jnp.array([0.5, 3.0])
  bce = 0.5 * (-np.mean(np.log(jax.nn.sigmoid(q))) - np.mean(np.log(1 - jax.nn.sigmoid(p))))
  np.testing.assert_allclose(fv.discriminator_loss(q, p), bce, rtol=1e-5)
  assert fv.discriminator_loss(jnp.full(3, 20.0), jnp.full(3, -20.0)) < 1e-6  # a perfect D
  assert fv.discriminator_loss(jnp.full(3, -20.0), jnp.full(3, 20.0)) > 19.0  # a wrong one


def test_permute_dims_keeps_every_marginal_and_breaks_the_dependence():
  rng = np.random.default_rng(1)
  common = rng.normal(size=(512, 1))
  z = common + 0.1 * rng.normal(size=(512, 4))  # four nearly identical dimensions
  out = np.asarray(fv.permute_dims(jax.random.key(0), jnp.asarray(z, jnp.float32)))
  for j in range(4):
    np.testing.assert_array_equal(np.sort(out[:, j]), np.sort(z[:, j].astype(np.float32)))
  before, after = np.corrcoef(z.T), np.corrcoef(out.T)
  off = ~np.eye(4, dtype=bool)
  assert before[off].min() > 0.95
  assert np.abs(after[off]).max() < 0.2


def test_a_negative_gamma_is_one_config_line():
  with pytest.raises(ConfigError, match=r"config.loss.gamma=-1.0 must be >= 0"):
    train.validate(tiny(gamma=-1.0))


@pytest.fixture(scope="module")
def built():
  """(setup, initial state, first batch, the objective's context) of the tiny config."""
  s = train.setup(tiny())
  nets = dict(rbvae.networks(s.config),
              disc=fv.TCDiscriminator(s.config.model.disc_hidden, s.config.model.disc_layers))
  batch = jax.tree.map(jnp.asarray, train.first_batch(s))
  return s, train.host_state(train.init_state(s)), batch, fv.Context(nets, s.config)


def test_each_loss_reaches_only_its_own_player(built):
  s, state, batch, ctx = built
  key = jax.random.key(3)

  def grads(params):  # {player: the gradient of that player's loss w.r.t. every parameter}
    loss = lambda p, who: fv.objective(p, None, batch, key, 0, ctx).losses[who]
    return {who: jax.grad(loss)(params, who) for who in (fv.DISC, fv.VAE)}

  g = jax.jit(grads)(state.params)
  d_grad, vae_grad = g[fv.DISC], g[fv.VAE]
  assert all(np.all(np.asarray(g) == 0) for g in jax.tree.leaves(d_grad[fv.VAE]))  # stop_gradient
  assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(d_grad[fv.DISC]))
  # gamma TC does depend on D's parameters: only the library's step keeps it from moving D
  assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(vae_grad[fv.DISC]))


def test_the_step_moves_d_by_its_own_loss_only(built):
  s, state, batch, _ = built
  key = jax.random.key(5)
  after = {}
  for gamma in (6.4, 0.0):
    c = tiny(gamma=gamma)
    method = fv.make_method(c, sources.load(c))
    after[gamma] = jax.jit(method.train_step)(state, batch, key)[0].params
  for a, b in zip(*(jax.tree.leaves(after[g][fv.DISC]) for g in (6.4, 0.0))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # gamma never reaches D
  moved = [np.abs(np.asarray(a) - np.asarray(p)).max()
           for a, p in zip(jax.tree.leaves(after[0.0][fv.DISC]), jax.tree.leaves(state.params[fv.DISC]))]
  assert max(moved) > 0
  vae_diff = [np.abs(np.asarray(a) - np.asarray(b)).max()
              for a, b in zip(jax.tree.leaves(after[6.4][fv.VAE]), jax.tree.leaves(after[0.0][fv.VAE]))]
  assert max(vae_diff) > 0  # while it does move the VAE


def test_a_tiny_run_is_scored_by_rbvae_table_1(tmp_path):
  c = load_config("factor_vae", "tiny")
  _, metrics = train.train_and_evaluate(c, str(tmp_path))
  for key in ("eval/main/mae_avg", "eval/chance/mae_avg", "eval/recon/unlabelled_mae", "tc",
              "disc_loss"):
    assert np.isfinite(metrics[key]), key
  assert all(f"eval/main/mae_{col}" in metrics for col, _ in rbvae.DIGIT_COLUMNS)
  row = (tmp_path / "rbvae_table.md").read_text().splitlines()[2]
  assert row.startswith("| factor_vae |") and f"{metrics['eval/main/mae_avg']:.3f}" in row
