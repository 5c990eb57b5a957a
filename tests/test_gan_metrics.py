"""Smoothness, ERE helpers, accuracy and angular agreement on hand-built inputs."""
import numpy as np

from affectjax.evaluate import gan_metrics as gm


def test_smoothness_on_hand_built_sequences():
  ramp = np.linspace(0.0, 1.0, 11)  # ten equal steps -> 0.1
  step = np.r_[np.zeros(5), np.ones(6)]  # one jump -> 1
  half = np.r_[0.1, 0.2, 0.6, 0.7, 0.7]  # max increase 0.4 over range 0.6
  got = gm.smoothness_score(np.stack([ramp, step, np.r_[half, half[-1:].repeat(6)]]))
  np.testing.assert_allclose(got, [0.1, 1.0, 0.4 / 0.6], rtol=1e-9)
  assert gm.smoothness_score(np.full(11, 0.3)) == 1.0


def test_falling_or_flat_paths_score_worse_than_a_rising_ramp():
  ramp = gm.smoothness_score(np.linspace(0.0, 1.0, 11))
  falling = [np.linspace(1.0, 0.0, 11), np.r_[0.5, 0.55, 0.6, np.zeros(8)], np.full(11, 0.4),
             np.r_[0.2, 0.9, np.full(9, 0.2)]]  # down; up a little then down; flat; up and back
  for s in falling:
    assert gm.smoothness_score(s) > ramp
    assert not gm.is_monotone(s)
  # no path whatsoever scores below the ramp 1 / (J - 1) (the bound in smoothness_score's docstring)
  rng = np.random.default_rng(0)
  paths = np.concatenate([rng.random((3000, 11)), np.cumsum(rng.normal(0, 0.1, (3000, 11)), -1)])
  got = gm.smoothness_score(paths)
  assert got.min() >= 0.1 - 1e-12 and np.all(got <= 1.0)
  rises = paths[:, -1] - paths[:, 0] > 1e-6
  assert np.all(got[~rises] == 1.0) and np.all(got[rises] < 1.0 + 1e-12)


def test_monotone_fraction():
  ramp = np.linspace(0.0, 1.0, 11)
  wiggle = ramp.copy()
  wiggle[5] -= 0.2  # one fall of 0.1 in an interval
  dip = ramp.copy()
  dip[5] -= 0.105  # one fall of 0.005, within the default tolerance
  paths = np.stack([ramp, dip, wiggle, ramp[::-1]])
  np.testing.assert_array_equal(gm.is_monotone(paths), [True, True, False, False])
  assert gm.is_monotone(paths, tol=0.2)[2] and not gm.is_monotone(paths, tol=0.0)[1]


def test_similarity_agreement_against_numpy():
  angles = np.array([0.0, 0.3, 2.0, 3.5])
  feats = np.array([[1.0, 0, 0], [0.9, 0.1, 0], [0, 1.0, 0.2], [0, 0.1, 1.0]])
  i, j = np.triu_indices(4, 1)
  fn = feats / np.linalg.norm(feats, axis=1, keepdims=True)
  want = np.corrcoef(np.cos(angles[i] - angles[j]), (fn @ fn.T)[i, j])[0, 1]
  np.testing.assert_allclose(gm.similarity_agreement(angles, feats), want, rtol=1e-12)
  # invariant to rotating and reflecting the directions; directions equal to the features' own
  # geometry agree perfectly
  np.testing.assert_allclose(gm.similarity_agreement(-angles + 1.1, feats), want, rtol=1e-12)
  unit = np.c_[np.cos(angles), np.sin(angles)]
  assert abs(gm.similarity_agreement(angles, unit) - 1.0) < 1e-12


def test_ambiguous_targets_and_reconstruction_error():
  p = np.tile(np.eye(4)[0] * 0.97 + 0.01, (32, 1))
  p[5] = [0.4, 0.35, 0.2, 0.05]
  p[20] = [0.34, 0.33, 0.33, 0.0]
  assert list(gm.ambiguous_targets(p, 2)) == [5, 20]
  assert list(gm.ambiguous_targets(p, 3, batch_size=32)) == [20]
  cand = np.array([[1, 0, 0, 0], [0.4, 0.3, 0.3, 0.0]])
  err, i = gm.reconstruction_error(cand, np.array([0.4, 0.35, 0.25, 0.0]))
  assert i == 1 and np.isclose(err, (0.05 ** 2 * 2) / 4)


def test_per_class_accuracy_and_angles():
  acc = gm.per_class_accuracy([0, 1, 1, 2, 0], [0, 1, 2, 2, 1], 4)
  np.testing.assert_allclose(acc[:3], [100, 50, 50])
  assert np.isnan(acc[3])
  true = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
  err, ok = gm.angular_agreement(-(true + 0.7), true)  # reflected and rotated: perfect
  assert err < 1e-6 and ok
  err, ok = gm.angular_agreement(true[[0, 2, 1, 3, 4]], true)
  assert err > 5 and not ok
