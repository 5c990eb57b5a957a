"""GANmut conditional-space math against NumPy and the sampler's geometry."""
import jax
import jax.numpy as jnp
import numpy as np

from affectjax.affect import conditional as cs


def test_polar_to_xy():
  z = np.asarray(cs.polar_to_xy(jnp.array([0.0, np.pi / 2, np.pi]), jnp.array([1.0, 0.5, 0.25])))
  np.testing.assert_allclose(z, [[1, 0], [0, 0.5], [-0.25, 0]], atol=1e-6)


def _np_cov(log_eigs, angle):
  r = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  return r @ np.diag(np.exp(log_eigs)) @ r.T


def test_mahalanobis_and_label_distribution_match_numpy():
  rng = np.random.default_rng(0)
  c = 5
  log_eigs, angles = rng.normal(size=(c, 2)), rng.uniform(0, np.pi, c)
  mus = np.tanh(rng.normal(size=(c, 2)))
  z = rng.uniform(-1, 1, (11, 2))
  covs = np.asarray(cs.mode_covariances(jnp.array(log_eigs), jnp.array(angles)))
  want_covs = np.stack([_np_cov(log_eigs[i], angles[i]) for i in range(c)])
  np.testing.assert_allclose(covs, want_covs, rtol=1e-5, atol=1e-6)
  assert np.all(np.linalg.eigvalsh(covs) > 0)
  np.testing.assert_allclose(np.sort(np.linalg.eigvalsh(covs), -1), np.sort(np.exp(log_eigs), -1),
                             rtol=1e-5)
  d2 = np.asarray(cs.mahalanobis_sq(jnp.array(z), jnp.array(mus), jnp.array(covs)))
  want = np.array([[(zi - m) @ np.linalg.inv(s) @ (zi - m) for m, s in zip(mus, want_covs)]
                   for zi in z])
  np.testing.assert_allclose(d2, want, rtol=1e-4, atol=1e-5)
  p = np.asarray(cs.label_distribution(jnp.array(z), jnp.array(mus), jnp.array(covs)))
  e = np.exp(-want)
  np.testing.assert_allclose(p, e / e.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)
  # identity covariance: d^2 is the squared Euclidean distance; a code on a mode puts most mass there
  eye = cs.mode_covariances(jnp.zeros((c, 2)), jnp.zeros(c))
  d2e = np.asarray(cs.mahalanobis_sq(jnp.array(mus[:1]), jnp.array(mus), eye))[0]
  np.testing.assert_allclose(d2e, np.sum((mus - mus[0]) ** 2, -1), atol=1e-6)


def test_sampler_sc_on_directions_sr_uniform_over_disc():
  n, nr = 4000, 1500
  thetas = jnp.array([0.3, 1.2, 2.5, -2.0, -0.9, 4.0])
  targets = jax.random.randint(jax.random.PRNGKey(1), (n,), 0, 7)
  z, rho, in_sc = cs.sample_codes(jax.random.PRNGKey(0), thetas, targets, nr, tau=0.2)
  z, rho, in_sc, t = map(np.asarray, (z, rho, in_sc, targets))
  assert in_sc.sum() == n - nr and not in_sc[:nr].any()
  r = np.linalg.norm(z, axis=1)
  np.testing.assert_allclose(r, rho, atol=1e-5)
  sc = in_sc & (t > 0)
  ang = np.arctan2(z[sc, 1], z[sc, 0])
  dirs = np.asarray(thetas)[t[sc] - 1]
  np.testing.assert_allclose(np.cos(ang - dirs), 1.0, atol=1e-5)  # on the emotion's direction
  assert rho[sc].min() >= 0.2 and rho[sc].max() <= 1.0
  neu = in_sc & (t == 0)
  assert neu.any() and rho[neu].max() < 0.2
  # S_r: uniform over the disc area -> P(r < a) = a^2, angles uniform
  rr = r[:nr]
  assert rr.max() <= 1.0
  for a in (0.3, 0.5, 0.8):
    assert abs(np.mean(rr < a) - a * a) < 0.04
  quad = np.histogram(np.arctan2(z[:nr, 1], z[:nr, 0]), bins=4, range=(-np.pi, np.pi))[0] / nr
  np.testing.assert_allclose(quad, 0.25, atol=0.04)
  # the paper's literal polar sampling is denser at the centre
  zp, _, _ = cs.sample_codes(jax.random.PRNGKey(0), thetas, targets, nr, random_rho="polar")
  assert abs(np.mean(np.linalg.norm(np.asarray(zp)[:nr], axis=1) < 0.5) - 0.5) < 0.04


def test_sampler_noise_moves_codes_off_the_direction():
  thetas = jnp.zeros(6)
  targets = jnp.full((500,), 1)
  z, _, _ = cs.sample_codes(jax.random.PRNGKey(0), thetas, targets, 0, noise=0.075)
  assert abs(np.std(np.asarray(z)[:, 1]) - 0.075) < 0.01


def test_rho_hat_is_max_softmax():
  logits = jnp.array([[0.0, 0.0, 0.0, 0.0], [10.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 0.5]])
  e = np.exp(np.asarray(logits[2]))
  np.testing.assert_allclose(np.asarray(cs.rho_hat(logits)),
                             [0.25, np.exp(10) / (np.exp(10) + 3), e.max() / e.sum()], rtol=1e-5)
