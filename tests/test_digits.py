"""In-memory style digits (rbvae.md Sec. 5.1, 5.3, App. C.1): transforms, splits, factors."""
import numpy as np
import pytest

from affectjax.data import digits as dg
from affectjax.data.builders import style_digits as sd


def _point(size=16):
  d = np.zeros((size, size), np.float32)
  d[8, 8] = 1
  return d


def test_transform_width_colour_scale_on_a_built_image():
  d = _point()
  for k in (1, 2, 4, 7, 10):  # width: a k x k square kernel turns one pixel into a k x k block
    lit = np.argwhere(sd.style_transform(d, k, (1, 1, 1), 1.0)[..., 0] > 0)
    assert len(lit) == k * k and np.ptp(lit[:, 0]) == k - 1 and np.ptp(lit[:, 1]) == k - 1
  c = np.array([0.3, 0.9, 0.6])
  px = sd.style_transform(d, 1, c, 1.0)[8, 8]  # colour: the L1-normalised vector, not c itself
  np.testing.assert_allclose(px, c / 1.8, rtol=1e-6)
  assert abs(px.sum() - 1) < 1e-6
  full = np.ones((20, 20), np.float32)
  for s in (0.5, 0.7, 1.0):  # scale: an n x n block, n = round(20 s), centred, zero-padded
    out = sd.style_transform(full, 1, (1, 2, 1), s)
    n, top = int(round(20 * s)), (20 - int(round(20 * s))) // 2
    mask = np.zeros((20, 20), bool)
    mask[top:top + n, top:top + n] = True
    np.testing.assert_allclose(out[mask], np.tile([0.25, 0.5, 0.25], (n * n, 1)), rtol=1e-6)
    assert out[~mask].sum() == 0


def test_style_examples_factors_describe_the_images():
  rng = np.random.default_rng(3)
  base = np.zeros((4, 8, 8), np.float32)
  base[:, 2:6, 3:5] = 1.0  # a bar "digit"
  ex = dg.style_examples(rng, base, np.arange(4), np.arange(10, 14), True, copies=2, size=32)
  assert ex["image"].shape == (8, 32, 32, 3) and ex["image"].dtype == np.float32
  np.testing.assert_array_equal(ex["identity"], np.repeat(np.arange(10, 14), 2))
  assert not ex["is_reference"].any()
  f = ex["factors"]
  for i in range(8):
    img01 = (ex["image"][i] + 1) / 2
    # colour factor = the share of each channel in the image's ink
    np.testing.assert_allclose(img01.sum((0, 1)) / img01.sum(), f[i, 2:], atol=1e-5)
    # the image is the App. C.1 transform of the edge digit with these factors
    again = sd.style_transform(sd.base_digit(base[i // 2], 32), int(f[i, 1]), f[i, 2:], f[i, 0])
    np.testing.assert_allclose(img01, again, atol=1e-6)
    n = int(round(32 * f[i, 0]))  # scale: no ink outside the centred n x n box
    top = (32 - n) // 2
    ink = np.argwhere(img01.sum(-1) > 0)
    assert ink.min() >= top and ink.max() < top + n


def test_splits_reference_half_twice_transformed_and_disjoint_probes():
  s = dg.style_digits(seed=1, size=32, num_digits=120, probe_fraction=0.25)
  tr, fit, score = s["train"], s["probe_fit"], s["probe_score"]
  ref = tr["is_reference"]
  assert ref.sum() == 45 and (~ref).sum() == 2 * 45  # 90 training digits: 45 as they are, 45 x 2
  ids_u, counts = np.unique(tr["identity"][~ref], return_counts=True)
  assert (counts == 2).all() and not np.isin(ids_u, tr["identity"][ref]).any()
  assert len(fit["image"]) == 15 and len(score["image"]) == 15
  groups = [set(tr["identity"]), set(fit["identity"]), set(score["identity"])]
  assert all(not (a & b) for i, a in enumerate(groups) for b in groups[i + 1:])
  _, target = dg.load_sklearn_digits()
  for split in s.values():
    np.testing.assert_array_equal(split["label"], target[split["identity"]])
    assert split["image"].min() >= -1 and split["image"].max() <= 1
  # reference digits: white, untransformed, factors (1, 1, 1, 1, 1)
  r = tr["image"][ref]
  assert np.array_equal(r[..., 0], r[..., 1]) and np.array_equal(r[..., 0], r[..., 2])
  np.testing.assert_array_equal(tr["factors"][ref], 1.0)
  for split in (tr["factors"][~ref], fit["factors"], score["factors"]):
    assert ((split[:, 0] >= 0.5) & (split[:, 0] <= 1)).all()
    assert set(np.unique(split[:, 1])) <= set(range(1, 11))
    np.testing.assert_allclose(split[:, 2:].sum(1), 1, rtol=1e-5)
  u = tr["factors"][~ref].reshape(45, 2, 5)
  assert (u[:, 0] != u[:, 1]).any(-1).all()  # two different styles per digit


def test_deterministic_by_seed_and_uint8():
  a = dg.style_digits(seed=4, size=16, num_digits=30)
  b = dg.style_digits(seed=4, size=16, num_digits=30)
  c = dg.style_digits(seed=5, size=16, num_digits=30)
  for k in dg.SPLITS:
    for f in a[k]:
      np.testing.assert_array_equal(a[k][f], b[k][f])
  assert not np.array_equal(a["train"]["identity"], c["train"]["identity"])
  u = dg.style_digits(seed=4, size=16, num_digits=30, uint8=True)
  assert u["train"]["image"].dtype == np.uint8
  np.testing.assert_allclose(u["train"]["image"] / 127.5 - 1, a["train"]["image"], atol=1 / 255 + 1e-6)
  np.testing.assert_array_equal(u["probe_score"]["factors"], a["probe_score"]["factors"])


def test_default_sklearn_sizes_and_test_arrays():
  s = dg.style_digits(seed=0, size=64, num_digits=20)
  assert s["train"]["image"].shape == (7 + 2 * 7, 64, 64, 3)
  assert s["train"]["factors"].shape[1] == len(dg.FACTOR_NAMES) == 5
  digits = np.zeros((10, 8, 8), np.float32)
  digits[:, 1:7, 3] = 1
  test = np.zeros((6, 8, 8), np.float32)
  test[:, 2, 1:7] = 1
  s = dg.style_digits(seed=0, size=16, digits=digits, labels=np.arange(10), test_digits=test,
                      test_labels=np.full(6, 7), probe_copies=2)
  assert len(s["train"]["image"]) == 15 and len(s["probe_fit"]["image"]) == 6
  assert (s["probe_fit"]["identity"] >= 10).all() and (s["probe_score"]["label"] == 7).all()
  with pytest.raises(ValueError, match="digits must be"):
    dg.style_digits(digits=np.zeros((4, 8)), labels=np.zeros(4))
