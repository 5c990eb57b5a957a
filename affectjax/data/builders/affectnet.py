"""AffectNet (Mollahosseini et al., 2017): manually annotated faces with emotion and valence/arousal.

Splits: train = training.csv, test = validation.csv (the official test set is not released).
Each kept row is cropped by its face box (padded with black where the box runs past the image),
resized to image_size, and keeps its 68 landmarks in the crop's pixel coordinates (z = 0).
"""
from __future__ import annotations

import os

import numpy as np

from affectjax.data.builders import common, images
from affectjax.data.builders.report import MissingDataError, Skip
from affectjax.errors import DataError

NAME = "affectnet"
HAS_IMAGES = True
HAS_LABELS_AND_VA = True
COLUMNS = ("subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
           "facial_landmarks", "expression", "valence", "arousal")
REQUIRED = COLUMNS[:5] + ("expression",)
# Expression ids 8-10 of the CSVs, each its own skip reason.
EXTRA_CLASSES = {8: "class_none", 9: "class_uncertain", 10: "class_no_face"}
OPTIONS = {
    "encoding": "png",  # stored crops: png (lossless) or jpeg (smaller, faster to decode)
    "keep_none": False,  # keep class 8 (None) rows as label -1 with their (real) VA
    "require_va": True,  # drop rows whose VA is the -2 sentinel; False keeps them with VA = NaN
    "require_landmarks": True,  # drop rows with a malformed landmark string; False keeps NaN landmarks
}
LAYOUT_HINT = ("Manually_Annotated_Images/<subdir>/<file> and training.csv, validation.csv next to it "
               "or in Manually_Annotated_file_lists/")
MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
Request AffectNet from its authors (http://mohammadmahoor.com/affectnet/) and place in manual_dir:
  {LAYOUT_HINT}
"""


def num_landmarks(options) -> int:
  return 68


def factor_names(options) -> tuple:
  return ()


def _find(manual_dir: str, *candidates: str) -> str | None:
  for c in candidates:
    p = os.path.join(manual_dir, c)
    if os.path.exists(p):
      return p
  return None


def _paths(manual_dir: str) -> dict:
  found = {
      "images": _find(manual_dir, "Manually_Annotated_Images",
                      os.path.join("Manually_Annotated", "Manually_Annotated_Images")),
      "train": _find(manual_dir, "training.csv", os.path.join("Manually_Annotated_file_lists", "training.csv")),
      "test": _find(manual_dir, "validation.csv",
                    os.path.join("Manually_Annotated_file_lists", "validation.csv")),
  }
  names = {"images": "the Manually_Annotated_Images/ folder", "train": "training.csv",
           "test": "validation.csv"}
  for key, path in found.items():
    if path is None:
      raise MissingDataError(f"affectnet: {names[key]} not found under {manual_dir}; expected "
                             f"{LAYOUT_HINT} (see docs/datasets.md, section affectnet)")
  return found


def check_layout(manual_dir: str, options) -> None:
  _paths(manual_dir)


EXPECTED_CSV = (f"comma-separated rows of {','.join(COLUMNS)} (header optional; "
                "valence, arousal and facial_landmarks may be absent)")


def read_csv(path: str):
  """(column -> index map, data rows, has header). The header is detected, not assumed: some
  validation.csv copies have none, others name the first column '#subDirectory_filePath'.
  An empty, binary, garbled or tab-separated file, or a header without a required column, is
  one DataError naming the file (common.read_table)."""
  rows = common.read_table(NAME, path, EXPECTED_CSV, min_columns=len(REQUIRED))
  if rows[0] and rows[0][0].strip().lstrip("#").strip().lower() == COLUMNS[0].lower():
    header = [c.strip().lstrip("#").strip() for c in rows[0]]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
      raise DataError(f"{NAME}: {path}: its header lacks column(s) {', '.join(missing)}; "
                      f"expected {EXPECTED_CSV}")
    if len(rows) == 1:
      raise DataError(f"{NAME}: {path} has a header but no rows; expected {EXPECTED_CSV}")
    return {name: i for i, name in enumerate(header)}, rows[1:], True
  return {name: i for i, name in enumerate(COLUMNS)}, rows, False


def _float(text: str, reason: str) -> float:
  try:
    return float(text)
  except (TypeError, ValueError):
    raise Skip(reason, repr(text)) from None


def parse_landmarks(text: str) -> np.ndarray:
  """'x1;y1;x2;y2;...' (136 numbers) -> [68, 2]; Skip('bad_landmarks') otherwise."""
  parts = [p for p in text.replace(",", ";").split(";") if p.strip()]
  try:
    values = np.asarray([float(p) for p in parts], np.float32)
  except ValueError:
    raise Skip("bad_landmarks", repr(text[:40])) from None
  if values.size != 136 or not np.all(np.isfinite(values)):
    raise Skip("bad_landmarks", f"{values.size} numbers, expected 136")
  return values.reshape(68, 2)


def parse_row(row, cols: dict, options: dict):
  """One CSV row -> record (path, box, landmarks, label, va); Skip(reason) for a bad row."""
  if len(row) < len(cols):
    raise Skip("malformed_row", f"{len(row)} fields, expected {len(cols)}")
  get = lambda name: row[cols[name]].strip() if name in cols else None
  try:
    label = int(float(get("expression")))
  except ValueError:
    raise Skip("bad_label", repr(get("expression"))) from None
  if not 0 <= label <= 10:
    raise Skip("label_out_of_range", str(label))
  if label in EXTRA_CLASSES and not (label == 8 and options["keep_none"]):
    raise Skip(EXTRA_CLASSES[label])
  if label == 7 and options["num_classes"] == 7:
    raise Skip("class_contempt")  # 7-class setups drop contempt
  label = -1 if label == 8 else label
  va = np.full(2, np.nan, np.float32)
  if "valence" in cols and "arousal" in cols:
    va = np.asarray([_float(get("valence"), "bad_va"), _float(get("arousal"), "bad_va")], np.float32)
    if np.any(va == -2):
      if options["require_va"]:
        raise Skip("invalid_va")
      va = np.full(2, np.nan, np.float32)
    elif np.any(np.abs(va) > 1):
      raise Skip("va_out_of_range", str(va.tolist()))
  elif options["require_va"]:
    raise Skip("missing_column", "valence/arousal")
  box = tuple(_float(get(k), "bad_face_box") for k in COLUMNS[1:5])
  if not (box[2] > 0 and box[3] > 0):
    raise Skip("bad_face_box", str(box))
  landmarks = None
  try:
    landmarks = parse_landmarks(get("facial_landmarks") or "")
  except Skip:
    if options["require_landmarks"]:
      raise
  return get("subDirectory_filePath"), box, landmarks, label, va


def index(manual_dir: str, options: dict, report) -> dict:
  paths = _paths(manual_dir)
  out = {}
  for split in ("train", "test"):
    cols, rows, _ = read_csv(paths[split])
    report.read_from[split].append(paths[split])
    records = []
    for row in rows:
      try:
        records.append((paths["images"],) + parse_row(row, cols, options))
      except Skip as e:
        report.skip(split, e.reason, e.detail)
    out[split] = records
  return out


def load(record, options: dict, report, split: str) -> dict:
  root, rel, box, landmarks, label, va = record
  path, renamed = images.find_image(os.path.join(root, rel))
  if renamed:
    report.adjust(split, "image_extension_differs")
  image = images.open_rgb(path)
  size = options["image_size"]
  crop, padded = images.crop_resize(image, box, size)
  if padded:
    report.adjust(split, "face_box_padded")
  ex = {"image": crop, "label": label, "va": va, "source": rel}
  if landmarks is not None:
    ex["landmarks"] = images.map_points(landmarks, box, size)
  return ex
