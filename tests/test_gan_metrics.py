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
  # a decreasing path has no increase
  assert gm.smoothness_score(ramp[::-1]) == 0.0


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
