"""BU-3DFE (Yin et al., 2006): 100 subjects, 6 emotions x 4 intensities + neutral, 83 3D landmarks.

Files <Subject>/<Subject>_<EE><II><RR>_F3D.bnd (e.g. F0001/F0001_AN01WH_F3D.bnd): 83 lines of
'<vertex index> x y z'. EE in NE, HA, SA, SU, FE, DI, AN; II the intensity 01-04 (00 neutral),
kept as factors[0]. Every example carries its subject's neutral landmarks (M1/M2 of the triplet
VAE). Landmarks only: the source's image is a [1, 1, 3] zero placeholder. Whole subjects are
held out for test (the paper splits person-wise).
"""
from __future__ import annotations

import os
import re

from affectjax.data.builders import common
from affectjax.data.builders.report import MissingDataError, Skip

NAME = "bu3dfe"
HAS_IMAGES = False
HAS_NEUTRAL = True
HAS_LABELS_AND_VA = False
HAS_LABELS, HAS_VA = True, False  # posed labels and their intensity (sources.dataset_info)
# BU-3DFE expression codes -> affectjax EMOTIONS ids.
LABELS = {"NE": 0, "HA": 1, "SA": 2, "SU": 3, "FE": 4, "DI": 5, "AN": 6}
PATTERN = re.compile(r"^(?P<subject>[FM]\d{4})_(?P<expr>[A-Z]{2})(?P<level>\d{2})(?P<race>[A-Z]{2})_F3D\.bnd$")
OPTIONS = {"require_neutral": True, "test_fraction": 0.2, "split_seed": 0}
LAYOUT_HINT = "<Subject>/<Subject>_<EE><II><RR>_F3D.bnd, e.g. F0001/F0001_AN01WH_F3D.bnd"
MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
Request BU-3DFE (https://www.cs.binghamton.edu/~lijun/Research/3DFE/3DFE_Analysis.html) and place
in manual_dir: {LAYOUT_HINT}
"""


def num_landmarks(options) -> int:
  return 83


def factor_names(options) -> tuple:
  return ("intensity",)


def _bnd_files(manual_dir):
  for root, _, files in os.walk(manual_dir):
    for name in sorted(files):
      if name.lower().endswith(".bnd"):
        yield root, name


def check_layout(manual_dir, options) -> None:
  if not any(True for _ in _bnd_files(manual_dir)):
    raise MissingDataError(f"bu3dfe: no .bnd files under {manual_dir}; expected {LAYOUT_HINT} "
                           "(see docs/datasets.md, section bu3dfe)")


def index(manual_dir, options, report) -> dict:
  records, neutral = [], {}
  for root, name in sorted(_bnd_files(manual_dir)):
    m = PATTERN.match(name)
    if not m:
      report.skip("all", "unrecognised_file_name", name)
      continue
    if m["expr"] not in LABELS:
      report.skip("all", "label_not_an_emotion", name)
      continue
    path = os.path.join(root, name)
    if m["expr"] == "NE":
      try:
        neutral[m["subject"]] = common.read_points(path, 83)
      except Skip as e:
        report.skip("all", f"neutral_{e.reason}", path)
    records.append((path, m["subject"], LABELS[m["expr"]], int(m["level"])))
  ids = common.identity_ids(r[1] for r in records)
  records = [r + (ids[r[1]], neutral.get(r[1])) for r in records]
  return common.assign_splits(records, lambda r: r[1], options, report)


def load(record, options, report, split) -> dict:
  path, subject, label, level, identity, neutral = record
  if neutral is None and options["require_neutral"]:
    raise Skip("no_neutral", subject)
  if label >= options["num_classes"]:
    raise Skip("label_out_of_range", str(label))
  ex = {"landmarks": common.read_points(path, 83), "label": label, "identity": identity,
        "factors": [float(level)], "source": os.path.basename(path)}
  if neutral is not None:
    ex["neutral_landmarks"] = neutral
  return ex
