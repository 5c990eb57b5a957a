"""Issue 23, items 5-7: the real-data paths follow their papers.

5. Dual-domain on a VA-only dataset (Aff-Wild) gets AffectNet's pi_k, mu_k, Sigma_k, mixed labels
   p(y | x)_GMM for training and argmax labels for the test split, so its test metrics are finite.
6. Rb-VAE's schedule is 30 epochs of the unlabelled set actually loaded, and MNIST's probe splits
   are the paper's 5k images each.
7. The triplet VAE's linear SVM sees the features as they are unless config.eval.svm_standardize.
"""
import types

import numpy as np
import pytest

from conftest import load_config


# ---------------------------------------------------------------- 7. the triplet VAE's linear SVM

def _svm_problem(n=200, seed=0):
  """Two classes separated only along a feature of scale 1e-3, beside unit-variance noise: a
  linear SVM with C = 1 cannot afford the weight (~1e3) that feature needs unless standardised."""
  rng = np.random.default_rng(seed)
  y = rng.integers(0, 2, n)
  x = np.stack([(2 * y - 1 + 0.3 * rng.standard_normal(n)) * 1e-3, rng.standard_normal(n)], 1)
  return x, y


def _prep(y_train, y_test):
  part = lambda y: types.SimpleNamespace(label=y, factors=np.zeros((len(y), 0)),
                                         identity=np.arange(len(y)) % 4, triplets={})
  return types.SimpleNamespace(train=part(y_train), test=part(y_test))


def test_triplet_vae_svm_has_no_scaler_by_default_and_the_switch_adds_it():
  from sklearn.preprocessing import StandardScaler
  from sklearn.svm import LinearSVC
  from affectjax.methods.triplet_vae import evaluate as ev
  x_tr, y_tr = _svm_problem(seed=0)
  x_te, y_te = _svm_problem(seed=1)
  config = load_config("triplet_vae", "tiny")
  assert config.eval.svm_standardize is False  # the paper's default (Sec. V-B)
  config.eval.svm_c = 1.0  # fixed, as the references below
  plain = ev.scores(x_tr, x_te, _prep(y_tr, y_te), config)["accuracy"]
  expect = np.mean(LinearSVC(C=1.0, max_iter=20000).fit(x_tr, y_tr).predict(x_te) == y_te)
  assert plain == pytest.approx(expect) and plain < 0.8  # the tiny feature is out of reach
  config.eval.svm_standardize = True
  scaled = ev.scores(x_tr, x_te, _prep(y_tr, y_te), config)["accuracy"]
  s = StandardScaler().fit(x_tr)
  expect = np.mean(LinearSVC(C=1.0, max_iter=20000).fit(s.transform(x_tr), y_tr)
                   .predict(s.transform(x_te)) == y_te)
  assert scaled == pytest.approx(expect) and scaled > 0.95


# ---------------------------------------------------------------- 5. dual-domain on Aff-Wild (VA only)

def _numpy_gmm(va, priors, means, stds):
  """Eq. 2 with diagonal Gaussians, transcribed in numpy float64: p [N, C]."""
  va = np.asarray(va, np.float64)[:, None, :]
  log = (np.log(priors) - np.sum(np.log(2 * np.pi * stds ** 2), -1) / 2
         - 0.5 * np.sum(((va - means) / stds) ** 2, -1))
  p = np.exp(log - log.max(-1, keepdims=True))
  return p / p.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def aff_wild(tmp_path_factory):
  import fixtures_real as fx
  fx.limit_tf_threads()
  root = tmp_path_factory.mktemp("aff_wild")
  fx.write_aff_wild(str(root / "manual"))
  return root


def _aff_wild_config(root, arg="tiny,gmm"):
  c = load_config("dual_domain", arg)
  c.data.name, c.data.manual_dir, c.data.tfds_dir = "aff_wild", str(root / "manual"), str(root / "tfds")
  c.train.batch_size, c.train.num_steps, c.eval.bn_batches = 4, 2, 1
  c.eval.figures = False
  return c


