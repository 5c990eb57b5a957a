"""The probe library every method's evaluation uses (affectjax.evaluate.probes): each probe
against an independent scikit-learn/NumPy computation, its regularisation chosen on fit rows only
(scores and choices unchanged by anything done to the scoring split), and two methods'
evaluations of the same features giving the same probe numbers."""
import importlib
import types

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler

from affectjax.evaluate import probes
from conftest import load_config


def _classes(n, d, rng, sep):
  y = np.arange(n) % 3
  x = rng.normal(size=(n, d))
  x[:, 0] += sep * y
  return x, y


def test_select_rows_takes_every_fourth_row_of_each_group():
  g = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0])
  sel = probes.select_rows(g)
  # group 0 rows: 0,2,4,6,8,9,10,11 -> its 4th and 8th (6, 11); group 1 rows: 1,3,5,7 -> its 4th (7)
  assert np.flatnonzero(sel).tolist() == [6, 7, 11]


def test_select_rows_with_people_holds_out_whole_people():
  people = np.array([7, 3, 5, 3, 9, 1, 7, 5, 1, 9, 2, 8, 4, 6])  # 8 people, ids 1..9
  sel = probes.select_rows(np.zeros(len(people)), people)
  assert set(people[sel]) == {4, 8}  # sorted ids 1, 2, ..., 9: the 4th and the 8th
  assert not set(people[sel]) & set(people[~sel])
  assert probes.select_rows([0, 0, 0], [5, 6, 6]).tolist() == [False, True, True]  # 2 people
  # one person: rows as without people
  assert probes.select_rows([0] * 8, [1] * 8).tolist() == probes.select_rows([0] * 8).tolist()


