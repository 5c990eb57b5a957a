"""Dual-domain fusion label math and losses (affectjax.affect.mixed_labels,
affectjax.losses.classification) against scikit-learn and hand-computed values."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from affectjax.affect import mixed_labels as ml
from affectjax.affect.affectnet_stats import VA_MEANS, VA_STDS
from affectjax.losses import classification as cl

C = 8


@pytest.fixture(scope="module")
def training_set():
  """Imbalanced AffectNet-like classes, each a correlated Gaussian around its published centre."""
  rng = np.random.default_rng(0)
  counts = [300, 500, 120, 80, 40, 60, 100, 30]
  labels, va = [], []
  for c, n in enumerate(counts):
    rho = rng.uniform(-0.6, 0.6)
    s = VA_STDS[c]
    cov = np.array([[s[0]**2, rho * s[0] * s[1]], [rho * s[0] * s[1], s[1]**2]])
    va.append(rng.multivariate_normal(VA_MEANS[c], cov, n))
    labels.append(np.full(n, c))
  labels, va = np.concatenate(labels), np.concatenate(va)
  labels[:5] = -1  # unknown labels are ignored
  va[5:8] = np.nan  # so is unknown VA
  return labels, va


def test_class_statistics_match_numpy(training_set):
  labels, va = training_set
  priors, means, covs = ml.class_statistics(labels, va, C)
  keep = (labels >= 0) & np.all(np.isfinite(va), 1)
  lab, x = labels[keep], va[keep]
  np.testing.assert_allclose(priors, np.bincount(lab, minlength=C) / keep.sum())
  for c in range(C):
    np.testing.assert_allclose(means[c], x[lab == c].mean(0))
    np.testing.assert_allclose(covs[c], np.cov(x[lab == c].T, bias=True) + 1e-6 * np.eye(2))


def test_class_statistics_within_std_drops_outliers():
  pts = np.array([[0, 0], [0.1, 0.05], [-0.1, -0.05], [0.05, 0.1], [-0.05, -0.1], [3, 3.]])
  labels = np.zeros(len(pts), int)
  priors, means, covs = ml.class_statistics(labels, pts, 2, within_std=True, reg_covar=0)
  inside = pts[:5]  # the outlier (3, 3) is outside the 1-std box; the rest inside
  np.testing.assert_allclose(means[0], inside.mean(0))
  np.testing.assert_allclose(covs[0], np.cov(inside.T, bias=True))
  np.testing.assert_allclose(priors, [1, 0])  # priors count every row; class 1 has none
  assert np.all(np.isnan(means[1])) and np.all(np.isnan(covs[1]))


def _sklearn_gmm(priors, means, covs):
  gm = GaussianMixture(n_components=len(priors), covariance_type="full")
  gm.weights_, gm.means_, gm.covariances_ = priors, means, covs
  gm.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(covs))  # P = L L^T
  gm.precisions_ = np.linalg.inv(covs)
  gm.converged_, gm.n_iter_, gm.lower_bound_ = True, 1, 0.0
  gm.n_features_in_ = 2
  return gm


def test_gmm_labels_equal_sklearn(training_set):
  labels, va = training_set
  stats = ml.class_statistics(labels, va, C, within_std=True)
  grid = np.stack(np.meshgrid(np.linspace(-1, 1, 21), np.linspace(-1, 1, 21)), -1).reshape(-1, 2)
  x = np.concatenate([va[8:], grid])
  ours = np.asarray(ml.gmm_labels(x, *stats))
  ref = _sklearn_gmm(*stats).predict_proba(x)
  assert ours.shape == (len(x), C)
  np.testing.assert_allclose(ours, ref, atol=1e-4)
  np.testing.assert_allclose(ours.sum(-1), 1, atol=1e-5)


def test_gmm_labels_far_points_and_missing():
  priors, means, covs = ml.class_statistics(np.repeat(np.arange(3), 50),
                                            np.random.default_rng(1).normal(size=(150, 2)) * 0.1
                                            + np.repeat(np.array([[0, 0], [.5, .5], [-.5, .5]]),
                                                        50, 0), 4)  # class 3 has no rows
  far = np.array([[30.0, -40.0], [-1e3, 1e3], [0.5, 200.0]])
  p = np.asarray(ml.gmm_labels(far, priors, means, covs))
  assert np.all(np.isfinite(p)) and np.allclose(p.sum(-1), 1, atol=1e-5)
  assert np.all(p[:, 3] == 0)  # a class without rows never gets mass
  # Far away, the class with the widest spread along that direction wins; sklearn agrees on argmax.
  np.testing.assert_array_equal(p.argmax(-1),
                                _sklearn_gmm(priors[:3] / priors[:3].sum(), means[:3],
                                             covs[:3]).predict_proba(far).argmax(-1))
  nan_row = np.asarray(ml.gmm_labels(np.array([[np.nan, 0.0]]), priors, means, covs))
  assert np.all(np.isnan(nan_row))


def test_euclid_labels_hand_built():
  means = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]])
  pts = np.array([[0.5, 0.0], [1.0, 0.0], [1.0 + 1e-4, 0.0], [np.nan, 0.0]])
  p = np.asarray(ml.euclid_labels(pts, means))
  # (0.5, 0): d^2 = 0.25, 0.25, 4.25; Eq. 3 gives max/d^2 = 17, 17, 1, normalised by 35.
  np.testing.assert_allclose(p[0], [17 / 35, 17 / 35, 1 / 35], rtol=1e-5)
  np.testing.assert_array_equal(p[1], [0, 1, 0])  # exactly on a centroid: no division by zero
  assert np.all(np.isfinite(p[2])) and p[2, 1] > 0.9999
  assert np.all(np.isnan(p[3]))
  # The original code's plain distances: d = 0.5, 0.5, sqrt(4.25).
  q = np.asarray(ml.euclid_labels(pts[:1], means, squared=False))[0]
  inv = 1 / np.array([0.5, 0.5, np.sqrt(4.25)])
  np.testing.assert_allclose(q, inv / inv.sum(), rtol=1e-5)
  # Nearest centroid gets the most mass; a missing (NaN) centroid gets none.
  r = np.asarray(ml.euclid_labels(np.array([[0.1, 1.8]]), np.concatenate([means, [[np.nan] * 2]])))
  assert r[0].argmax() == 2 and r[0, 3] == 0 and abs(r.sum() - 1) < 1e-6


def test_fuse():
  p_va = jnp.array([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8], [np.nan] * 3])
  labels = jnp.array([0, 1, -1, 2])
  out = np.asarray(ml.fuse(labels, p_va, 0.5))
  np.testing.assert_allclose(out[0], [0.6, 0.25, 0.15])  # Eq. 4
  np.testing.assert_allclose(out[1], [0.3, 0.6, 0.1])
  np.testing.assert_allclose(out[2], [0.1, 0.1, 0.8])  # unknown label: p_VA alone
  np.testing.assert_allclose(out[3], [0, 0, 1])  # unknown VA: the one-hot label alone
  np.testing.assert_allclose(out.sum(-1), 1, atol=1e-6)
  np.testing.assert_allclose(ml.fuse(labels[:2], p_va[:2], 1.0), np.eye(3)[:2])
  np.testing.assert_allclose(ml.fuse(np.eye(3)[[0, 1]], p_va[:2], 0.0), p_va[:2])


def test_flip_labels_exact_fraction_never_same_class():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, C, 2000)
  labels[:200] = -1
  new, mask = (np.asarray(a) for a in ml.flip_labels(jax.random.key(0), labels, 0.3, C,
                                                     return_mask=True))
  changed = new != labels
  assert changed.sum() == round(0.3 * 1800) == mask.sum()  # exactly round(rate * N known)
  np.testing.assert_array_equal(changed, mask)  # every picked label moves: never the same class
  assert np.all(new[:200] == -1) and np.all((new[200:] >= 0) & (new[200:] < C))
  # Each picked label goes uniformly to the other classes: offsets 1..C-1 about equally often.
  offsets = np.bincount((new[changed] - labels[changed]) % C, minlength=C)
  assert offsets[0] == 0 and offsets[1:].min() > 40
  assert int(np.sum(np.asarray(ml.flip_labels(jax.random.key(3), np.arange(10) % 4, 0.25, 4))
                    != np.arange(10) % 4)) == 2  # round(2.5) = 2 (half to even)


def test_flip_labels_original_code_mode():
  labels = np.arange(4000) % C
  new, mask = ml.flip_labels(jax.random.key(1), labels, 0.3, C, original=True, return_mask=True)
  new, mask = np.asarray(new), np.asarray(mask)
  # With replacement: fewer distinct rows than draws; 1/C of the picked keep their label.
  assert mask.sum() < 1200 and (new != labels).sum() < mask.sum()
  assert abs((new == labels)[mask].mean() - 1 / C) < 0.04


def test_va_only_labels(training_set):
  labels, va = training_set
  stats = ml.class_statistics(labels, va, C)
  x = np.concatenate([va[8:40], [[np.nan, np.nan]]])
  lab, p = ml.va_only_labels(x, *stats)
  lab, p = np.asarray(lab), np.asarray(p)
  np.testing.assert_array_equal(lab[:-1], p[:-1].argmax(-1))
  assert lab[-1] == -1 and lab.dtype == np.int32


# --- losses (Eqs. 5-9) ---

def test_class_weights():
  w = np.asarray(cl.class_weights(np.array([0, 0, 0, 1, 2, 2, -1]), 4))
  np.testing.assert_allclose(w, [1, 3, 1.5, 0])  # N_max / N_k; an empty class gets 0
  np.testing.assert_allclose(cl.class_weights(np.arange(12) % 3, 3), [1, 1, 1])


def test_weighted_cross_entropy_hand_case():
  logits = jnp.log(jnp.array([[0.5, 0.25, 0.25]])) + 3.0  # softmax = (0.5, 0.25, 0.25)
  w = jnp.array([1.0, 2.0, 3.0])
  out = cl.weighted_cross_entropy(logits, jnp.array([[0.6, 0.4, 0.0]]), w)
  # -(1 * 0.6 log 0.5 + 2 * 0.4 log 0.25) = 0.6 ln 2 + 1.6 ln 2
  np.testing.assert_allclose(out, [2.2 * np.log(2)], rtol=1e-5)
  onehot = cl.weighted_cross_entropy(logits, jnp.array([[0.0, 1.0, 0.0]]), w)
  np.testing.assert_allclose(onehot, [2 * np.log(4)], rtol=1e-5)  # W_k of the true class


def test_cosine_loss_hand_case():
  probs = jnp.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
  targets = jnp.array([[1.0, 0.0, 0.0], [0.6, 0.4, 0.0]])
  w = jnp.array([1.0, 2.0, 3.0])
  out = np.asarray(cl.cosine_loss(probs, targets, w))
  sim1 = (0.3 + 0.2) / (np.sqrt(0.5) * np.sqrt(0.52))
  np.testing.assert_allclose(out, [1 - np.sqrt(0.5), 1.4 * (1 - sim1)], rtol=1e-5)
  by_label = cl.cosine_loss(probs, targets, w, labels=jnp.array([0, 1]))
  np.testing.assert_allclose(by_label, [1 - np.sqrt(0.5), 2 * (1 - sim1)], rtol=1e-5)
  assert float(cl.cosine_loss(probs[:1], jnp.zeros((1, 3)), w)[0]) == 0.0


def test_weighted_l2_hand_case():
  pred = jnp.array([[0.0, 0.0], [1.0, 1.0], [0.5, 0.5]])
  target = jnp.array([[0.3, 0.4], [np.nan, np.nan], [0.5, 0.0]])
  out = cl.weighted_l2(pred, target, jnp.array([1.0, 2.0, 3.0]), jnp.array([1, 0, -1]))
  np.testing.assert_allclose(out, [2 * 0.25, 0.0, 0.25], rtol=1e-6)  # label -1: weight 1


def test_dual_domain_loss_total_and_gradients():
  logits = jnp.array([[1.0, 0.0, -1.0], [0.2, 0.1, 0.3]])
  targets = jnp.array([[0.7, 0.2, 0.1], [0.0, 0.5, 0.5]])
  va_pred = jnp.array([[0.1, 0.2], [0.3, -0.1]])
  va_t = jnp.array([[0.0, 0.0], [np.nan, np.nan]])
  w, labels = jnp.array([1.0, 2.0, 0.5]), jnp.array([0, 2])
  total, parts = jax.jit(cl.dual_domain_loss)(logits, va_pred, targets, va_t, w, labels)
  probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
  ce = -np.sum(np.asarray(w) * targets * np.log(probs), -1)  # Eq. 6, term by term
  sim = np.sum(probs * targets, -1) / np.linalg.norm(probs, axis=-1) / np.linalg.norm(targets,
                                                                                        axis=-1)
  cos = np.sum(np.asarray(w) * targets, -1) * (1 - sim)  # Eq. 7
  np.testing.assert_allclose(parts["ce"], ce.mean(), rtol=1e-5)
  np.testing.assert_allclose(parts["cos"], cos.mean(), rtol=1e-5)
  np.testing.assert_allclose(parts["l2"], 0.05, rtol=1e-6)  # one row with VA: 1 * (0.01 + 0.04)
  np.testing.assert_allclose(total, parts["ce"] + parts["cos"] + parts["l2"], rtol=1e-6)  # Eq. 9
  grads = jax.jit(jax.grad(lambda lg, v: cl.dual_domain_loss(lg, v, targets, va_t, w, labels)[0],
                           argnums=(0, 1)))(logits, va_pred)
  assert all(np.all(np.isfinite(g)) for g in grads)
  assert np.all(np.asarray(grads[1])[1] == 0)  # no VA target, no VA gradient


def test_public_names():
  ns = {}
  exec("from affectjax.losses.classification import *", ns)  # noqa: S102
  assert sorted(k for k in ns if not k.startswith("__")) == sorted(
      ["class_weights", "weighted_cross_entropy", "cosine_loss", "weighted_l2",
       "dual_domain_loss"])
