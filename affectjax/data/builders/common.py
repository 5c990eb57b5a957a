"""Helpers shared by the dataset modules: identity splits, VA checks, landmark text files."""
from __future__ import annotations

import os

import numpy as np

from affectjax.data.builders.base import split_by_identity
from affectjax.data.builders.report import Skip


def assign_splits(records: list, identity_of, options: dict) -> dict:
  """{train, test} lists with whole identities held out (options test_fraction, split_seed)."""
  test_ids = split_by_identity([identity_of(r) for r in records], options["test_fraction"],
                               options["split_seed"])
  return {"train": [r for r in records if identity_of(r) not in test_ids],
          "test": [r for r in records if identity_of(r) in test_ids]}


def identity_ids(names) -> dict:
  """Stable int ids for identity names (sorted)."""
  return {n: i for i, n in enumerate(sorted(set(names)))}


def check_va(values, scale: float) -> np.ndarray:
  """(valence, arousal) on [-scale, scale] -> float32 [2] in [-1, 1]; Skip on bad or out-of-range."""
  try:
    va = np.asarray([float(v) for v in values], np.float64)
  except (TypeError, ValueError):
    raise Skip("bad_va", repr(values)) from None
  if va.shape != (2,) or not np.all(np.isfinite(va)):
    raise Skip("bad_va", repr(values))
  if np.any(np.abs(va) > scale):
    raise Skip("va_out_of_range", str(va.tolist()))
  return (va / scale).astype(np.float32)


def read_points(path: str, k: int) -> np.ndarray:
  """k points from a text file: lines of 'x y z' / 'idx x y z' (.bnd) or a .pts block; [k, 3]."""
  if not os.path.isfile(path):
    raise Skip("missing_landmarks", path)
  rows = []
  with open(path, "r", errors="replace") as f:
    for line in f:
      parts = line.replace(",", " ").split()
      if not parts or parts[0] in ("{", "}") or ":" in line:
        continue  # .pts header lines: 'version: 1', 'n_points: 68', braces
      try:
        rows.append([float(p) for p in parts])
      except ValueError:
        raise Skip("bad_landmarks", f"{path}: {line.strip()[:40]!r}") from None
  if len(rows) != k or len({len(r) for r in rows}) != 1 or len(rows[0]) not in (2, 3, 4):
    raise Skip("bad_landmarks", f"{path}: {len(rows)} rows, expected {k}")
  a = np.asarray(rows, np.float32)[:, -3:] if len(rows[0]) >= 3 else np.asarray(rows, np.float32)
  out = np.zeros((k, 3), np.float32)
  out[:, :a.shape[1]] = a
  return out


def landmark_box(points: np.ndarray, margin: float) -> tuple:
  """A square (x, y, w, h) around 2-D points, enlarged by `margin` of its side on each side."""
  p = np.asarray(points)[:, :2]
  lo, hi = p.min(0), p.max(0)
  side = float((hi - lo).max()) * (1 + 2 * margin)
  cx, cy = (lo + hi) / 2
  side = max(side, 1.0)
  return (round(cx - side / 2), round(cy - side / 2), round(side), round(side))
