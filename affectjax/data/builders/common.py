"""Helpers shared by the dataset modules: index files, identity splits, VA checks, landmark text files.

Index files (CSV, TSV, per-video text) are read through `read_text` / `read_table`: a file that is
unreadable, empty, binary, garbled or split by another delimiter is one DataError naming the file
and what was expected. A dataset read from one index file lets it propagate; a dataset of many
index files counts a bad file as one skipped row (reason bad_index_file) and goes on.
"""
from __future__ import annotations

import csv
import io
import os

import numpy as np

from affectjax.data.builders.base import split_by_identity
from affectjax.data.builders.report import Skip
from affectjax.errors import DataError

_DELIMITERS = {",": "comma", "\t": "tab", ";": "semicolon", "|": "vertical bar"}


def read_text(dataset: str, path: str, expected: str, encoding: str = "utf-8-sig") -> str:
  """The text of an index file; DataError if it cannot be read, is empty or is binary."""
  try:
    with open(path, "rb") as f:
      data = f.read()
  except OSError as e:
    raise DataError(f"{dataset}: {path} cannot be read ({e.strerror or e}); expected {expected}") from None
  if not data.strip():
    raise DataError(f"{dataset}: {path} is empty; expected {expected}")
  if b"\0" in data[:1 << 16]:  # text never holds NUL bytes; archives, images and spreadsheets do
    raise DataError(f"{dataset}: {path} is not a text file (binary data); expected {expected}")
  return data.decode(encoding, errors="replace")


def read_table(dataset: str, path: str, expected: str, *, min_columns: int, delimiter: str = ",",
               encoding: str = "utf-8-sig", quoting: int = csv.QUOTE_MINIMAL) -> list[list[str]]:
  """The non-blank rows of a delimited text file, as lists of strings.

  DataError (naming the file) if read_text refuses it, if the csv module cannot parse it, or if its
  first row has fewer than `min_columns` fields by `delimiter` but enough by another delimiter
  (a tab-separated copy of a comma-separated file).
  """
  text = read_text(dataset, path, expected, encoding)
  sep = _DELIMITERS[delimiter]
  try:
    rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                                  quoting=quoting) if any(c.strip() for c in r)]
  except csv.Error as e:
    raise DataError(f"{dataset}: {path} cannot be parsed as {sep}-separated text ({e}); "
                    f"expected {expected}") from None
  if not rows:
    raise DataError(f"{dataset}: {path} has no rows; expected {expected}")
  if len(rows[0]) < min_columns:
    first = text.lstrip().splitlines()[0]
    for other, name in _DELIMITERS.items():
      if other != delimiter and len(first.split(other)) >= min_columns:
        raise DataError(f"{dataset}: {path} is {name}-separated, not {sep}-separated; expected "
                        f"{expected}")
  return rows


def assign_splits(records: list, identity_of, options: dict, report=None) -> dict:
  """{train, test} lists with whole identities held out (options test_fraction, split_seed).

  With fewer than two identities the test split is empty; `report` gets a note saying so, for the
  error line of an empty split (base.check_splits)."""
  identities = [identity_of(r) for r in records]
  test_ids = split_by_identity(identities, options["test_fraction"], options["split_seed"])
  n_ids = len(set(identities))
  if report is not None and records and n_ids < 2:
    report.notes["test"].append(
        f"the test split holds out whole identities (test_fraction={options['test_fraction']}) "
        f"and the {len(records)} indexed rows belong to {n_ids} identity; at least 2 are needed")
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
