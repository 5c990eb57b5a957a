"""MorphSet (dual-domain label fusion paper): no public fixed layout, so affectjax reads a manifest.

manifest.csv in manual_dir, header row required, columns:
  path      image file, relative to manual_dir (already a face crop; resized whole)
  label     emotion id 0-7 (data/example.py EMOTIONS order) or its name; empty = unknown (-1)
  valence   in [-1, 1]; empty = unknown (NaN)
  arousal   in [-1, 1]; empty = unknown (NaN)
  split     optional: train | test (otherwise whole identities, or rows, are held out)
  identity  optional: person id (any text)
"""
from __future__ import annotations

import os

import numpy as np

from affectjax.data import example
from affectjax.data.builders import common, images
from affectjax.data.builders.report import MissingDataError, Skip
from affectjax.errors import DataError

NAME = "morphset"
HAS_IMAGES = True
HAS_LABELS_AND_VA = True
OPTIONS = {"encoding": "png", "test_fraction": 0.2, "split_seed": 0}
LAYOUT_HINT = "manifest.csv (columns path,label,valence,arousal[,split][,identity]) and the images it names"
MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
Write manual_dir/{LAYOUT_HINT}; see docs/datasets.md, section morphset.
"""
REQUIRED = ("path", "label", "valence", "arousal")
EXPECTED_CSV = ("comma-separated rows with a header naming path, label, valence, arousal "
                "(optional split, identity)")


def num_landmarks(options) -> int:
  return 0


def factor_names(options) -> tuple:
  return ()


def check_layout(manual_dir, options) -> None:
  path = os.path.join(manual_dir, "manifest.csv")
  if not os.path.isfile(path):
    raise MissingDataError(f"morphset: {path} does not exist; expected {LAYOUT_HINT} "
                           "(see docs/datasets.md, section morphset)")
  _manifest(path)


def _manifest(path) -> list[dict]:
  """manifest.csv's rows as dicts by lower-case column name; DataError if the file is empty,
  binary, garbled or another delimiter's, or if its header lacks a required column."""
  table = common.read_table(NAME, path, EXPECTED_CSV, min_columns=len(REQUIRED))
  header = [h.strip().lower() for h in table[0]]
  missing = [c for c in REQUIRED if c not in header]
  if missing:
    raise DataError(f"morphset: {path}: its header lacks column(s) {', '.join(missing)}; expected "
                    f"{EXPECTED_CSV}")
  return [{k: (r[i].strip() if i < len(r) else "") for i, k in enumerate(header) if k}
          for r in table[1:]]


def index(manual_dir, options, report) -> dict:
  path = os.path.join(manual_dir, "manifest.csv")
  rows = _manifest(path)
  report.read_from["all"].append(path)
  names = sorted({r.get("identity", "") for r in rows})
  ids = {n: i for i, n in enumerate(names)} if names != [""] else {}
  records = [(manual_dir, i, r, ids.get(r.get("identity", ""), -1)) for i, r in enumerate(rows)]
  if any(r.get("split") for r in rows):
    out = {"train": [], "test": []}
    for rec in records:
      split = rec[2].get("split", "").lower()
      if split not in out:
        report.skip("all", "bad_split", repr(split))
        continue
      out[split].append(rec)
    return out
  key = (lambda r: r[3]) if ids else (lambda r: r[1])  # identities if given, else rows
  return common.assign_splits(records, key, options, report)


def _label(text: str, num_classes: int) -> int:
  if text == "":
    return -1
  if text.lower() in example.EMOTIONS:
    label = example.EMOTIONS.index(text.lower())
  else:
    try:
      label = int(text)
    except ValueError:
      raise Skip("bad_label", repr(text)) from None
  if not 0 <= label < num_classes:
    raise Skip("label_out_of_range", text)
  return label


def load(record, options, report, split) -> dict:
  root, i, row, identity = record
  label = _label(row["label"], options["num_classes"])
  if row["valence"] == "" and row["arousal"] == "":
    va = np.full(2, np.nan, np.float32)
  else:
    va = common.check_va((row["valence"], row["arousal"]), 1.0)
  path, renamed = images.find_image(os.path.join(root, row["path"]))
  if renamed:
    report.adjust(split, "image_extension_differs")
  image = images.resize_full(images.open_rgb(path), options["image_size"])
  return {"image": image, "label": label, "va": va, "identity": identity, "source": row["path"]}
