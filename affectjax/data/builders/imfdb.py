"""IMFDB (Setty et al., 2013): Indian movie face crops per actor and movie, expression-labelled.

Each <Actor>/<Movie>/ folder holds images/ and <Movie>.txt: tab-separated, no header, Latin-1
text, the image file name in the 2nd column and the expression (upper case) in the 11th. Labels
outside the 7 emotions and repeated file names are counted and dropped. The crops are resized
whole to image_size. No VA (LeVAsa adds it by annotation transfer). Whole actors are held out.
"""
from __future__ import annotations

import csv
import os

from affectjax.data.builders import common, images
from affectjax.data.builders.report import MissingDataError, Skip
from affectjax.errors import DataError

NAME = "imfdb"
HAS_IMAGES = True
HAS_LABELS_AND_VA = False
# IMFDB's expression names -> affectjax EMOTIONS ids (data/example.py).
LABELS = {"NEUTRAL": 0, "HAPPINESS": 1, "SADNESS": 2, "SURPRISE": 3, "FEAR": 4, "DISGUST": 5, "ANGER": 6}
OPTIONS = {"encoding": "png", "test_fraction": 0.2, "split_seed": 0}
LAYOUT_HINT = "<Actor>/<Movie>/<Movie>.txt and <Actor>/<Movie>/images/<file>.jpg"
EXPECTED_TXT = "tab-separated rows, the image file in the 2nd column and the expression in the 11th"
MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
Download IMFDB (http://cvit.iiit.ac.in/projects/IMFDB/) and place in manual_dir: {LAYOUT_HINT}
"""


def num_landmarks(options) -> int:
  return 0


def factor_names(options) -> tuple:
  return ()


def _annotation_files(manual_dir):
  for actor in sorted(os.listdir(manual_dir)):
    adir = os.path.join(manual_dir, actor)
    if not os.path.isdir(adir):
      continue
    for movie in sorted(os.listdir(adir)):
      mdir = os.path.join(adir, movie)
      if os.path.isdir(mdir):
        txts = sorted(f for f in os.listdir(mdir) if f.lower().endswith(".txt"))
        yield actor, movie, mdir, txts


def check_layout(manual_dir, options) -> None:
  if not any(txts for *_, txts in _annotation_files(manual_dir)):
    raise MissingDataError(f"imfdb: no <Actor>/<Movie>/<Movie>.txt under {manual_dir}; expected "
                           f"{LAYOUT_HINT} (see docs/datasets.md, section imfdb)")


def index(manual_dir, options, report) -> dict:
  records = []
  for actor, movie, mdir, txts in _annotation_files(manual_dir):
    if not txts:
      report.skip("all", "movie_without_annotation", mdir)
      continue
    seen = set()
    try:
      rows = common.read_table(NAME, os.path.join(mdir, txts[0]), EXPECTED_TXT, min_columns=11,
                               delimiter="\t", encoding="latin-1", quoting=csv.QUOTE_NONE)
    except DataError as e:  # one bad movie among many: counted, the others are read
      report.skip("all", "bad_index_file", str(e))
      continue
    for cols in rows:
      if len(cols) < 11:
        report.skip("all", "malformed_row", f"{txts[0]}: {len(cols)} columns")
        continue
      name, expr = cols[1].strip(), cols[10].strip().upper()
      if name in seen:
        report.skip("all", "duplicate_row", name)
        continue
      seen.add(name)
      records.append((mdir, name, expr, actor))
  ids = common.identity_ids(r[3] for r in records)
  return common.assign_splits([r + (ids[r[3]],) for r in records], lambda r: r[3], options, report)


def load(record, options, report, split) -> dict:
  mdir, name, expr, actor, identity = record
  if expr not in LABELS:
    raise Skip("label_not_an_emotion", expr)
  label = LABELS[expr]
  if label >= options["num_classes"]:
    raise Skip("label_out_of_range", expr)
  path, renamed = images.find_image(os.path.join(mdir, "images", name))
  if renamed:
    report.adjust(split, "image_extension_differs")
  image = images.resize_full(images.open_rgb(path), options["image_size"])
  return {"image": image, "label": label, "identity": identity,
          "source": os.path.join(os.path.basename(os.path.dirname(mdir)), os.path.basename(mdir), name)}
