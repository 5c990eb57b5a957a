"""GANmut evaluation conditions: Sec. 5.2 paths, Table 3 codes and the Sec. 5.3 ERE grids."""
import jax.numpy as jnp
import numpy as np

from affectjax.methods import ganmut_eval as ev
from conftest import load_config


def test_ere_grids_follow_the_paper():
  lin = ev.ere_grid(load_config("ganmut"))
  r = np.linalg.norm(lin, axis=1)
  assert lin.shape == (1 + 20 * 21, 2)  # the origin + radii 0.05..1 x angles 2 pi k / 21
  np.testing.assert_allclose(np.unique(np.round(r, 6))[1:], np.arange(1, 21) * 0.05, atol=1e-6)
  ang = np.unique(np.round(np.mod(np.arctan2(lin[1:, 1], lin[1:, 0]), 2 * np.pi), 6))
  np.testing.assert_allclose(np.diff(ang), 2 * np.pi / 21, atol=1e-5)
  sq = ev.ere_grid(load_config("ganmut", "gaussian"))
  assert sq.shape == (21 * 21, 2) and sq.min() == -1 and np.isclose(sq.max(), 1)
  assert ev.ere_grid(load_config("ganmut", "stargan")).shape == (7, 7)


def test_interpolation_paths_and_class_codes():
  steps = np.linspace(0, 1, 11)
  c = load_config("ganmut")
  space = {"theta": jnp.array([0.1, 0.7, 1.5, 2.0, 3.0, 4.0])}
  z = ev.emotion_code(space, c, 3, steps)
  np.testing.assert_allclose(np.linalg.norm(z, axis=1), steps, atol=1e-6)  # rho_j = 0.1 j
  np.testing.assert_allclose(np.arctan2(z[1:, 1], z[1:, 0]), 1.5, atol=1e-6)  # along theta_3
  np.testing.assert_allclose(ev.emotion_code(space, c, 0, steps), 0.0)
  codes = ev.class_codes(space, c, np.array([0, 2]), None)
  np.testing.assert_allclose(codes, [[0, 0], [np.cos(0.7), np.sin(0.7)]], atol=1e-6)

  g = load_config("ganmut", "gaussian")
  w = np.random.default_rng(0).normal(size=(7, 2))
  gs = {"w": jnp.array(w), "log_eigs": jnp.zeros((7, 2)), "angle": jnp.zeros(7)}
  zg = ev.emotion_code(gs, g, 4, steps)
  np.testing.assert_allclose(zg[[0, -1]], np.tanh(w[[0, 4]]), atol=1e-6)  # mu_0 -> mu_4
  s = load_config("ganmut", "stargan")
  zs = ev.emotion_code({}, s, 2, steps)
  np.testing.assert_allclose(zs[:, 0], 1 - steps, atol=1e-6)
  np.testing.assert_allclose(zs[:, 2], steps, atol=1e-6)
  np.testing.assert_allclose(zs.sum(1), 1.0, atol=1e-6)
