"""LeVAsa latent-circumplex alignment (levasa.md Sec. 3.1, Table 1), on the host in numpy.

Two families of numbers:
- held-out, per-sample metrics (the default): continuous_alignment, discrete_alignment;
- "paper-metric" mode (REFERENCE.md, "Where the original implementations differ"):
  paper_metric_alignment reproduces the original notebook's Table 1 arithmetic exactly.
A readout is either a [N] prediction or a [N, d] latent chunk compared dimension by dimension with
the scalar target ("broadcast" readout, the original code's way of scoring a chunk).

Like for like (the default readout of Table 1): every model's chunk is read out by the same linear
map fitted on the training split (linear_readout, ridge on standardised inputs) and scored on
held-out identities; the Vanilla VAE's chunks are chosen on the training split (best_chunks with
readout='linear'). Discrete scores go through `normalised_probs`, one rule for every source
(heads trained with sigmoid BCE: sigma(l_k) / sum_j sigma(l_j); softmax heads and probes: their
probabilities), with the same floor; chance rows (`chance_*`) are closed forms of training
statistics.
"""
from __future__ import annotations

import itertools

import numpy as np
from scipy.special import expit, log_softmax, softmax

AXES = ("valence", "arousal")
PROB_FLOOR = 1e-3  # p <- (1 - eps) p + eps / K for every discrete readout: a CE capped at log(K / eps)


def _readout_errors(readout, target) -> np.ndarray:
  """Signed errors [N, d] of a [N] or [N, d] readout against a [N] target (broadcast over d)."""
  readout = np.asarray(readout, np.float64)
  target = np.asarray(target, np.float64).reshape(-1)
  if readout.ndim == 1:
    readout = readout[:, None]
  if readout.ndim != 2 or readout.shape[0] != target.shape[0]:
    raise ValueError(f"readout must be [N] or [N, d] with N = {target.shape[0]}; got {readout.shape}")
  return readout - target[:, None]


def broadcast_errors(chunk, target) -> dict:
  """MSE and MAE of every dimension of a [N, d] chunk against the scalar [N] target.

  mse = mean over N*d of (z_nj - t_n)^2, mae = mean of |z_nj - t_n|: the chunk is read out as if
  each of its dimensions were a prediction of the target (the original's "broadcast MSE").
  Rows with a non-finite target are dropped.
  """
  target = np.asarray(target, np.float64).reshape(-1)
  err = _readout_errors(chunk, target)[np.isfinite(target)]
  return {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err)))}


def continuous_alignment(pred_va, true_va) -> dict:
  """Table 1(a), held out and per sample: MSE and MAE per axis and combined.

  pred_va [N, 2] (or a (valence, arousal) pair of [N] / [N, d] readouts, scored by broadcast);
  true_va [N, 2]; rows with non-finite truth are dropped. mse_<axis> = mean (pred - true)^2,
  mae_<axis> = mean |pred - true|; *_combined is the SUM of the valence and arousal values, as the
  paper's table does (its combined column is V + A, e.g. 1.83 + 1.49 = 3.31 up to rounding).
  """
  true_va = np.asarray(true_va, np.float64)
  keep = np.all(np.isfinite(true_va), axis=1)
  readouts = _split_pred(pred_va)
  out = {"n": int(keep.sum())}
  for i, axis in enumerate(AXES):
    err = _readout_errors(readouts[i], true_va[:, i])[keep]
    out[f"mse_{axis}"] = float(np.mean(err**2)) if len(err) else float("nan")
    out[f"mae_{axis}"] = float(np.mean(np.abs(err))) if len(err) else float("nan")
    var = float(np.var(true_va[keep, i])) if len(err) else float("nan")
    # R^2 = 1 - MSE / Var(truth) (sklearn's r2_score for a [N] readout; held-out variance)
    out[f"r2_{axis}"] = 1.0 - out[f"mse_{axis}"] / var if var > 0 else float("nan")
  for m in ("mse", "mae"):
    out[f"{m}_combined"] = out[f"{m}_valence"] + out[f"{m}_arousal"]
  return out


