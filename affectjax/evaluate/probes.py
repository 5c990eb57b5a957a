"""The probes every method's evaluation uses (scikit-learn), fitted on one split and scored on a
held-out one: LeVAsa's VA regressive power (levasa.md Table 2) and categorical emotion predictive
power (Table 3); below, the linear probes shared by every method.

Inputs are standardised with statistics of the training split only (the original notebook called
preprocessing.scale without using its result, so its probes saw raw latents; and its Table 2 grid
search was fitted on all rows, test split included: REFERENCE.md).
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.compose import TransformedTargetRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import (accuracy_score, explained_variance_score, mean_absolute_error,
                             mean_squared_error, r2_score)
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

AXES = ("valence", "arousal")


def chunk_combinations() -> dict:
  """Table 3's rows: name -> chunks concatenated (in this order) as the probe's input."""
  return {
      "z_v": ["z_v"],
      "z_a": ["z_a"],
      "z_z": ["z_z"],
      "z_v+z_a": ["z_v", "z_a"],
      "z_v+z_a+z_z": ["z_v", "z_a", "z_z"],
  }


def concat_chunks(chunks: dict, names) -> np.ndarray:
  """The [N, sum d] input of one chunk_combinations() row from a name -> [N, d] dict."""
  return np.concatenate([np.asarray(chunks[n], np.float64) for n in names], axis=1)


def _fit_quietly(model, x, y):
  with warnings.catch_warnings():  # a capped max_iter is deliberate: keep logs readable
    warnings.simplefilter("ignore", ConvergenceWarning)
    return model.fit(x, y)


def _per_axis(z):
  """One input per axis: a single [N, d] array serves both, or a (z_for_v, z_for_a) pair."""
  return tuple(z) if isinstance(z, (tuple, list)) else (z, z)


def va_regression_predict(train_z, train_va, test_z, seed: int = 0, hidden=(32,),
                          max_iter: int = 300, alpha: float = 1e-3) -> np.ndarray:
  """Table 2's probe: an MLPRegressor per axis (inputs and target standardised on the training
  split; predictions mapped back to VA units). Returns [N_test, 2] predictions for every test row.

  train_z / test_z: [N, d] for both axes, or a (z for valence, z for arousal) pair, as the paper
  regresses V from z_v and A from z_a. Training rows with non-finite VA are dropped (per axis).
  """
  tr_z, te_z = _per_axis(train_z), _per_axis(test_z)
  train_va = np.asarray(train_va, np.float64)
  out = np.zeros((len(te_z[0]), 2))
  for i in range(2):
    tr = np.isfinite(train_va[:, i])
    model = TransformedTargetRegressor(make_pipeline(StandardScaler(), MLPRegressor(
        hidden_layer_sizes=tuple(hidden), alpha=alpha, max_iter=max_iter, random_state=seed)),
        transformer=StandardScaler())  # a unit-scale target keeps Adam's stopping tol meaningful
    _fit_quietly(model, np.asarray(tr_z[i])[tr], train_va[tr, i])
    out[:, i] = model.predict(np.asarray(te_z[i]))
  return out


def regression_metrics(test_va, pred, mask=None) -> dict:
  """{axis: {"mse", "mae", "ev", "r2"}} of [N, 2] predictions, sklearn's definitions:
  mse = mean (y - y_hat)^2, mae = mean |y - y_hat|, ev = 1 - Var(y - y_hat) / Var(y),
  r2 = 1 - sum (y - y_hat)^2 / sum (y - mean y)^2; rows outside `mask` or with non-finite VA are
  dropped (NaNs when fewer than two rows remain)."""
  test_va, pred = np.asarray(test_va, np.float64), np.asarray(pred, np.float64)
  mask = np.ones(len(test_va), bool) if mask is None else np.asarray(mask, bool)
  out = {}
  for i, axis in enumerate(AXES):
    te = mask & np.isfinite(test_va[:, i])
    if te.sum() < 2:
      out[axis] = {k: float("nan") for k in ("mse", "mae", "ev", "r2")}
      continue
    y, y_hat = test_va[te, i], pred[te, i]
    out[axis] = {"mse": float(mean_squared_error(y, y_hat)),
                 "mae": float(mean_absolute_error(y, y_hat)),
                 "ev": float(explained_variance_score(y, y_hat)),
                 "r2": float(r2_score(y, y_hat))}
  return out


def va_regression(train_z, train_va, test_z, test_va, seed: int = 0, hidden=(32,),
                  max_iter: int = 300, alpha: float = 1e-3) -> dict:
  """Table 2: va_regression_predict scored on the held-out split by regression_metrics."""
  pred = va_regression_predict(train_z, train_va, test_z, seed, hidden, max_iter, alpha)
  return regression_metrics(test_va, pred)


def emotion_predict(train_z, train_labels, test_z, seed: int = 0, hidden: int = 100,
                    max_iter: int = 300, early_stopping: bool = True) -> np.ndarray:
  """Table 3's probe: the paper's "simple one-layered MLP" on standardised inputs; [N_test] labels.

  "One-layered" is read as one hidden layer (ReLU, `hidden` units, Adam), i.e. sklearn's
  MLPClassifier defaults that the original notebook used (hidden 100, max_iter 300), plus early
  stopping on a 10 % validation split of the training rows (300 full epochs took minutes on a
  2-core CPU; early_stopping=False restores the notebook's fit). Training rows with label -1 are
  dropped.
  """
  train_labels = np.asarray(train_labels)
  tr = train_labels >= 0
  if len(np.unique(train_labels[tr])) < 2:  # one class: the classifier can only say that class
    return np.full(len(test_z), train_labels[tr][0] if tr.any() else -1)
  model = make_pipeline(StandardScaler(), MLPClassifier(
      hidden_layer_sizes=(int(hidden),), max_iter=max_iter, random_state=seed,
      early_stopping=early_stopping and tr.sum() >= 20))
  _fit_quietly(model, np.asarray(train_z)[tr], train_labels[tr])
  return model.predict(np.asarray(test_z))


def accuracy(test_labels, pred, mask=None) -> float:
  """Accuracy over rows with a label >= 0 (and inside `mask`); NaN when there are none."""
  test_labels = np.asarray(test_labels)
  keep = test_labels >= 0
  if mask is not None:
    keep &= np.asarray(mask, bool)
  return float(accuracy_score(test_labels[keep], np.asarray(pred)[keep])) if keep.any() else float("nan")


def emotion_accuracy(train_z, train_labels, test_z, test_labels, seed: int = 0, hidden: int = 100,
                     max_iter: int = 300, early_stopping: bool = True) -> float:
  """Table 3: held-out accuracy of emotion_predict (rows with label -1 dropped)."""
  pred = emotion_predict(train_z, train_labels, test_z, seed, hidden, max_iter, early_stopping)
  return accuracy(test_labels, pred)


def majority_class(train_labels) -> int:
  """Chance for Table 3: the most frequent training label (ties: the smallest id); -1 if none."""
  t = np.asarray(train_labels)
  t = t[t >= 0]
  return int(np.argmax(np.bincount(t))) if len(t) else -1


def pixel_features(train_images, test_images, components: int = 256, max_side: int = 32,
                   seed: int = 0):
  """The pixel ceiling's representation: images [N, H, W, C] average-pooled to at most max_side
  pixels a side (or already pooled and flattened, [N, D]), projected on the training split's first
  `components` principal components (at most one per 10 training rows). Returns (train [N, k],
  test [M, k]); the same probes then read them out as they read a model."""
  from sklearn.decomposition import PCA
  flat = lambda x: x.reshape(len(x), -1) if x.ndim == 2 else _pool(x, max_side)
  tr, te = (flat(np.asarray(x, np.float32)) for x in (train_images, test_images))
  k = int(max(1, min(components, tr.shape[0] // 10, tr.shape[1])))  # >= 10 training rows per component
  pca = PCA(n_components=k, svd_solver="randomized" if k < min(tr.shape) // 2 else "full",
            random_state=seed)
  return pca.fit_transform(tr), pca.transform(te)


def _pool(images, max_side: int) -> np.ndarray:
  """[N, H, W, C] -> [N, h * w * C], pool_images flattened."""
  return pool_images(images, max_side).reshape(len(images), -1)


def pool_images(images, max_side: int) -> np.ndarray:
  """[N, H, W, C] -> [N, h, w, C], average-pooled by the integer factor that brings H to at most
  max_side."""
  n, h, w = images.shape[:3]
  f = max(1, -(-h // max_side))
  h2, w2 = h // f, w // f
  return images[:, :h2 * f, :w2 * f].reshape(n, h2, f, w2, f, -1).mean(axis=(2, 4))


# ---------------------------------------------------------------- linear probes, every method
#
# Each question is asked by one probe, whichever method's features it reads: a linear classifier
# (multinomial logistic regression, or the triplet VAE paper's linear SVM), ridge R^2, identity
# leakage, reconstruction against the best constant. Three roles of data: a probe is fitted on
# `fit`, its regularisation chosen on `select` (given, or select_rows of `fit`), and it is scored on
# `score`, which no choice ever reads. The chosen value is returned beside the score so a caller
# can show (and a test can check) what was chosen.

C_GRID = tuple(float(c) for c in 10.0 ** np.arange(-3, 4))      # inverse regularisation, 1e-3..1e3
ALPHA_GRID = tuple(float(a) for a in 10.0 ** np.arange(-3, 4))  # ridge penalty, 1e-3..1e3
SELECT_EVERY = 4  # a quarter of the fit rows (or people) choose the regularisation


def select_rows(groups, people=None) -> np.ndarray:
  """bool [N]: the rows that choose a probe's regularisation when no selection split is given.

  Without `people`: every SELECT_EVERY-th row of each group (class; one group for a regression),
  in row order: deterministic, and every group on both sides when it has SELECT_EVERY rows.
  With `people` (an identity per row, as faces have): whole people, every SELECT_EVERY-th of the
  sorted ids (the last of two or three), so that the choice measures what the score does when it
  is read on other people: faces of a person seen in fitting are easy, and a penalty chosen on
  them is too weak for new people. With fewer than two people, the rows as without."""
  groups = np.asarray(groups)
  out = np.zeros(len(groups), bool)
  if people is not None:
    people = np.asarray(people)
    ids = np.unique(people)
    if len(ids) >= 2:
      k = min(SELECT_EVERY, len(ids))
      return np.isin(people, ids[k - 1::k])
  for g in np.unique(groups):
    rows = np.flatnonzero(groups == g)
    out[rows[SELECT_EVERY - 1::SELECT_EVERY]] = True
  return out


def _classifier(kind: str, c: float, standardize: bool, seed: int):
  from sklearn.linear_model import LogisticRegression
  from sklearn.svm import LinearSVC
  if kind == "logistic":
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
  elif kind == "svm":  # one-vs-rest, one classifier per class (the triplet VAE paper's SVM)
    model = LinearSVC(C=c, max_iter=20000, random_state=seed)
  else:
    raise ValueError(f"probe kind must be 'logistic' or 'svm'; got {kind!r}")
  return make_pipeline(StandardScaler(), model) if standardize else make_pipeline(model)


def _xy(pair, labelled=True):
  x, y = pair
  x, y = np.asarray(x, np.float64).reshape(len(x), -1), np.asarray(y)
  keep = y >= 0 if labelled else np.ones(len(y), bool)
  return x[keep], y[keep]


def fit_linear_classifier(fit, select=None, *, people=None, kind: str = "logistic",
                          standardize: bool = True, grid=C_GRID, seed: int = 0):
  """(fitted sklearn pipeline, chosen C) of a linear classifier of fit = (x [N, d], labels [N]);
  C is the grid value with the best accuracy on `select`, or without it on select_rows(labels,
  people) of fit (people: the identity of each fit row, when known), ties to the smaller C (the
  stronger regularisation); the model is then refitted on all of `fit`. Rows with label < 0 are
  dropped. None when fit has fewer than two classes."""
  (x, y), keep = _xy(fit), np.asarray(fit[1]) >= 0
  if len(np.unique(y)) < 2:
    return None, float("nan")
  if select is None:
    sel = select_rows(y, None if people is None else np.asarray(people)[keep])
    (xf, yf), (xs, ys) = (x[~sel], y[~sel]), (x[sel], y[sel])
  else:
    (xf, yf), (xs, ys) = (x, y), _xy(select)
  best_c = grid[0] if len(grid) == 1 else None
  if best_c is None and (len(np.unique(yf)) < 2 or len(ys) == 0):
    best_c = 1.0  # too few rows to choose from: sklearn's default
  if best_c is None:
    acc = [np.mean(_fit_quietly(_classifier(kind, c, standardize, seed), xf, yf).predict(xs) == ys)
           for c in grid]
    best_c = grid[int(np.argmax(acc))]  # argmax: the first (smallest C) of ties
  return _fit_quietly(_classifier(kind, best_c, standardize, seed), x, y), float(best_c)


def linear_classifier(fit, score, select=None, *, people=None, kind: str = "logistic",
                      standardize: bool = True, grid=C_GRID, seed: int = 0) -> dict:
  """A linear classifier fitted on `fit`, C chosen on `select` or on the selection rows of `fit`
  (whole people when `people` gives fit's identities: fit_linear_classifier), scored on
  score = (x, labels): {'accuracy', 'per_class': {class: recall}, 'mean_recall', 'C'}; rows with
  label < 0 dropped; NaNs when fit has fewer than two classes or score no labelled row."""
  model, c = fit_linear_classifier(fit, select, people=people, kind=kind, standardize=standardize,
                                   grid=grid, seed=seed)
  xs, ys = _xy(score)
  classes = np.unique(_xy(fit)[1])
  if model is None or len(ys) == 0:
    return {"accuracy": float("nan"), "per_class": {int(k): float("nan") for k in classes},
            "mean_recall": float("nan"), "C": c}
  pred = model.predict(xs)
  per_class = {int(k): float(np.mean(pred[ys == k] == k)) if np.any(ys == k) else float("nan")
               for k in classes}
  return {"accuracy": float(np.mean(pred == ys)), "per_class": per_class,
          "mean_recall": float(np.nanmean(list(per_class.values()))), "C": c}


def ridge_r2(fit, score, select=None, *, people=None, grid=ALPHA_GRID) -> dict:
  """R^2 on `score` of a ridge regression per target column on standardised features (scaler and
  model fitted on `fit`), its penalty chosen per column by R^2 on `select` (or on
  select_rows(people=people) of fit: whole people when fit's identities are given). fit, score,
  select: (x [N, d], targets [N, T]); rows with a
  non-finite target are dropped per column. {'r2': [T], 'mean': mean over scored columns,
  'alpha': [T]}; a column with fewer than 2 rows or no variance on a side is NaN."""
  from sklearn.linear_model import Ridge
  from sklearn.metrics import r2_score
  (xf, tf), (xs, ts) = ((np.asarray(x, np.float64).reshape(len(x), -1),
                         np.asarray(t, np.float64).reshape(len(t), -1)) for x, t in (fit, score))
  refit = (xf, tf)  # the chosen penalty's model is fitted on every fit row
  if select is None:
    sel = select_rows(np.zeros(len(xf)), people)
    (xf, tf), (xv, tv) = (xf[~sel], tf[~sel]), (xf[sel], tf[sel])
  else:
    xv, tv = (np.asarray(a, np.float64).reshape(len(a), -1) for a in select)
  model = lambda a: make_pipeline(StandardScaler(), Ridge(alpha=a))
  r2, alphas = [], []
  for j in range(tf.shape[1]):
    f, v, s, rf = (np.isfinite(t[:, j]) for t in (tf, tv, ts, refit[1]))
    if f.sum() < 2 or s.sum() < 2 or np.var(ts[s, j]) == 0:
      r2.append(float("nan")), alphas.append(float("nan"))
      continue
    if len(grid) == 1:
      a = grid[0]
    elif v.sum() >= 2 and np.var(tv[v, j]) > 0:
      on_select = [r2_score(tv[v, j], model(a).fit(xf[f], tf[f, j]).predict(xv[v])) for a in grid]
      a = grid[int(np.argmax(on_select))]
    else:
      a = 1.0  # nothing to choose on: sklearn's default
    pred = model(a).fit(refit[0][rf], refit[1][rf, j]).predict(xs[s])
    r2.append(float(r2_score(ts[s, j], pred))), alphas.append(float(a))
  finite = [v for v in r2 if np.isfinite(v)]
  return {"r2": r2, "mean": float(np.mean(finite)) if finite else float("nan"), "alpha": alphas}


def identity_leakage(x, identity, *, seed: int = 0) -> dict:
  """How much identity a representation holds: a logistic identity classifier over one set of
  faces, fitted on alternate faces of each person (the 1st, 3rd, ...), scored on the others, C
  chosen on every SELECT_EVERY-th fitting face of each person. {'accuracy', 'chance' (1 over the
  people), 'C'}; NaN with fewer than two people."""
  identity = np.asarray(identity)
  fit = np.zeros(len(identity), bool)
  for p in np.unique(identity):
    fit[np.flatnonzero(identity == p)[::2]] = True
  ids = np.unique(identity, return_inverse=True)[1]
  x = np.asarray(x, np.float64).reshape(len(x), -1)
  r = linear_classifier((x[fit], ids[fit]), (x[~fit], ids[~fit]), seed=seed)
  return {"accuracy": r["accuracy"], "chance": 1.0 / max(len(np.unique(identity)), 1), "C": r["C"]}


def reconstruction_mae(x, x_hat) -> dict:
  """{'mae', 'constant_mae'}: mean absolute error of images in [-1, 1] on the [0, 1] scale, and
  that of the best constant image (the set's per-pixel median, the L1 optimum of a constant): a
  model at the constant's level has learnt nothing of its input."""
  x = np.asarray(x, np.float64)
  mae = lambda a, b: float(np.mean(np.abs(a - b)) / 2.0)
  return {"mae": mae(x, np.asarray(x_hat, np.float64)),
          "constant_mae": mae(x, np.median(x, axis=0, keepdims=True))}


def linear_regression_mae(x_fit, y_fit, x_score, y_score) -> np.ndarray:
  """MAE per target of least-squares linear regressors (with intercept) fitted on x_fit: Rb-VAE's
  Table 1 regressors, unregularised, so nothing to choose."""
  from sklearn.linear_model import LinearRegression
  model = LinearRegression().fit(x_fit, y_fit)
  return np.mean(np.abs(model.predict(x_score) - y_score), axis=0)