def test_va_only_dataset_gets_affectnet_mixed_labels_and_finite_test_metrics(aff_wild, tmp_path):
  import jax
  from affectjax.affect import affectnet_stats as an
  from affectjax.data import sources
  from affectjax.methods import dual_domain as dd
  c = _aff_wild_config(aff_wild)
  assert (c.labels.va_only_stats, c.labels.affectnet_stats) == ("affectnet", "")  # Sec. 4.1
  data = sources.load(c)
  splits, info = dd.prepare(c, data)
  priors = an.TRAIN_COUNTS / an.TRAIN_COUNTS.sum()  # AffectNet's pi_k, not Aff-Wild's own
  np.testing.assert_allclose(info["priors"], priors)
  np.testing.assert_allclose(info["means"], an.VA_MEANS)
  np.testing.assert_allclose(info["covs"][:, [0, 1], [0, 1]], an.VA_STDS ** 2)
  train_va = data.train.gather(np.arange(len(data.train)))["va"]
  expect = _numpy_gmm(train_va, priors, an.VA_MEANS, an.VA_STDS)  # p(y | x)_GMM per annotation
  np.testing.assert_allclose(splits.train.fields["p_va"], expect, rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(splits.train.fields["label"], expect.argmax(-1))  # Sec. 5.1
  test_va = data.test.gather(np.arange(len(data.test)))["va"]  # (-1, 1) and (1, -1)
  test_labels = dd.read(splits.test, "label")
  np.testing.assert_array_equal(test_labels, _numpy_gmm(test_va, priors, an.VA_MEANS, an.VA_STDS).argmax(-1))
  # The method's evaluation of the test split: F1, accuracy and ECE are numbers, not NaN.
  method = dd.make_method(c, data)
  state = method.init(jax.random.key(0), {"data": method.data.train.gather(np.arange(4))})
  m = method.evaluate(state, method.data, str(tmp_path))
  for k in ("f1", "accuracy", "ece", "rmse_v"):
    assert np.isfinite(m[k]), (k, m[k])
  guess = dd.predictions(dd.variables(state), method.data.test, model=dd.build_model(c),
                         config=c)["probs"].argmax(-1)
  assert m["accuracy"] == pytest.approx(np.mean(guess == test_labels))


def test_va_only_statistics_from_a_users_affectnet(aff_wild, tmp_path):
  import fixtures_real as fx
  from affectjax.affect import affectnet_stats as an
  from affectjax.data import builders, sources
  from affectjax.errors import DataError
  from affectjax.methods import dual_domain as dd
  # A .npz of pi_k, mu_k, Sigma_k (e.g. a dual-domain AffectNet run's class_statistics.npz).
  rng = np.random.default_rng(0)
  priors = rng.dirichlet(np.ones(8))
  means = rng.uniform(-0.6, 0.6, (8, 2))
  covs = np.stack([np.array([[0.04, 0.01], [0.01, 0.03]])] * 8)
  np.savez(tmp_path / "stats.npz", priors=priors, means=means, covs=covs)
  c = _aff_wild_config(aff_wild)
  c.labels.affectnet_stats = str(tmp_path / "stats.npz")
  data = sources.load(c)
  splits, info = dd.prepare(c, data)
  np.testing.assert_allclose(info["priors"], priors)
  np.testing.assert_allclose(info["covs"], covs + 1e-6 * np.eye(2))
  assert info["statistics"] == f"AffectNet ({tmp_path / 'stats.npz'})"
  # AffectNet's manual_dir: the statistics its builder computed over its training split.
  fx.write_affectnet(str(tmp_path / "affectnet"))
  c.labels.affectnet_stats = str(tmp_path / "affectnet")
  _, info = dd.prepare(c, data)
  dc = fx.data_config("affectnet", tmp_path / "affectnet", aff_wild / "tfds", image_size=c.data.image_size)
  built = builders.load_splits(dc).metadata["va_stats"]
  np.testing.assert_allclose(info["priors"], built["priors"])
  np.testing.assert_allclose(info["means"], built["means"])
  assert not np.allclose(info["priors"], an.TRAIN_COUNTS / an.TRAIN_COUNTS.sum())
  np.save(tmp_path / "bad.npy", np.zeros(3))
  with pytest.raises(DataError, match="bad.npy"):
    an.load_gmm(str(tmp_path / "bad.npy"), 8)


def test_va_only_refit_is_the_named_alternative(aff_wild):
  from affectjax.data import sources
  from affectjax.methods import dual_domain as dd
  c = _aff_wild_config(aff_wild)
  c.labels.va_only_stats = "refit"
  _, info = dd.prepare(c, sources.load(c))
  assert info["statistics"] == "refit on the AffectNet-derived labels"
  assert np.count_nonzero(info["priors"]) < 8  # four frames: only the classes they were given


# ---------------------------------------------------------------- 6. Rb-VAE's schedule and probe splits

def _fake_mnist(n_train, n_test, seed=0):
  """MNIST's layout (28x28 in [0, 1], labels 0-9, a separate test set) at another size."""
  rng = np.random.default_rng(seed)
  def digits(n):
    x = np.zeros((n, 28, 28), np.float32)
    for i in range(n):
      r, w = rng.integers(4, 10, 2)
      x[i, 14 - r:14 + r, 14 - w // 2:14 + w // 2] = 1.0
    return x, rng.integers(0, 10, n)
  return (*digits(n_train), *digits(n_test))


def test_rbvae_schedule_follows_the_data_loaded_and_probes_are_the_papers(monkeypatch):
  from affectjax import train
  from affectjax.data import digits
  from affectjax.methods import rbvae
  c = load_config("rbvae", "srbvae,small")
  assert c.train.epochs == 30 and c.train.num_steps == 1049  # sklearn's 1,258 unlabelled images
  monkeypatch.setattr(digits, "_mnist_arrays", lambda tfds_dir: _fake_mnist(300, 80))
  s = train.setup(c)  # loads the (fake) MNIST: 150 reference + 2 x 150 unlabelled images
  assert s.data.metadata["num_unlabelled"] == 300
  assert s.config.train.num_steps == int(np.ceil(30 * 300 / 36)) == 250  # Sec. 5.2: 30 epochs
  # Sec. 5.3: the test set's two halves, each digit styled once (MNIST: 5k images each).
  fit, score = s.data.probe_fit, s.data.test
  assert len(fit) == len(score) == 40
  ids = np.concatenate([fit.arrays["identity"], score.arrays["identity"]])
  assert len(np.unique(ids)) == 80 and ids.min() >= 300
  # Another size, another schedule; epochs = 0 keeps num_steps as given.
  c = load_config("rbvae", "srbvae,small")
  monkeypatch.setattr(digits, "_mnist_arrays", lambda tfds_dir: _fake_mnist(120, 20))
  assert train.setup(c).config.train.num_steps == int(np.ceil(30 * 120 / 36)) == 100
  c = load_config("rbvae", "srbvae,small")
  c.train.epochs, c.train.num_steps = 0, 7
  assert train.setup(c).config.train.num_steps == 7
  assert rbvae.resolve_num_steps(c, 10 ** 6) == 7


def test_a_step_count_given_outright_replaces_rbvae_epochs():
  from affectjax import config as config_lib
  from affectjax.methods import rbvae
  c = load_config("rbvae", "srbvae,small")
  assert c.train.epochs == 30
  config_lib.set_num_steps(c, 123)  # what experiments' --steps does
  assert c.train.epochs == 0 and rbvae.resolve_num_steps(c, 60_000) == 123
