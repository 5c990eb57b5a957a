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


def va_regression(train_z, train_va, test_z, test_va, seed: int = 0, hidden=(32,),
                  max_iter: int = 300, alpha: float = 1e-3) -> dict:
  """Table 2: an MLPRegressor per axis (inputs and target standardised on the training split;
  predictions mapped back to VA units), scored on the held-out split.

  train_z / test_z: [N, d] for both axes, or a (z for valence, z for arousal) pair, as the paper
  regresses V from z_v and A from z_a. Rows with non-finite VA are dropped (per axis).
  Returns {axis: {"mse", "mae", "ev" (explained variance), "r2"}}, sklearn's definitions:
  mse = mean (y - y_hat)^2, mae = mean |y - y_hat|, ev = 1 - Var(y - y_hat) / Var(y),
  r2 = 1 - sum (y - y_hat)^2 / sum (y - mean y)^2.
  """
  tr_z, te_z = _per_axis(train_z), _per_axis(test_z)
  train_va, test_va = np.asarray(train_va, np.float64), np.asarray(test_va, np.float64)
  out = {}
  for i, axis in enumerate(AXES):
    tr, te = np.isfinite(train_va[:, i]), np.isfinite(test_va[:, i])
    model = TransformedTargetRegressor(make_pipeline(StandardScaler(), MLPRegressor(
        hidden_layer_sizes=tuple(hidden), alpha=alpha, max_iter=max_iter, random_state=seed)),
        transformer=StandardScaler())  # a unit-scale target keeps Adam's stopping tol meaningful
    _fit_quietly(model, np.asarray(tr_z[i])[tr], train_va[tr, i])
    y, y_hat = test_va[te, i], model.predict(np.asarray(te_z[i])[te])
    out[axis] = {"mse": float(mean_squared_error(y, y_hat)),
                 "mae": float(mean_absolute_error(y, y_hat)),
                 "ev": float(explained_variance_score(y, y_hat)),
                 "r2": float(r2_score(y, y_hat))}
  return out


def emotion_accuracy(train_z, train_labels, test_z, test_labels, seed: int = 0, hidden: int = 100,
                     max_iter: int = 300, early_stopping: bool = True) -> float:
  """Table 3: held-out accuracy of the paper's "simple one-layered MLP" on standardised inputs.

  "One-layered" is read as one hidden layer (ReLU, `hidden` units, Adam), i.e. sklearn's
  MLPClassifier defaults that the original notebook used (hidden 100, max_iter 300), plus early
  stopping on a 10 % validation split of the training rows (300 full epochs took minutes on a
  2-core CPU; early_stopping=False restores the notebook's fit). Rows with
  label -1 are dropped.
  """
  train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
  tr, te = train_labels >= 0, test_labels >= 0
  model = make_pipeline(StandardScaler(), MLPClassifier(
      hidden_layer_sizes=(int(hidden),), max_iter=max_iter, random_state=seed,
      early_stopping=early_stopping))
  _fit_quietly(model, np.asarray(train_z)[tr], train_labels[tr])
  return float(accuracy_score(test_labels[te], model.predict(np.asarray(test_z)[te])))
