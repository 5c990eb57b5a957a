"""LeVAsa probes with scikit-learn: VA regressive power (levasa.md Table 2) and categorical emotion
predictive power (Table 3), fitted on a training split and scored on a held-out split.

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


# ---------------------------------------------------------------- linear probes (Rb-VAE Table 1)

def linear_regression_mae(x_fit, y_fit, x_score, y_score) -> np.ndarray:
  """MAE per target of least-squares linear regressors (with intercept) fitted on x_fit."""
  from sklearn.linear_model import LinearRegression
  model = LinearRegression().fit(x_fit, y_fit)
  return np.mean(np.abs(model.predict(x_score) - y_score), axis=0)


def linear_classifier_recall(x_fit, y_fit, x_score, y_score, classes, seed: int = 0) -> dict:
  """Per-class accuracy (recall of each class in `classes`) of a multinomial logistic regression
  on standardised features, and the predictions' overall accuracy."""
  from sklearn.linear_model import LogisticRegression
  model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
  model.fit(x_fit, y_fit)
  pred = model.predict(x_score)
  out = {int(c): float(np.mean(pred[y_score == c] == c)) if np.any(y_score == c) else float("nan")
         for c in classes}
  return {"per_class": out, "accuracy": float(np.mean(pred == y_score))}
