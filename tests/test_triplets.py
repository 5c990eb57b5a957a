"""Triplet VAE building blocks: the softplus triplet prior (Eqs. 6-11), triplets, Eq. 12."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from affectjax.affect import triplets as tl
from affectjax.losses.triplet import (sgvb_scales, triplet_prior_scale, triplet_softplus)


def _numpy_prior(zr, zp, zn, w, gamma):
  """Eq. 10's triplet term per triplet, written independently: w/(gamma M) sum_m ln(1 + e^x)."""
  zr, zp, zn = (np.asarray(a, np.float64) for a in (zr, zp, zn))
  m, v, _ = zr.shape
  out = np.zeros(v)
  for t in range(v):
    for s in range(m):
      x = np.sqrt(((zr[s, t] - zp[s, t]) ** 2).sum()) - np.sqrt(((zr[s, t] - zn[s, t]) ** 2).sum())
      out[t] += np.log(1.0 + np.exp(x))
    out[t] *= w[t] / (gamma * m)
  return out


def test_triplet_softplus_matches_numpy():
  k = jax.random.split(jax.random.key(0), 4)
  zr, zp, zn = (jax.random.normal(k[i], (10, 7, 5)) for i in range(3))  # M = 10 samples, V = 7
  w = np.array([1.0, 0.6, 0.2, 1.0, 0.6, 0.2, 1.0], np.float32)
  got = jax.jit(triplet_softplus, static_argnames="gamma")(zr, zp, zn, w, gamma=0.04)
  np.testing.assert_allclose(got, _numpy_prior(zr, zp, zn, w, 0.04), rtol=1e-5)
  assert got.shape == (7,)
  # No sample axis = one sample; no weights = weight 1.
  one = jax.jit(triplet_softplus)(zr[0], zp[0], zn[0])
  np.testing.assert_allclose(one, _numpy_prior(zr[:1], zp[:1], zn[:1], np.ones(7), 1.0), rtol=1e-5)


def test_eq11_scales():
  # Eq. 11 literally (N/B sum over the data batch + T/V sum over the triplet batch) equals
  # N (mean_B data + T/N mean_V triplet), the per-data-point form with triplet_prior_scale.
  n, b, t, v = 2000, 200, 8000, 10
  data = np.random.default_rng(0).random(b)
  trip = np.random.default_rng(1).random(v)
  s_data, s_trip = sgvb_scales(n, b, t, v)
  assert (s_data, s_trip) == (10.0, 800.0)
  literal = s_data * data.sum() + s_trip * trip.sum()
  np.testing.assert_allclose(literal, n * (data.mean() + triplet_prior_scale(n, t) * trip.mean()))


def test_gradient_vanishes_for_wide_margin_and_not_for_violation():
  zr = jnp.zeros((1, 3))
  zp = jnp.array([[0.1, 0.0, 0.0]])
  zn = jnp.array([[60.0, 0.0, 0.0]])
  loss = lambda a, b, c, **kw: triplet_softplus(a, b, c, gamma=0.04, **kw).sum()  # noqa: E731
  for g in jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(zr, zp, zn):
    np.testing.assert_allclose(g, 0.0, atol=1e-12)
  # Violated (the negative is closer): the gradient is ~ 1/gamma and moves z+ towards the reference.
  g_pos = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(zr, zn, zp)[1]
  assert float(g_pos[0, 0]) > 20.0  # descending pulls the far positive (x = 60) back to 0
  # Hinge limit (large sharpness): exactly max(0, x), zero gradient at any margin.
  hinge = lambda a, b, c: triplet_softplus(a, b, c, sharpness=1e4).sum()  # noqa: E731
  zn_near = jnp.array([[0.6, 0.0, 0.0]])
  for g in jax.jit(jax.grad(hinge, argnums=(0, 1, 2)))(zr, zp, zn_near):
    np.testing.assert_allclose(g, 0.0, atol=1e-12)
  np.testing.assert_allclose(jax.jit(hinge)(zr, zn_near, zp), 0.5, atol=1e-3)


def test_gradient_finite_at_zero_distance():
  z = jnp.ones((2, 4))
  g = jax.jit(jax.grad(lambda a: triplet_softplus(a, z, z + 1.0).sum()))(z)
  assert np.all(np.isfinite(g))


def _posed_like(people=12, extra_labels=()):
  """BU-3DFE-like: per person one neutral (intensity 0) and 6 emotions x 4 intensities."""
  labels, inten = [], []
  for _ in range(people):
    labels.append(0), inten.append(0.0)
    for c in range(1, 7):
      for level in range(1, 5):
        labels.append(c), inten.append(float(level))
  for lab in extra_labels:
    labels.append(lab), inten.append(1.0)
  return np.array(labels), np.array(inten)


def _obeys_rules(t, labels, inten):
  """An independent reading of Sec. IV-B's three rules for one triplet (ref, pos, neg)."""
  r, p, q = t
  if len({r, p, q}) < 3:
    return False
  lr, lp, lq = labels[r], labels[p], labels[q]
  if lp == lr and lq != lr:  # same class closer than a different class
    return True
  if lp == lr == lq and lr != 0:  # within a class, closer intensity is closer
    return abs(inten[p] - inten[r]) < abs(inten[q] - inten[r])
  return lr != 0 and lp == 0 and lq not in (0, lr)  # neutral closer than another class


