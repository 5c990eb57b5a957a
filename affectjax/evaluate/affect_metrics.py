"""Affect metrics on the host (numpy float64): CCC and RMSE for valence/arousal, macro F1 and
accuracy for emotions, expected calibration error with its reliability diagram
(dual_domain_fusion.md Tables 1-4 and its calibration claim).
"""
from __future__ import annotations

import os

import numpy as np
from sklearn.metrics import f1_score

__all__ = ["concordance_cc", "rmse", "macro_f1", "accuracy", "expected_calibration_error",
           "reliability_diagram", "plot_reliability"]


def _paired(x, y):
  """x, y as float64 [N, D] (a 1-D input is one column) without rows non-finite in either."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if x.shape != y.shape:
    raise ValueError(f"x and y must have the same shape; got {x.shape} and {y.shape}")
  x2, y2 = x.reshape(len(x), -1), y.reshape(len(y), -1)
  ok = np.all(np.isfinite(x2) & np.isfinite(y2), axis=1)
  return x2[ok], y2[ok], x.ndim == 1


def _ccc(x, y):
  mx, my = x.mean(0), y.mean(0)
  cov = np.mean((x - mx) * (y - my), axis=0)
  return 2 * cov / (x.var(0) + y.var(0) + np.square(mx - my))


def concordance_cc(x, y, batch_size: int | None = None):
  """Lin's concordance correlation 2 cov(x, y) / (var x + var y + (mean x - mean y)^2), over the
  whole set (population moments); per column for [N, D] inputs (e.g. valence, arousal).

  Rows non-finite in x or y are dropped. batch_size=B instead averages the CCC of consecutive
  batches of B rows (the original code's number, REFERENCE.md; not the paper's metric).
  Returns a float for 1-D inputs, else a [D] array.
  """
  x, y, flat = _paired(x, y)
  if batch_size is None:
    out = _ccc(x, y)
  else:
    out = np.mean([_ccc(x[i:i + batch_size], y[i:i + batch_size])
                   for i in range(0, len(x), batch_size)
                   if len(x[i:i + batch_size]) > 1], axis=0)  # a 1-row batch is 0 / 0
  return float(out[0]) if flat else out


def rmse(x, y):
  """Root mean squared error, per column for [N, D] inputs; rows non-finite in either dropped."""
  x, y, flat = _paired(x, y)
  out = np.sqrt(np.mean(np.square(x - y), axis=0))
  return float(out[0]) if flat else out


def macro_f1(labels, preds, num_classes: int | None = None) -> float:
  """Unweighted mean of per-class F1 (scikit-learn, zero_division=0); rows with label -1 dropped.

  num_classes fixes the classes averaged over (0..C-1), so a class never predicted nor present
  counts as F1 = 0 rather than being skipped; by default, the classes present in either.
  """
  labels, preds = np.asarray(labels).reshape(-1), np.asarray(preds).reshape(-1)
  keep = labels >= 0
  classes = None if num_classes is None else list(range(num_classes))
  return float(f1_score(labels[keep], preds[keep], labels=classes, average="macro",
                        zero_division=0))


def accuracy(labels, preds) -> float:
  """Fraction of correct predictions over rows with label >= 0."""
  labels, preds = np.asarray(labels).reshape(-1), np.asarray(preds).reshape(-1)
  keep = labels >= 0
  return float(np.mean(labels[keep] == preds[keep]))


def reliability_diagram(probs, labels, num_bins: int = 15) -> dict:
  """Per-bin calibration data: predictions binned by confidence max_k p_k into num_bins equal
  bins (lo, hi] of [0, 1].

  Returns {"edges" [B+1], "counts" [B], "accuracy" [B], "confidence" [B] (NaN in empty bins),
  "ece"}: ece = sum_b (n_b / N) |accuracy_b - confidence_b|. Rows with label -1 are dropped.
  """
  probs = np.asarray(probs, np.float64)
  labels = np.asarray(labels).reshape(-1)
  keep = labels >= 0
  probs, labels = probs[keep], labels[keep]
  conf, correct = probs.max(-1), (probs.argmax(-1) == labels).astype(np.float64)
  edges = np.linspace(0.0, 1.0, num_bins + 1)
  idx = np.clip(np.ceil(conf * num_bins).astype(int) - 1, 0, num_bins - 1)  # (lo, hi] bins
  counts = np.bincount(idx, minlength=num_bins).astype(np.int64)
  with np.errstate(invalid="ignore", divide="ignore"):
    acc = np.bincount(idx, correct, minlength=num_bins) / counts
    mean_conf = np.bincount(idx, conf, minlength=num_bins) / counts
  n = max(len(labels), 1)
  ece = float(np.sum(counts[counts > 0] / n * np.abs(acc - mean_conf)[counts > 0]))
  return {"edges": edges, "counts": counts, "accuracy": acc, "confidence": mean_conf, "ece": ece}


def expected_calibration_error(probs, labels, num_bins: int = 15) -> float:
  """ECE with num_bins equal-width confidence bins (reliability_diagram's "ece")."""
  return reliability_diagram(probs, labels, num_bins)["ece"]


def plot_reliability(path, probs, labels, num_bins: int = 15, title: str | None = None):
  """Writes a reliability-diagram PNG: per-bin accuracy bars against the diagonal, the gap to each
  bin's mean confidence shaded, ECE in each panel's title.

  probs: [N, C] for one model, or a dict name -> [N, C] for one panel per model (same labels).
  Returns path.
  """
  import matplotlib
  matplotlib.use("Agg")  # files only; never open a window
  import matplotlib.pyplot as plt

  panels = probs if isinstance(probs, dict) else {"": probs}
  fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
  for ax, (name, p) in zip(axes[0], panels.items()):
    d = reliability_diagram(p, labels, num_bins)
    lo, width = d["edges"][:-1], np.diff(d["edges"])
    filled = d["counts"] > 0
    ax.bar(lo[filled], d["accuracy"][filled], width=width[filled], align="edge",
           color="tab:blue", edgecolor="k", linewidth=0.5, label="accuracy")
    gap_lo = np.minimum(d["accuracy"], d["confidence"])[filled]
    ax.bar(lo[filled], np.abs(d["accuracy"] - d["confidence"])[filled], bottom=gap_lo,
           width=width[filled], align="edge", color="tab:red", alpha=0.3, label="gap")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", aspect="equal")
    ax.set_title(f"{name + ': ' if name else ''}ECE {100 * d['ece']:.2f} %")
    ax.legend(loc="upper left", fontsize=8)
  if title:
    fig.suptitle(title)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)
  return path
