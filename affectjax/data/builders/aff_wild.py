"""Aff-Wild (Kollias et al., 2019; Zafeiriou et al., 2017): in-the-wild videos, per-frame VA in [-1, 1].

Annotations are one value per line per frame (annotations/<split>/valence|arousal/<video>.txt).
Videos must be extracted to frames first (no video decoder is assumed): frames/<split>/<video>/
<n>.jpg where n is the 0-based frame number (any zero padding, any image extension). Optional
bboxes/<split>/<video>/<n>.pts (the face box; its corner points) crop the frame; optional
landmarks/<split>/<video>/<n>.pts (68 points) are kept. Without annotations/test, whole videos
are held out for test.
"""
from __future__ import annotations

import functools
import os


from affectjax.data.builders import common, images
from affectjax.data.builders.report import MissingDataError, Skip
from affectjax.errors import DataError

NAME = "aff_wild"
HAS_IMAGES = True
HAS_LABELS_AND_VA = False
HAS_LABELS, HAS_VA = False, True  # VA only (sources.dataset_info)
OPTIONS = {"encoding": "png", "frame_step": 1, "test_fraction": 0.2, "split_seed": 0}
LAYOUT_HINT = ("annotations/train/valence/<video>.txt, annotations/train/arousal/<video>.txt, "
               "frames/train/<video>/<n>.jpg (optional bboxes/, landmarks/ .pts and the same for test)")
MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
Request Aff-Wild (https://ibug.doc.ic.ac.uk/resources/first-affect-wild-challenge/), extract each
video's frames (e.g. ffmpeg -i videos/train/105.avi -start_number 0 frames/train/105/%05d.jpg) and
place in manual_dir: {LAYOUT_HINT}
"""


def num_landmarks(options) -> int:
  return 68


def factor_names(options) -> tuple:
  return ()


def check_layout(manual_dir, options) -> None:
  for sub in (os.path.join("annotations", "train", "valence"), os.path.join("annotations", "train", "arousal"),
              os.path.join("frames", "train")):
    if not os.path.isdir(os.path.join(manual_dir, sub)):
      raise MissingDataError(f"aff_wild: {os.path.join(manual_dir, sub)} does not exist; expected "
                             f"{LAYOUT_HINT} (see docs/datasets.md, section aff_wild)")


def _lines(path):
  """The non-blank lines of an annotation file; DataError if it is unreadable, empty or binary."""
  text = common.read_text(NAME, path, "one valence (or arousal) value in [-1, 1] per line, per frame")
  return [line.strip() for line in text.splitlines() if line.strip()]


@functools.lru_cache(maxsize=64)  # one listing per video folder, not per frame
def _frame_files(directory) -> dict:
  out = {}
  for name in os.listdir(directory) if os.path.isdir(directory) else ():
    stem, ext = os.path.splitext(name)
    if stem.isdigit():
      out[int(stem)] = os.path.join(directory, name)
  return out


def _index_split(manual_dir, split, options, report):
  vdir = os.path.join(manual_dir, "annotations", split, "valence")
  records = []
  for name in sorted(os.listdir(vdir)):
    video = os.path.splitext(name)[0]
    apath = os.path.join(manual_dir, "annotations", split, "arousal", name)
    if not os.path.isfile(apath):
      report.skip("all", "missing_arousal_file", apath)
      continue
    try:
      val, aro = _lines(os.path.join(vdir, name)), _lines(apath)
    except DataError as e:  # one bad video among many: counted, the others are read
      report.skip(split, "bad_index_file", str(e))
      continue
    if len(val) != len(aro):
      for _ in range(abs(len(val) - len(aro))):  # frames with only one of valence/arousal
        report.skip(split, "va_length_mismatch", video)
    frames = _frame_files(os.path.join(manual_dir, "frames", split, video))
    for n in range(0, min(len(val), len(aro)), max(1, int(options["frame_step"]))):
      records.append((manual_dir, split, video, n, frames.get(n), val[n], aro[n]))
  return records


def index(manual_dir, options, report) -> dict:
  train = _index_split(manual_dir, "train", options, report)
  if os.path.isdir(os.path.join(manual_dir, "annotations", "test", "valence")):
    splits = {"train": train, "test": _index_split(manual_dir, "test", options, report)}
  else:
    splits = common.assign_splits(train, lambda r: r[2], options, report)
  ids = common.identity_ids(r[2] for recs in splits.values() for r in recs)
  return {s: [r + (ids[r[2]],) for r in recs] for s, recs in splits.items()}


def load(record, options, report, split) -> dict:
  root, src_split, video, n, path, v, a, identity = record
  va = common.check_va((v, a), 1.0)
  if path is None:
    raise Skip("missing_image", f"frames/{src_split}/{video}/{n}")
  image = images.open_rgb(path)
  size = options["image_size"]
  ex = {"va": va, "identity": identity, "source": f"{src_split}/{video}/{n}"}
  bbox = os.path.join(root, "bboxes", src_split, video, f"{n}.pts")
  found = _frame_files(os.path.dirname(bbox)).get(n) if os.path.isdir(os.path.dirname(bbox)) else None
  if found:
    corners = common.read_points(found, 4)
    lo, hi = corners[:, :2].min(0), corners[:, :2].max(0)
    box = (float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
  else:
    box = (0.0, 0.0, float(image.size[0]), float(image.size[1]))
  ex["image"], padded = images.crop_resize(image, box, size)
  if padded:
    report.adjust(split, "face_box_padded")
  lm = _frame_files(os.path.join(root, "landmarks", src_split, video)).get(n)
  if lm:
    ex["landmarks"] = images.map_points(common.read_points(lm, 68)[:, :2], box, size)
  return ex
