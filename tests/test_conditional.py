"""GANmut conditional-space math against NumPy and the sampler's geometry."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

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
  z, rho, in_sc = cs.sample_codes(jax.random.PRNGKey(0), thetas, targets, nr, tau=0.2,
                                  random_rho="disc")
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
  # the paper's polar sampling (the default) is denser at the centre
  zp, _, _ = cs.sample_codes(jax.random.PRNGKey(0), thetas, targets, nr)
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


def _space(kind, **kw):
  return cs.space_of(kind, 7, **kw)


def test_space_of_is_chosen_once_and_rejects_unknown_kinds():
  assert _space("linear") is _space("linear")  # one bundle per set of options
  assert _space("linear", random_rho="disc") is not _space("linear")
  assert (_space("linear").code_dim, _space("gaussian").code_dim, _space("stargan").code_dim) == (2, 2, 7)
  assert (_space("linear").coord_dim, _space("stargan").coord_dim) == (2, 0)
  for bad in ({"kind": "gausian"}, {"random_rho": "uniform"}, {"direction_param": "unit"}):
    kind = bad.pop("kind", "linear")
    with pytest.raises(ValueError, match="expected one of"):
      cs.space_of(kind, 7, **bad)


def test_vector_directions_are_normalised_tiny_vectors():
  s = _space("linear", direction_param="vector")
  p = s.init(jax.random.PRNGKey(3))
  v = np.asarray(p["v"])
  assert v.shape == (6, 2) and np.abs(v).max() <= 1e-4 / np.sqrt(2)  # the original's tiny init
  steps = np.linspace(0, 1, 11)
  for c in (1, 4):
    z = np.asarray(s.emotion_code(p, c, steps))
    np.testing.assert_allclose(z, steps[:, None] * v[c - 1] / np.linalg.norm(v[c - 1]), atol=1e-6)
  np.testing.assert_allclose(np.asarray(s.class_codes(p, np.array([0, 2]))),
                             [[0, 0], v[1] / np.linalg.norm(v[1])], atol=1e-6)
  np.testing.assert_allclose(np.asarray(s.directions(p)), np.arctan2(v[:, 1], v[:, 0]), atol=1e-6)
  # the gradient reaches v (and is orthogonal to it: only the direction matters)
  g = jax.grad(lambda q: jnp.sum(s.class_codes(q, jnp.array([1])) * jnp.array([0.3, -1.0])))(p)
  g = np.asarray(g["v"])
  assert np.abs(g[0]).max() > 1.0 and abs(np.dot(g[0], v[0])) < 1e-6 * np.abs(g[0]).max()


def test_random_codes_follow_random_rho():
  labels = np.zeros(4000, np.int32)
  for rho, want in (("polar", 0.5), ("disc", 0.25)):
    s = _space("linear", random_rho=rho)
    z = np.asarray(s.random_codes(jax.random.PRNGKey(0), s.init(jax.random.PRNGKey(1)), labels))
    r = np.linalg.norm(z, axis=1)
    assert r.max() <= 1 + 1e-6 and abs(np.mean(r < 0.5) - want) < 0.03
  g = _space("gaussian")
  p = g.init(jax.random.PRNGKey(1))
  lab = np.arange(4000) % 7
  z = np.asarray(g.random_codes(jax.random.PRNGKey(2), p, lab))
  mus = np.tanh(np.asarray(p["w"]))
  d = np.min(np.linalg.norm(z[:, None] - mus[None], axis=-1), axis=1)
  assert abs(np.std(z - mus[np.argmin(np.linalg.norm(z[:, None] - mus[None], axis=-1), 1)]) - 0.1) < 0.03
  assert np.median(d) < 0.2
  oh = np.asarray(_space("stargan").random_codes(jax.random.PRNGKey(2), {}, lab))
  np.testing.assert_array_equal(np.sort(oh.argmax(1)), np.sort(lab))  # the labels, permuted


def test_gaussian_label_distribution_and_back_codes():
  g = _space("gaussian")
  p = g.init(jax.random.PRNGKey(0))
  mus = np.tanh(np.asarray(p["w"]))
  pz = np.asarray(g.label_distribution(p, jnp.asarray(mus)))
  d2 = np.sum((mus[:, None] - mus[None]) ** 2, -1)  # identity covariances at init
  np.testing.assert_allclose(pz, np.exp(-d2) / np.exp(-d2).sum(1, keepdims=True), rtol=1e-5)
  coord = jnp.ones((3, 2))
  np.testing.assert_array_equal(np.asarray(g.back_code(p, jnp.array([0, 1, 2]), None, coord)), 1.0)
  lin = _space("linear", cycle="approximate")
  pl = {"theta": jnp.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])}
  logits = jnp.array([[0.0] * 7, [5.0] + [0.0] * 6])
  back = np.asarray(lin.back_code(pl, jnp.array([2, 0]), logits, coord[:2]))
  np.testing.assert_allclose(back[0], np.array([np.cos(1.0), np.sin(1.0)]) / 7, atol=1e-6)
  np.testing.assert_allclose(back[1], 0.0)  # neutral: the origin
  np.testing.assert_array_equal(np.asarray(_space("linear").back_code(pl, None, None, coord)), 1.0)
  st = np.asarray(_space("stargan").back_code({}, jnp.array([3, -1]), None, None))
  np.testing.assert_array_equal(st, np.r_[np.eye(7)[3:4], np.zeros((1, 7))])
