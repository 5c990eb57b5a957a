"""BP4D-Spontaneous (Zhang et al., 2014): 41 subjects x 8 tasks, 3D landmark sequences with AUs.

Per-frame AU occurrence: AUCoding/AU_OCC/<Subject>_<Task>.csv, a header row (frame column, then
AU numbers) and one row per coded frame with 0 (absent), 1 (present) or 9 (unknown -> NaN).
Per-frame 83 3D landmarks: 3DFeatures/<Subject>/<Task>/<frame>.bnd[plus] or
3DFeatures/<Subject>_<Task>_<frame>.bnd[plus] (lines 'x y z' or 'index x y z'). Only AU-coded
frames are kept; `factors` holds the AUs of option `aus`. BP4D has no neutral sequences: as in
the triplet-VAE paper (Sec. IV-A), a subject's neutral face is the medoid of its frames coded with
every AU absent. Landmarks only (zero placeholder image); whole subjects are held out for test.
"""
from __future__ import annotations

import os
import re

import numpy as np

from affectjax.data.builders import common
from affectjax.data.builders.report import MissingDataError, Skip
from affectjax.errors import DataError

NAME = "bp4d"
HAS_IMAGES = False
HAS_NEUTRAL = True
HAS_LABELS_AND_VA = False
HAS_LABELS, HAS_VA = False, False  # AU occurrences only (sources.dataset_info)
FILE = re.compile(r"(?P<subject>[FM]\d{3})[_/\\](?P<task>T\d+)[_/\\](?P<frame>\d+)\.bnd(plus)?$", re.I)
OPTIONS = {"aus": (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24), "require_neutral": True,
           "test_fraction": 0.2, "split_seed": 0}
LAYOUT_HINT = ("AUCoding/AU_OCC/<Subject>_<Task>.csv and 3DFeatures/<Subject>/<Task>/<frame>.bndplus "
               "(or 3DFeatures/<Subject>_<Task>_<frame>.bndplus)")
MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
Request BP4D-Spontaneous (https://www.cs.binghamton.edu/~lijun/Research/3DFE/3DFE_Analysis.html)
and place in manual_dir: {LAYOUT_HINT}
"""


def num_landmarks(options) -> int:
  return 83


def factor_names(options) -> tuple:
  return tuple(f"AU{a}" for a in options.get("aus", OPTIONS["aus"]))


def check_layout(manual_dir, options) -> None:
  for sub in (os.path.join("AUCoding", "AU_OCC"), "3DFeatures"):
    if not os.path.isdir(os.path.join(manual_dir, sub)):
      raise MissingDataError(f"bp4d: {os.path.join(manual_dir, sub)} does not exist; expected "
                             f"{LAYOUT_HINT} (see docs/datasets.md, section bp4d)")


def _landmark_files(manual_dir) -> dict:
  base = os.path.join(manual_dir, "3DFeatures")
  out = {}
  for root, _, files in os.walk(base):
    for name in files:
      m = FILE.search(os.path.relpath(os.path.join(root, name), base).replace(os.sep, "/"))
      if m:
        out[(m["subject"].upper(), m["task"].upper(), int(m["frame"]))] = os.path.join(root, name)
  return out


def _au_rows(path, aus, report):
  rows = common.read_table(NAME, path, "a header row (frame, then AU numbers) and one row of 0/1/9 "
                           "per coded frame, comma-separated", min_columns=2)
  header = [h.strip() for h in rows[0]]
  col = {int(float(h)): i for i, h in enumerate(header[1:], 1) if h.replace(".", "").isdigit()}
  for r in rows[1:]:
    try:
      frame = int(float(r[0]))
      values = [float(r[col[a]]) if a in col else np.nan for a in aus]
    except (ValueError, IndexError):
      yield None, None
      continue
    yield frame, values


def index(manual_dir, options, report) -> dict:
  aus = tuple(options["aus"])
  files = _landmark_files(manual_dir)
  records, calm = [], {}
  au_dir = os.path.join(manual_dir, "AUCoding", "AU_OCC")
  for name in sorted(os.listdir(au_dir)):
    m = re.match(r"^([FM]\d{3})_(T\d+)\.csv$", name, re.I)
    if not m:
      continue
    subject, task = m[1].upper(), m[2].upper()
    try:
      coded = list(_au_rows(os.path.join(au_dir, name), aus, report))
    except DataError as e:  # one bad sequence among many: counted, the others are read
      report.skip("all", "bad_index_file", str(e))
      continue
    for frame, values in coded:
      records.append((subject, task, frame, values, files.get((subject, task, frame))))
      if values is not None and all(v == 0 for v in values) and records[-1][4]:
        calm.setdefault(subject, []).append(records[-1][4])
  neutral = {s: _medoid(paths, report) for s, paths in calm.items()}
  ids = common.identity_ids(r[0] for r in records)
  records = [r + (ids[r[0]], neutral.get(r[0])) for r in records]
  return common.assign_splits(records, lambda r: r[0], options, report)


def _medoid(paths, report):
  # The frame with the least summed distance to the other all-AUs-absent frames (paper, Sec. IV-A).
  shapes = []
  for p in paths:
    try:
      shapes.append(common.read_points(p, 83))
    except Skip:
      pass
  if not shapes:
    return None
  x = np.stack(shapes).reshape(len(shapes), -1)
  d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)).sum(1)
  return shapes[int(np.argmin(d))]


def load(record, options, report, split) -> dict:
  subject, task, frame, values, path, identity, neutral = record
  if values is None:
    raise Skip("malformed_row", f"{subject}_{task}")
  au = np.asarray(values, np.float32)
  if not np.all(np.isin(au[np.isfinite(au)], (0, 1, 9))):
    raise Skip("bad_au_value", f"{subject}_{task} frame {frame}: {values}")
  au[au == 9] = np.nan  # 9 = unknown
  if path is None:
    raise Skip("missing_landmarks", f"{subject}_{task} frame {frame}")
  if neutral is None and options["require_neutral"]:
    raise Skip("no_neutral", subject)
  ex = {"landmarks": common.read_points(path, 83), "identity": identity, "factors": au,
        "source": f"{subject}_{task}_{frame:04d}"}
  if neutral is not None:
    ex["neutral_landmarks"] = neutral
  return ex
