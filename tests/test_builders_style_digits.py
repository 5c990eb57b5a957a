"""Style digits (Rb-VAE, Appendix C.1): the transform, checked against direct computations."""
import numpy as np

import fixtures_real as fx
from affectjax.data import builders
from affectjax.data.builders import style_digits as sd


def test_dilation_width_colour_and_scale():
  d = np.zeros((16, 16), np.float32)
  d[8, 8] = 1
  for k in (1, 2, 3, 5):
    assert sd.dilate(d, k).sum() == k * k  # a k x k square kernel
  out = sd.style_transform(d, 3, (0.2, 0.6, 0.2), 1.0)
  assert out.shape == (16, 16, 3)
  np.testing.assert_allclose(out[8, 8], [0.2, 0.6, 0.2], atol=1e-6)  # colour / |c|_1 = itself here
  np.testing.assert_allclose(sd.style_transform(d, 1, (1, 1, 2), 1.0)[8, 8], [0.25, 0.25, 0.5])
  full = np.ones((16, 16), np.float32)
  half = sd.style_transform(full, 1, (1, 1, 1), 0.5)  # down-scaled to 8 x 8, zero-padded, centred
  assert np.allclose(half[4:12, 4:12], 1 / 3) and half[:4].sum() == 0 and half[:, 12:].sum() == 0


def test_edges_keep_only_the_boundary():
  d = np.zeros((10, 10), np.float32)
  d[2:8, 2:8] = 1
  e = sd.edges(d)
  assert e[2, 2] == 1 and e[4, 4] == 0 and e.sum() == 6 * 6 - 4 * 4


def test_splits_on_sklearn_digits():
  c = fx.data_config("mnist_style", "", "", image_size=32, test_fraction=0.2)
  c.tfds_dir = ""
  s = builders.load_splits(c)
  n_train_digits = 1797 - round(0.2 * 1797)
  assert len(s.test) == round(0.2 * 1797)
  assert len(s.train) == n_train_digits // 2 + 2 * (n_train_digits - n_train_digits // 2)
  b = s.train.gather(np.array([0, len(s.train) - 1]))
  assert b["is_reference"].tolist() == [True, False] and b["image"].shape == (2, 32, 32, 3)
  f = b["factors"][1]  # width, normalised colour, scale, digit
  assert 1 <= f[0] <= 10 and abs(f[1:4].sum() - 1) < 1e-5 and 0.5 <= f[4] <= 1 and 0 <= f[5] <= 9
  ref = b["image"][0]
  assert np.allclose(ref[..., 0], ref[..., 2]) and ref.min() == -1 and ref.max() == 1
  again = builders.load_splits(c).train.gather(np.array([len(s.train) - 1]))
  np.testing.assert_array_equal(again["image"][0], b["image"][1])  # deterministic
  assert s.metadata["factor_names"] == sd.FACTOR_NAMES