def linear_readout(train_x, train_y, test_x, alpha: float = 1e-3) -> np.ndarray:
  """The like-for-like continuous readout: ridge regression of a scalar target on a representation.

  Inputs are standardised with the training rows' mean and std; w = argmin |y - b - X w|^2 +
  alpha * n * |w|^2 (closed form), fitted on training rows with a finite target and applied to
  every test row. Returns the [N_test] predictions. The same function reads out every model (and
  the pixel / factor ceilings), so identical representations get identical numbers.
  """
  x = np.asarray(train_x, np.float64).reshape(len(train_x), -1)
  xt = np.asarray(test_x, np.float64).reshape(len(test_x), -1)
  y = np.asarray(train_y, np.float64).reshape(-1)
  keep = np.isfinite(y)
  x, y = x[keep], y[keep]
  if len(y) == 0:
    raise ValueError("linear_readout: no training row has a finite target")
  mean, std = x.mean(0), x.std(0)
  std = np.where(std > 1e-8, std, 1.0)
  xs, xts = (x - mean) / std, (xt - mean) / std
  y0 = y.mean()
  gram = xs.T @ xs + alpha * len(y) * np.eye(xs.shape[1])
  w = np.linalg.solve(gram, xs.T @ (y - y0))
  return xts @ w + y0


def va_targets_to_classes(va, levels: int) -> np.ndarray:
  """Discrete VA classes round(levels * va) + levels in 0..2 levels ([N, 2] -> [N, 2]); -1 where
  the VA is unknown (NaN), so discrete_alignment drops those rows."""
  va = np.asarray(va, np.float64)
  cls = np.clip(np.round(levels * np.nan_to_num(va)), -levels, levels).astype(np.int64) + levels
  return np.where(np.isfinite(va), cls, -1)


def normalised_probs(scores, kind: str) -> np.ndarray:
  """[N, K] probabilities from a discrete readout, scored as it was trained, then floored.

  kind: 'sigmoid' (heads trained with per-class sigmoid BCE, LeVAsa Eq. 2: p_k = sigma(l_k) /
  sum_j sigma(l_j)), 'softmax' (heads trained with softmax CE) or 'probs' (already a distribution,
  e.g. a probe's predict_proba). Every kind is mixed with the uniform distribution,
  p <- (1 - PROB_FLOOR) p + PROB_FLOOR / K, so that no source gets an infinite CE.
  """
  x = np.asarray(scores, np.float64)
  if kind == "sigmoid":
    s = expit(x)
    p = s / s.sum(-1, keepdims=True)
  elif kind == "softmax":
    p = softmax(x, -1)
  elif kind == "probs":
    p = x / x.sum(-1, keepdims=True)
  else:
    raise ValueError(f"kind must be 'sigmoid', 'softmax' or 'probs'; got {kind!r}")
  return (1.0 - PROB_FLOOR) * p + PROB_FLOOR / x.shape[-1]


def expected_level(probs, levels: int) -> np.ndarray:
  """The continuous VA a discrete readout implies: sum_k p_k (k - levels) / levels."""
  grid = np.arange(-levels, levels + 1, dtype=np.float64) / levels
  return np.asarray(probs, np.float64) @ grid


def logistic_probs(train_x, train_cls, test_x, num_classes: int, seed: int = 0) -> np.ndarray:
  """The like-for-like discrete readout: probes.fit_linear_classifier (multinomial logistic on
  standardised inputs, C chosen on a quarter of the training rows per class), fitted on training
  rows with a class >= 0; [N_test, num_classes] probabilities (classes never seen in training get
  0 before normalised_probs' floor)."""
  from affectjax.evaluate import probes
  x = np.asarray(train_x, np.float64).reshape(len(train_x), -1)
  t = np.asarray(train_cls).reshape(-1)
  probs = np.zeros((len(test_x), num_classes))
  classes = np.unique(t[t >= 0])
  if len(classes) == 1:  # one class seen: the probe predicts it with certainty
    probs[:, classes[0]] = 1.0
    return probs
  probe, _ = probes.fit_linear_classifier((x, t), seed=seed)
  probs[:, probe.classes_] = probe.predict_proba(np.asarray(test_x, np.float64).reshape(len(test_x), -1))
  return probs