def _people_faces(rng, people, per, d=60):
  """Faces whose expression shows in a direction of each person's own (plus a weak shared one):
  a probe that reads a person's direction is right on that person's other faces only."""
  ids, y = np.repeat(np.arange(people), per), np.tile(np.arange(3), people * per // 3)
  shared = np.zeros((3, d))
  shared[:, :3] = 0.8 * np.eye(3)
  x = rng.normal(size=(len(ids), d)) + 1.5 * rng.normal(size=(people, 3, d))[ids, y] + shared[y]
  return x, y, ids


def _independent_c(x, y, sel):
  acc = []
  for c in probes.C_GRID:
    sc = StandardScaler().fit(x[~sel])
    m = LogisticRegression(C=c, max_iter=2000).fit(sc.transform(x[~sel]), y[~sel])
    acc.append(np.mean(m.predict(sc.transform(x[sel])) == y[sel]))
  return probes.C_GRID[int(np.argmax(acc))]


def test_with_people_c_is_chosen_on_held_out_people_as_computed_independently():
  rng = np.random.default_rng(1)
  x, y, ids = _people_faces(rng, 16, 24)
  xs, ys, _ = _people_faces(rng, 8, 24)
  by_person = np.isin(ids, np.unique(ids)[3::4])  # the 4th, 8th, ... person
  c_people, c_rows = _independent_c(x, y, by_person), _independent_c(x, y, probes.select_rows(y))
  assert c_people != c_rows  # on this problem the two selections choose differently
  assert probes.linear_classifier((x, y), (xs, ys), people=ids)["C"] == c_people
  assert probes.linear_classifier((x, y), (xs, ys))["C"] == c_rows
  # rows with label -1 are dropped from fit and from its people alike
  y2 = y.copy()
  y2[0] = -1
  keep = y2 >= 0
  assert probes.linear_classifier((x, y2), (xs, ys), people=ids)["C"] == _independent_c(
      x[keep], y2[keep], by_person[keep])


def test_ridge_r2_with_people_chooses_alpha_on_held_out_people():
  rng = np.random.default_rng(6)
  ids = np.repeat(np.arange(8), 15)
  x = rng.normal(size=(120, 20)) + 2.0 * rng.normal(size=(8, 20))[ids]
  t = x[:, :1] + 3.0 * rng.normal(size=(8, 1))[ids] + 0.5 * rng.normal(size=(120, 1))
  xs, ts = x[:40] + 0.1, t[:40]
  r = probes.ridge_r2((x, t), (xs, ts), people=ids)
  assert r["alpha"] != probes.ridge_r2((x, t), (xs, ts))["alpha"]  # people change the choice here
  sel = np.isin(ids, [3, 7])
  on_select = []
  for a in probes.ALPHA_GRID:
    sc = StandardScaler().fit(x[~sel])
    pred = Ridge(alpha=a).fit(sc.transform(x[~sel]), t[~sel, 0]).predict(sc.transform(x[sel]))
    on_select.append(r2_score(t[sel, 0], pred))
  assert r["alpha"][0] == probes.ALPHA_GRID[int(np.argmax(on_select))]
  assert len(set(np.round(on_select, 6))) > 1


def test_linear_classifier_with_one_c_is_sklearns_logistic_regression():
  rng = np.random.default_rng(0)
  (x, y), (xs, ys) = _classes(120, 4, rng, 1.0), _classes(60, 4, rng, 1.0)
  y[5] = -1  # unlabelled: dropped
  r = probes.linear_classifier((x, y), (xs, ys), grid=(0.3,))
  sc = StandardScaler().fit(x[y >= 0])
  ref = LogisticRegression(C=0.3, max_iter=2000).fit(sc.transform(x[y >= 0]), y[y >= 0])
  pred = ref.predict(sc.transform(xs))
  assert r["C"] == 0.3
  assert r["accuracy"] == pytest.approx(np.mean(pred == ys))
  for k in range(3):
    assert r["per_class"][k] == pytest.approx(np.mean(pred[ys == k] == k))
  assert r["mean_recall"] == pytest.approx(np.mean([np.mean(pred[ys == k] == k) for k in range(3)]))


def test_c_is_chosen_on_the_selection_rows_and_the_score_split_never_matters():
  rng = np.random.default_rng(1)
  (x, y), (xs, ys) = _classes(160, 30, rng, 0.6), _classes(90, 30, rng, 0.6)
  r = probes.linear_classifier((x, y), (xs, ys))
  sel = probes.select_rows(y)
  # independently: fit on the other rows per C, accuracy on the selection rows, first best
  acc = []
  for c in probes.C_GRID:
    sc = StandardScaler().fit(x[~sel])
    m = LogisticRegression(C=c, max_iter=2000).fit(sc.transform(x[~sel]), y[~sel])
    acc.append(np.mean(m.predict(sc.transform(x[sel])) == y[sel]))
  assert r["C"] == probes.C_GRID[int(np.argmax(acc))]
  assert len(set(np.round(acc, 6))) > 1  # the choice is a real one on this problem
  # permuting the scoring labels changes the score, never the choice
  perm = rng.permutation(len(ys))
  r2 = probes.linear_classifier((x, y), (xs, ys[perm]))
  assert r2["C"] == r["C"] and r2["accuracy"] != r["accuracy"]
  # an explicit selection split is used instead of the fit rows
  (xv, yv) = _classes(60, 30, rng, 0.6)
  assert probes.linear_classifier((x, y), (xs, ys), (xv, yv))["C"] in probes.C_GRID


def test_ridge_r2_with_one_alpha_is_sklearns_and_alpha_is_chosen_on_fit_rows():
  rng = np.random.default_rng(2)
  x, xs = rng.normal(size=(100, 6)), rng.normal(size=(50, 6))
  w = rng.normal(size=(6, 2))
  t, ts = x @ w + rng.normal(size=(100, 2)), xs @ w + rng.normal(size=(50, 2))
  t[3, 1] = np.nan  # dropped for column 1 only
  r = probes.ridge_r2((x, t), (xs, ts), grid=(2.0,))
  for j in range(2):
    keep = np.isfinite(t[:, j])
    sc = StandardScaler().fit(x[keep])
    pred = Ridge(alpha=2.0).fit(sc.transform(x[keep]), t[keep, j]).predict(sc.transform(xs))
    assert r["r2"][j] == pytest.approx(r2_score(ts[:, j], pred), rel=1e-9)
  assert r["mean"] == pytest.approx(np.mean(r["r2"]))
  chosen = probes.ridge_r2((x, t), (xs, ts))
  permuted = probes.ridge_r2((x, t), (xs, ts[rng.permutation(50)]))
  assert chosen["alpha"] == permuted["alpha"] and chosen["mean"] > permuted["mean"]


def test_identity_leakage_is_high_for_identity_features_and_near_chance_for_noise():
  rng = np.random.default_rng(3)
  identity = np.repeat(np.arange(6), 12)
  onehot = np.eye(6)[identity] + 0.05 * rng.normal(size=(72, 6))
  leak = probes.identity_leakage(onehot, identity)
  assert leak["accuracy"] == 1.0 and leak["chance"] == pytest.approx(1 / 6)
  noise = probes.identity_leakage(rng.normal(size=(72, 6)), identity)
  assert noise["accuracy"] < 0.5


def test_reconstruction_mae_against_numpy():
  rng = np.random.default_rng(4)
  x = rng.uniform(-1, 1, size=(7, 3, 3, 1))
  r = probes.reconstruction_mae(x, x + 0.2)
  assert r["mae"] == pytest.approx(0.1)
  assert r["constant_mae"] == pytest.approx(np.mean(np.abs(x - np.median(x, 0))) / 2)


def test_rbvae_and_triplet_vae_evaluations_give_the_same_probe_numbers_on_the_same_features():
  """The same question asked by two methods' evaluations gets the same answer: AU R^2 and
  identity leakage of one set of features, through Rb-VAE's faces-truth evaluation and the
  triplet VAE's scores."""
  from affectjax.data.synthetic import AU_NAMES
  rb_eval = importlib.import_module("affectjax.methods.rbvae.evaluate")
  tv_eval = importlib.import_module("affectjax.methods.triplet_vae.evaluate")
  rng = np.random.default_rng(5)
  n_fit, n_sc, k = 96, 60, len(AU_NAMES)
  au_fit, au_sc = rng.uniform(size=(n_fit, k)), rng.uniform(size=(n_sc, k))
  id_fit, id_sc = np.arange(n_fit) % 4, np.arange(n_sc) % 5
  mix = rng.normal(size=(k, 8))
  z_fit = au_fit @ mix + 0.3 * rng.normal(size=(n_fit, 8)) + 0.5 * np.eye(8)[id_fit % 8]
  z_sc = au_sc @ mix + 0.3 * rng.normal(size=(n_sc, 8)) + 0.5 * np.eye(8)[id_sc % 8]
  names = tuple(AU_NAMES) + ("intensity",)
  fields = lambda au, ids: {"factors": np.c_[au, au.mean(1)], "identity": ids}
  rb = rb_eval._faces_truth(types.SimpleNamespace(seed=0), names, {"main": z_fit}, {"main": z_sc},
                            fields(au_fit, id_fit), fields(au_sc, id_sc))
  part = lambda au, ids, lab: types.SimpleNamespace(label=lab, factors=au, identity=ids, triplets={})
  prep = types.SimpleNamespace(train=part(au_fit, id_fit, id_fit % 3), test=part(au_sc, id_sc, id_sc % 3))
  tv = tv_eval.scores(z_fit, z_sc, prep, load_config("triplet_vae", "tiny"))
  assert rb["main/au_r2"] == pytest.approx(tv["factor_r2"], rel=1e-12)
  assert rb["main/identity_acc"] == tv["identity_accuracy"]
  assert rb["chance/identity_acc"] == tv["identity_chance"] == pytest.approx(1 / 5)
  assert 0.3 < tv["factor_r2"] < 1.0 and tv["identity_accuracy"] > 0.2  # real, non-trivial numbers
