"""FED's Frechet distance against scipy and closed forms."""
import numpy as np
import scipy.linalg

from affectjax.evaluate import frechet


def _scipy_fd(mu1, s1, mu2, s2):
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(covmean)))


def test_matches_scipy_on_random_gaussians():
  rng = np.random.default_rng(0)
  d = 6
  a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
  s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  got = frechet.frechet_from_stats(mu1, s1, mu2, s2)
  np.testing.assert_allclose(got, _scipy_fd(mu1, s1, mu2, s2), rtol=1e-8)


def test_known_gaussians_closed_form_and_identical_sets():
  # N(0, I) vs N(m, 4 I) in d dims: ||m||^2 + d (1 + 4 - 2 * 2) = ||m||^2 + d
  d = 3
  m = np.array([1.0, 2.0, 0.0])
  np.testing.assert_allclose(frechet.frechet_from_stats(np.zeros(d), np.eye(d), m, 4 * np.eye(d)),
                             5.0 + d, rtol=1e-10)
  rng = np.random.default_rng(1)
  x = rng.normal(size=(300, 8)).astype(np.float32)
  assert abs(frechet.frechet_distance(x, x)) < 1e-8
  y = rng.normal(size=(300, 8))
  mu1, s1 = frechet.gaussian_stats(x)
  mu2, s2 = frechet.gaussian_stats(y)
  np.testing.assert_allclose(frechet.frechet_distance(x, y), _scipy_fd(mu1, s1, mu2, s2), rtol=1e-6)
  assert frechet.frechet_distance(x, y + 3.0) > frechet.frechet_distance(x, y) + 8.0
