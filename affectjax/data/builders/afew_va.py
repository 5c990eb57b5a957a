"""AFEW-VA (Kossaifi et al., 2017): 600 film clips, per-frame valence/arousal and 68 landmarks.

VA is annotated on -10..10 (integers, occasionally floats) and scaled to [-1, 1]. Each frame is
cropped to a square around its landmarks (enlarged by crop_margin), resized to image_size; the
landmarks follow the crop (z = 0). No official split: whole actors are held out for test.
"""
from __future__ import annotations

import json
import os

import numpy as np

from affectjax.data.builders import common, images
from affectjax.data.builders.report import MissingDataError, Skip

NAME = "afew_va"
HAS_IMAGES = True
HAS_LABELS_AND_VA = False
HAS_LABELS, HAS_VA = False, True  # VA only (sources.dataset_info)
OPTIONS = {"encoding": "png", "crop_margin": 0.25, "test_fraction": 0.2, "split_seed": 0}
LAYOUT_HINT = "one folder per clip, <clip>/<frame>.png plus <clip>/<clip>.json (e.g. 001/00000.png, 001/001.json)"
MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
Download AFEW-VA (https://ibug.doc.ic.ac.uk/resources/afew-va-database/), unzip all parts into
manual_dir: {LAYOUT_HINT}
"""


def num_landmarks(options) -> int:
  return 68


def factor_names(options) -> tuple:
  return ()


def _clips(manual_dir):
  return sorted(d for d in os.listdir(manual_dir) if os.path.isdir(os.path.join(manual_dir, d)))


def check_layout(manual_dir, options) -> None:
  if not any(os.path.isfile(os.path.join(manual_dir, c, f"{c}.json")) for c in _clips(manual_dir)):
    raise MissingDataError(f"afew_va: no <clip>/<clip>.json found under {manual_dir}; expected "
                           f"{LAYOUT_HINT} (see docs/datasets.md, section afew_va)")


def index(manual_dir, options, report) -> dict:
  records = []
  for clip in _clips(manual_dir):
    path = os.path.join(manual_dir, clip, f"{clip}.json")
    if not os.path.isfile(path):
      report.skip("all", "clip_without_json", path)
      continue
    try:
      with open(path, "r", errors="replace") as f:
        data = json.load(f)
      frames, actor = data["frames"], str(data.get("actor", clip))
      if not isinstance(frames, dict):
        raise TypeError(f"'frames' is a {type(frames).__name__}, expected an object of frames")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
      report.skip("all", "bad_json", f"{path}: {type(e).__name__}: {e}")
      continue
    for frame, ann in sorted(frames.items()):
      records.append((manual_dir, clip, frame, actor, ann))
  ids = common.identity_ids(r[3] for r in records)
  records = [r + (ids[r[3]],) for r in records]
  return common.assign_splits(records, lambda r: r[3], options, report)


def load(record, options, report, split) -> dict:
  root, clip, frame, actor, ann, identity = record
  if not isinstance(ann, dict):
    raise Skip("bad_annotation", f"{clip}/{frame}")
  va = common.check_va((ann.get("valence"), ann.get("arousal")), 10.0)
  try:
    points = np.asarray(ann.get("landmarks"), np.float32)
  except (TypeError, ValueError):
    raise Skip("bad_landmarks", f"{clip}/{frame}") from None
  if points.shape != (68, 2) or not np.all(np.isfinite(points)):
    raise Skip("bad_landmarks", f"{clip}/{frame}: shape {points.shape}")
  path, renamed = images.find_image(os.path.join(root, clip, f"{frame}.png"))
  if renamed:
    report.adjust(split, "image_extension_differs")
  box = common.landmark_box(points, options["crop_margin"])
  size = options["image_size"]
  crop, padded = images.crop_resize(images.open_rgb(path), box, size)
  if padded:
    report.adjust(split, "face_box_padded")
  return {"image": crop, "va": va, "landmarks": images.map_points(points, box, size),
          "identity": identity, "source": f"{clip}/{frame}"}