def test_artificial_triplets_obey_rules_and_cover_every_point():
  labels, inten = _posed_like(extra_labels=(7, -1))  # one lone contempt point, one unlabelled
  n = len(labels) + 50
  t = tl.artificial_triplets(jax.random.key(3), labels, inten, n)
  assert t.shape == (n, 3) and t.dtype == np.int32
  assert all(_obeys_rules(row, labels, inten) for row in t)
  assert tl.check_rules(t, labels, inten).all()
  used = np.unique(t)
  np.testing.assert_array_equal(used, np.flatnonzero(labels >= 0))  # all labelled, never -1
  # Every rule occurs: same-class/other-class, same-class by intensity, neutral as positive.
  lab = labels[t]
  assert np.any((lab[:, 1] == lab[:, 0]) & (lab[:, 2] != lab[:, 0]))
  assert np.any((lab[:, 1] == lab[:, 0]) & (lab[:, 2] == lab[:, 0]))
  assert np.any((lab[:, 1] == 0) & (lab[:, 0] != 0))
  np.testing.assert_array_equal(t, tl.artificial_triplets(jax.random.key(3), labels, inten, n))
  assert not np.array_equal(t, tl.artificial_triplets(jax.random.key(4), labels, inten, n))


def test_artificial_triplets_rule_probs_and_checker():
  labels, inten = _posed_like(people=3)
  t = tl.artificial_triplets(0, labels, inten, 60, rule_probs=(0, 1, 0))
  lab = labels[t]
  assert np.all(lab == lab[:, :1])  # intensity-rule triplets only: one class each
  d = np.abs(inten[t] - inten[t[:, :1]])
  assert np.all(d[:, 1] < d[:, 2])
  # The checker rejects a reversed triplet.
  assert not tl.check_rules(t[:, [0, 2, 1]], labels, inten).any()


def test_crowd_weights_follow_vote_split():
  # Identical AUs: every vote is a coin flip, so the 5-0 / 4-1 / 3-2 splits have binomial
  # probabilities 2/32, 10/32, 20/32 and map to the weights 1, 0.6, 0.2.
  t, w, votes = tl.crowd_triplets(jax.random.key(0), np.zeros((3000, 4)), noise=0.3,
                                  return_votes=True)
  assert t.shape == (6000, 3)
  np.testing.assert_allclose(w, (2 * votes - 5) / 5)
  assert set(np.unique(votes)) <= {3, 4, 5}
  for weight, p in ((1.0, 2 / 32), (0.6, 10 / 32), (0.2, 20 / 32)):
    assert abs(np.mean(np.isclose(w, weight)) - p) < 0.03
  np.testing.assert_array_equal(tl.agreement_levels(w), 2 * votes - 5)
  # Each image in exactly 6 triplets, three distinct images per triplet.
  np.testing.assert_array_equal(np.bincount(t.ravel(), minlength=3000), 6)
  assert np.all((t[:, 0] != t[:, 1]) & (t[:, 0] != t[:, 2]) & (t[:, 1] != t[:, 2]))


def test_crowd_triplets_orientation():
  # 1-D AUs: without noise every annotator agrees with the true AU distance: weight 1, d+ < d-.
  au = np.random.default_rng(0).uniform(0.0, 60.0, (60, 1))  # no exact distance ties
  t, w = tl.crowd_triplets(1, au, noise=0.0)
  np.testing.assert_allclose(w, 1.0)
  assert tl.satisfied_fraction(au, t, strict=True) == 1.0
  # With noise, large gaps stay unanimous and the closest calls split.
  t, w = tl.crowd_triplets(2, au, noise=2.0)
  gap = np.abs(np.abs(au[t[:, 0]] - au[t[:, 1]]) - np.abs(au[t[:, 0]] - au[t[:, 2]]))[:, 0]
  assert np.all(w[gap > 15] == 1.0)
  assert np.mean(w[gap < 1]) < 0.6
  assert tl.satisfied_fraction(au, t) > 0.9
  t2, w2 = tl.crowd_triplets(2, au, noise=2.0)
  np.testing.assert_array_equal(t, t2)
  with pytest.raises(ValueError, match="odd"):
    tl.crowd_triplets(0, au, votes=4)


def test_satisfied_fraction_hand_built():
  z = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.0, 1.0]])
  t = np.array([[0, 1, 2],    # d+ = 1 < d- = 3: satisfied
                [0, 2, 1],    # d+ = 3 > d- = 1: not
                [0, 1, 3]])   # d+ = d- = 1: satisfied by Eq. 12's <=, not strictly
  assert tl.satisfied_fraction(z, t) == pytest.approx(2 / 3)
  assert tl.satisfied_fraction(z, t, strict=True) == pytest.approx(1 / 3)
  w = np.array([1.0, 0.2, 0.6])
  assert tl.satisfied_fraction(z, t, w) == pytest.approx(1.6 / 1.8)
  by = tl.satisfied_by_reliability(z, t, w)
  assert by == {5: 1.0, 3: 1.0, 1: 0.0}
  assert np.isnan(tl.satisfied_by_reliability(z, t[:1], w[:1])[3])