def chance_va(train_va, n_test: int) -> np.ndarray:
  """Chance for Table 1(a) and Table 2: predict the training mean of each axis ([N_test, 2])."""
  return np.broadcast_to(np.nanmean(np.asarray(train_va, np.float64), 0), (n_test, 2)).copy()


def chance_probs(train_cls, num_classes: int, n_test: int) -> np.ndarray:
  """Chance for Table 1(b): the training class frequencies n_k / n for every test row."""
  t = np.asarray(train_cls).reshape(-1)
  counts = np.bincount(t[t >= 0], minlength=num_classes).astype(np.float64)
  return np.broadcast_to(counts / counts.sum(), (n_test, num_classes)).copy()


def _split_pred(pred):
  """[N, 2] predictions, or a (valence readout, arousal readout) pair, as a pair."""
  if isinstance(pred, (tuple, list)):
    if len(pred) != 2:
      raise ValueError(f"expected a (valence, arousal) pair of readouts; got {len(pred)} items")
    return pred
  pred = np.asarray(pred)
  if pred.ndim != 2 or pred.shape[1] != 2:
    raise ValueError(f"pred_va must be [N, 2] or a (valence, arousal) pair; got shape {pred.shape}")
  return pred[:, 0], pred[:, 1]


def discrete_alignment(logits_or_probs, target_classes, kind: str = "auto") -> float:
  """Table 1(b): mean cross-entropy in nats, -mean log p(target | x), over rows with a target >= 0.

  kind: 'logits', 'probs', or 'auto' (probs when every row is non-negative and sums to 1).
  Targets are class indices 0..K-1 (discrete VA: use ellipses.va_to_class_index first).
  For two heads (valence and arousal) call once per head; the paper does not say whether its
  single number sums or averages them.
  """
  x = np.asarray(logits_or_probs, np.float64)
  t = np.asarray(target_classes).reshape(-1).astype(np.int64)
  if x.ndim != 2 or x.shape[0] != t.shape[0]:
    raise ValueError(f"expected [N, K] scores for N = {t.shape[0]} targets; got {x.shape}")
  if np.any(t >= x.shape[1]):
    raise ValueError(f"targets must be class indices below K = {x.shape[1]}; got max {t.max()}")
  if kind == "auto":
    kind = "probs" if (x.min() >= 0 and np.allclose(x.sum(1), 1.0, atol=1e-5)) else "logits"
  if kind == "logits":
    logp = log_softmax(x, axis=1)
  elif kind == "probs":
    logp = np.log(np.clip(x, 1e-12, None))  # a zero probability would give an infinite CE
  else:
    raise ValueError(f"kind must be 'auto', 'logits' or 'probs'; got {kind!r}")
  keep = t >= 0
  return float(-np.mean(logp[np.nonzero(keep)[0], t[keep]]))


def best_chunks(chunks: dict, true_va, metric: str = "mse", readout: str = "broadcast"):
  """The Vanilla VAE's z_v and z_a by the paper's heuristic (Sec. 3.1): the two distinct chunks
  that align best with valence and arousal. Pass the TRAINING split's chunks and VA: choosing on
  the held-out split would let the test labels pick the readout.

  readout='broadcast': each chunk scored by broadcast_errors against each axis (the original
  code's raw-chunk comparison); readout='linear': by the in-sample error of linear_readout
  (the readout Table 1(a) scores, fitted and scored on the rows given). The pair (v, a), v != a,
  minimising err_v[v] + err_a[a] is returned (ties: first in the dict's order). Returns
  (valence_chunk_name, arousal_chunk_name, errors) with errors[name][axis] = {"mse", "mae"}.
  """
  if len(chunks) < 2:
    raise ValueError(f"best_chunks needs at least two chunks; got {list(chunks)}")
  if readout not in ("broadcast", "linear"):
    raise ValueError(f"readout must be 'broadcast' or 'linear'; got {readout!r}")
  true_va = np.asarray(true_va, np.float64)

  def score(z, t):
    if readout == "broadcast":
      return broadcast_errors(z, t)
    keep = np.isfinite(t)
    err = linear_readout(np.asarray(z)[keep], t[keep], np.asarray(z)[keep]) - t[keep]
    return {"mse": float(np.mean(err**2)), "mae": float(np.mean(np.abs(err)))}

  errors = {name: {axis: score(z, true_va[:, i]) for i, axis in enumerate(AXES)}
            for name, z in chunks.items()}
  total = lambda pair: errors[pair[0]]["valence"][metric] + errors[pair[1]]["arousal"][metric]
  v_name, a_name = min(itertools.permutations(chunks, 2), key=total)
  return v_name, a_name, errors


def paper_metric_alignment(pred, true_va, key_or_seed, num_batches: int = 1001,
                           batch_size: int = 2) -> dict:
  """Table 1(a) exactly as the original notebook computes it (REFERENCE.md; "paper-metric" mode).

  Batches of `batch_size` rows are drawn as a shuffled DataLoader with drop_last would (without
  replacement within an epoch, reshuffled per epoch); for each of the first `num_batches` batches:
    mse_b = mean over the batch (and chunk dims) of (readout - target)^2,
    mae_b = | mean over the batch (and chunk dims) of (readout - target) |   (signed, then abs);
  each metric is sum_b / ((num_batches - 1) * batch_size) = sum / 2000 for the defaults: a sum
  of 1,001 batch means divided by 2,000, i.e. about HALF the mean squared error, and the "MAE" is
  not a mean absolute error (errors of opposite sign cancel within a batch).
  pred: [N, 2] or a (valence, arousal) pair of [N] / [N, d] readouts (the original scored the raw
  32-dim chunks by broadcast); combined = valence + arousal. The original also measured on
  training images; which rows are passed here is the caller's choice.
  """
  true_va = np.asarray(true_va, np.float64)
  readouts = _split_pred(pred)
  errs = [_readout_errors(readouts[i], true_va[:, i]) for i in range(2)]
  if num_batches < 2:
    raise ValueError(f"num_batches must be >= 2 (the divisor is num_batches - 1); got {num_batches}")
  n = true_va.shape[0]
  per_epoch = n // batch_size
  if per_epoch == 0:
    raise ValueError(f"need at least batch_size = {batch_size} rows; got {n}")
  rng = np.random.default_rng(_seed(key_or_seed))
  order = np.concatenate([rng.permutation(n)[:per_epoch * batch_size]
                          for _ in range(-(-num_batches // per_epoch))])
  batches = order[:num_batches * batch_size].reshape(num_batches, batch_size)
  denom = (num_batches - 1) * batch_size  # the notebook's iteration * batch_size after break
  out = {}
  for axis, err in zip(AXES, errs):
    b = err[batches]  # [num_batches, batch_size, d]
    out[f"mse_{axis}"] = float(np.sum(np.mean(b**2, axis=(1, 2))) / denom)
    out[f"mae_{axis}"] = float(np.sum(np.abs(np.mean(b, axis=(1, 2)))) / denom)
  for m in ("mse", "mae"):
    out[f"{m}_combined"] = out[f"{m}_valence"] + out[f"{m}_arousal"]
  return out


def _seed(key_or_seed):
  """A numpy seed from an int or a jax PRNG key (new-style or raw uint32 key data)."""
  if isinstance(key_or_seed, (int, np.integer)):
    return int(key_or_seed)
  import jax
  data = key_or_seed
  if jax.dtypes.issubdtype(getattr(data, "dtype", None), jax.dtypes.prng_key):
    data = jax.random.key_data(data)
  return [int(w) for w in np.asarray(data).ravel()]  # SeedSequence takes the words as entropy


def markdown_table(header, rows, floatfmt: str = "{:.3f}") -> str:
  """A GitHub markdown table; floats formatted with floatfmt, everything else with str()."""
  fmt = lambda x: floatfmt.format(x) if isinstance(x, (float, np.floating)) else str(x)
  lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
  for row in rows:
    if len(row) != len(header):
      raise ValueError(f"row {row!r} has {len(row)} cells; the header has {len(header)}")
    lines.append("| " + " | ".join(fmt(x) for x in row) + " |")
  return "\n".join(lines) + "\n"
