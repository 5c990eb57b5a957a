"""Fixture writers: tiny copies of the real datasets in their exact on-disk formats, bad rows included.

Every image is non-square (W != H) with a background of BG and a MARKER-coloured 2x2 block at a
known place, so a swapped x/y or an off-by-one crop moves the marker and fails a test.
"""
from __future__ import annotations

import csv
import json
import os

import numpy as np
from PIL import Image

BG = (90, 90, 90)
MARKER = (250, 20, 20)


def make_image(width: int, height: int, marker_xy, value=BG) -> np.ndarray:
  """H x W x 3 uint8 of `value` with a 2x2 MARKER block whose top-left is at column x, row y."""
  a = np.empty((height, width, 3), np.uint8)
  a[:] = value
  x, y = marker_xy
  a[y:y + 2, x:x + 2] = MARKER
  return a


def save(path: str, array: np.ndarray, mode: str | None = None) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  im = Image.fromarray(array)
  if mode:
    im = im.convert(mode)
  im.save(path)
  return path


def corrupt(path: str, truncated_from: np.ndarray | None = None) -> str:
  """A file that does not decode: garbage bytes, or the first half of a real JPEG."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  if truncated_from is None:
    data = b"\xff\xd8\xff\xe0 this is not a jpeg" * 3
  else:
    import io
    buf = io.BytesIO()
    Image.fromarray(truncated_from).save(buf, format="JPEG")
    data = buf.getvalue()[: len(buf.getvalue()) // 2]
  with open(path, "wb") as f:
    f.write(data)
  return path


# ---------------------------------------------------------------------------------------- AffectNet
AFFECTNET_HEADER = ["subDirectory_filePath", "face_x", "face_y", "face_width", "face_height",
                    "facial_landmarks", "expression", "valence", "arousal"]
# Fixture images are 40 wide, 30 high; the face box is (x=8, y=4, w=20, h=20) unless a row says
# otherwise; the marker sits at crop column 3, row 5 (image column 11, row 9).
AN_W, AN_H, AN_BOX, AN_MARK = 40, 30, (8, 4, 20, 20), (3, 5)


def affectnet_landmarks(box=AN_BOX) -> np.ndarray:
  """68 distinct points inside the box: point i = (x + 1 + 0.25 i, y + 2 + 0.2 i)."""
  i = np.arange(68, dtype=np.float64)
  return np.stack([box[0] + 1 + 0.25 * i, box[1] + 2 + 0.2 * i], axis=1)


def _lm_string(points) -> str:
  return ";".join(f"{v:.2f}" for v in np.asarray(points).reshape(-1))


def _an_image(path, fmt_mode=None, box=AN_BOX, value=BG):
  arr = make_image(AN_W, AN_H, (box[0] + AN_MARK[0], box[1] + AN_MARK[1]), value)
  return save(path, arr, fmt_mode)


def write_affectnet(root: str, validation_header: str = "none") -> dict:
  """An AffectNet copy under root; validation_header: 'none' | 'plain' | 'hash' ('#subDirectory...').

  Returns {'train': [(file, label, (v, a)), ...] of the rows that must be kept, 'test': ...}.
  """
  img = os.path.join(root, "Manually_Annotated_Images")
  lm = _lm_string(affectnet_landmarks())
  box = [str(v) for v in AN_BOX]

  def row(rel, label, v, a, b=box, landmarks=lm):
    return [rel] + list(b) + [landmarks, str(label), str(v), str(a)]

  values = {"1/a.jpg": (200, 200, 200), "1/b.png": (60, 160, 60), "2/c.tif": (30, 30, 200)}
  _an_image(os.path.join(img, "1/a.jpg"), value=values["1/a.jpg"])
  _an_image(os.path.join(img, "1/b.png"), value=values["1/b.png"])
  _an_image(os.path.join(img, "2/c.tif"), "L", value=(200, 200, 200))  # a grayscale TIFF
  _an_image(os.path.join(img, "2/d.bmp"))
  for name in ("e", "f", "g", "h", "k", "m", "n", "o", "p", "q"):
    _an_image(os.path.join(img, f"3/{name}.jpg"))
  _an_image(os.path.join(img, "4/renamed.png"))  # the CSV names it .jpg
  _an_image(os.path.join(img, "4/past.png"), box=(30, 4, 20, 20))  # its box runs past the right edge
  corrupt(os.path.join(img, "5/garbage.jpg"))
  corrupt(os.path.join(img, "5/truncated.jpg"), make_image(AN_W, AN_H, (0, 0)))
  past_box = ["30", "4", "20", "20"]  # columns 30..49 of a 40-wide image
  past_lm = _lm_string(affectnet_landmarks((30, 4, 20, 20)))
  train = [
      row("1/a.jpg", 1, 0.5, 0.25),                 # kept: happy
      row("1/b.png", 0, -0.125, 0.0625),            # kept: neutral, png
      row("2/c.tif", 2, -0.75, -0.5),               # kept: sad, grayscale tif
      row("2/d.bmp", 7, -0.5, 0.5),                 # kept: contempt (dropped with 7 classes)
      row("3/e.jpg", 8, 0.1, -0.2),                 # class_none (real VA)
      row("3/f.jpg", 9, -2, -2),                    # class_uncertain
      row("3/g.jpg", 10, -2, -2),                   # class_no_face
      row("3/h.jpg", 3, -2, -2),                    # invalid_va
      row("3/missing.jpg", 4, 0.1, 0.1),            # missing_image
      row("5/garbage.jpg", 5, 0.1, 0.1),            # unreadable_image
      row("5/truncated.jpg", 5, 0.1, 0.1),          # unreadable_image
      row("3/k.jpg", 6, 0.1, 0.1, b=["8", "4", "0", "20"]),    # bad_face_box (zero width)
      row("3/m.jpg", 6, 0.1, 0.1, b=["8", "4", "20", "-5"]),   # bad_face_box (negative height)
      row("4/past.png", 3, 0.25, 0.75, b=past_box, landmarks=past_lm),  # kept, padded
      row("3/n.jpg", 6, 0.1, 0.1, landmarks="1.0;2.0;3.0"),   # bad_landmarks
      row("3/o.jpg", 11, 0.1, 0.1),                 # label_out_of_range
      ["3/p.jpg", "8", "4", "20"],                  # malformed_row
      row("4/renamed.jpg", 4, -0.25, 0.875),        # kept: fear, file is .png
      row("3/q.jpg", "x", 0.1, 0.1),                # bad_label
      row("3/q.jpg", 6, 1.5, 0.1),                  # va_out_of_range
  ]
  _an_image(os.path.join(img, "6/v1.jpg"))
  _an_image(os.path.join(img, "6/v2.png"), value=(200, 200, 200))
  test = [row("6/v1.jpg", 6, -0.5, 0.625), row("6/v2.png", 5, -0.625, 0.5), row("6/v1.jpg", 9, -2, -2)]
  _write_csv(os.path.join(root, "training.csv"), AFFECTNET_HEADER, train)
  header = {"none": None, "plain": AFFECTNET_HEADER,
            "hash": ["#" + AFFECTNET_HEADER[0]] + AFFECTNET_HEADER[1:]}[validation_header]
  _write_csv(os.path.join(root, "validation.csv"), header, test)
  return {"values": values}


def _write_csv(path, header, rows):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    if header:
      w.writerow(header)
    w.writerows(rows)


def write_affectnet_bench(root: str, n: int, size: int = 128, seed: int = 0) -> None:
  """n random size x size JPEGs with full-image face boxes (for tools/bench_input.py)."""
  rng = np.random.default_rng(seed)
  img = os.path.join(root, "Manually_Annotated_Images")
  lm = _lm_string(affectnet_landmarks((0, 0, size, size)))
  rows = []
  for i in range(n):
    arr = rng.integers(0, 256, (size // 8, size // 8, 3), np.uint8).repeat(8, 0).repeat(8, 1)
    rel = f"{i % 10}/{i:06d}.jpg"
    save(os.path.join(img, rel), arr)
    va = rng.uniform(-1, 1, 2)
    rows.append([rel, "0", "0", str(size), str(size), lm, str(i % 8), f"{va[0]:.3f}", f"{va[1]:.3f}"])
  _write_csv(os.path.join(root, "training.csv"), AFFECTNET_HEADER, rows)
  _write_csv(os.path.join(root, "validation.csv"), AFFECTNET_HEADER, rows[: max(1, n // 10)])


# ------------------------------------------------------------------------------------------ AFEW-VA
def afew_points(cx: float, cy: float) -> np.ndarray:
  """68 points spanning a 16 x 16 square centred at (cx, cy): x from cx-8 to cx+8, y likewise."""
  t = np.linspace(0, 1, 68)
  return np.stack([cx - 8 + 16 * t, cy - 8 + 16 * t[::-1]], 1)


def write_afew_va(root: str) -> None:
  """Two actors, three clips (36 x 50 frames, marker at column 20, row 30); bad frames included."""
  def clip(cid, actor, frames):
    d = os.path.join(root, cid)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"{cid}.json"), "w") as f:
      json.dump({"actor": actor, "video_id": cid, "frames": frames}, f)

  pts = afew_points(20, 30).tolist()  # box: side 16 * 1.5 = 24 around (20, 30): x 8..32, y 18..42
  for cid in ("001", "002", "003"):
    for n in range(3):
      save(os.path.join(root, cid, f"{n:05d}.png"), make_image(36, 50, (19, 29)))
  clip("001", "Actor A", {"00000": {"valence": 5, "arousal": -10, "landmarks": pts},
                          "00001": {"valence": 2.5, "arousal": 10.0, "landmarks": pts},
                          "00002": {"valence": 11, "arousal": 0, "landmarks": pts}})       # va_out_of_range
  clip("002", "Actor A", {"00000": {"valence": -3, "arousal": 4, "landmarks": pts[:60]},   # bad_landmarks
                          "00001": {"valence": -3, "arousal": 4, "landmarks": pts},
                          "00005": {"valence": 1, "arousal": 1, "landmarks": pts}})        # missing_image
  clip("003", "Actor B", {"00000": {"valence": 0, "arousal": 7, "landmarks": pts},
                          "00001": {"valence": "x", "arousal": 7, "landmarks": pts}})      # bad_va
  os.makedirs(os.path.join(root, "004"), exist_ok=True)                                    # clip_without_json


# ----------------------------------------------------------------------------------------- Aff-Wild
def write_aff_wild(root: str) -> None:
  """Two train videos (one with a bbox .pts), one test video; frames 30 wide x 20 high."""
  def lines(path, values):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
      f.write("".join(f"{v}\n" for v in values))

  lines(os.path.join(root, "annotations/train/valence/105.txt"), [0.5, -0.25, 1.5, 0.0])
  lines(os.path.join(root, "annotations/train/arousal/105.txt"), [0.1, 0.2, 0.3, 0.4])
  lines(os.path.join(root, "annotations/train/valence/106.txt"), [0.3, 0.3, 0.3])
  lines(os.path.join(root, "annotations/train/arousal/106.txt"), [-0.3, -0.3])           # one line short
  lines(os.path.join(root, "annotations/test/valence/200.txt"), [-1, 1])
  lines(os.path.join(root, "annotations/test/arousal/200.txt"), [1, -1])
  for n in (0, 1, 2):  # frame 3 of 105 is missing
    save(os.path.join(root, f"frames/train/105/{n:05d}.jpg"), make_image(30, 20, (10, 6)))
  for n in (0, 1):
    save(os.path.join(root, f"frames/train/106/{n}.png"), make_image(30, 20, (10, 6)))
    save(os.path.join(root, f"frames/test/200/{n:05d}.png"), make_image(30, 20, (10, 6)))
  os.makedirs(os.path.join(root, "bboxes/train/106"), exist_ok=True)
  for n in (0, 1):  # box x 6..16, y 2..12 (10 x 10): marker at crop (4, 4)
    with open(os.path.join(root, f"bboxes/train/106/{n}.pts"), "w") as f:
      f.write("version: 1\nn_points: 4\n{\n6 2\n16 2\n6 12\n16 12\n}\n")


# --------------------------------------------------------------------------------------------- IMFDB
def write_imfdb(root: str) -> None:
  """Three actors; tab-separated Latin-1 annotations, 2nd column file, 11th expression."""
  def movie(actor, name, rows, files):
    d = os.path.join(root, actor, name)
    for f in files:
      save(os.path.join(d, "images", f), make_image(24, 32, (5, 20)))
    with open(os.path.join(d, f"{name}.txt"), "w", encoding="latin-1") as f:
      for r in rows:
        f.write("\t".join(r) + "\n")

  def row(file, expr, actor="Amitabh"):
    return ["1", file, "Film", "2001", actor, "MALE", "FRONTAL", "GOOD", "NONE", "MEDIUM", expr, "x"]

  movie("AmitabhBachchan", "Deewar", [row("A_1.jpg", "HAPPINESS"), row("A_2.jpg", "ANGER"),
                                      row("A_2.jpg", "ANGER"),             # duplicate_row
                                      row("A_3.jpg", "Sadness "),           # case and spaces
                                      row("A_4.jpg", "SUPRISE")],            # label_not_an_emotion
        ["A_1.jpg", "A_2.jpg", "A_3.jpg", "A_4.jpg"])
  movie("Kajol", "DDLJ", [row("K_1.jpg", "NEUTRAL", "Kajol\xe9"), row("K_2.jpg", "FEAR"),
                          ["1", "K_3.jpg", "short"],                         # malformed_row
                          row("K_9.jpg", "DISGUST")],                        # missing_image
        ["K_1.jpg", "K_2.jpg"])
  movie("Rekha", "Umrao", [row("R_1.jpg", "SURPRISE"), row("R_2.jpg", "DISGUST")], ["R_1.jpg", "R_2.jpg"])


# ------------------------------------------------------------------------------------------ BU-3DFE
def bnd_points(seed: float) -> np.ndarray:
  i = np.arange(83, dtype=np.float64)
  return np.stack([seed + i, -i * 0.5, 10 + seed * i / 83], 1)


def write_bnd(path: str, pts: np.ndarray, with_index=True):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w") as f:
    for i, p in enumerate(pts):
      f.write((f"{1000 + i}\t\t" if with_index else "") + "\t\t".join(f"{v:.4f}" for v in p) + "\n")


def write_bu3dfe(root: str) -> None:
  """Subjects F0001, M0002 complete-ish, F0003 without neutral; one malformed .bnd."""
  for s, subj in enumerate(("F0001", "M0002", "F0003")):
    race = "WH" if s != 1 else "AE"
    if subj != "F0003":
      write_bnd(os.path.join(root, subj, f"{subj}_NE00{race}_F3D.bnd"), bnd_points(s))
    for expr, lvl in (("AN", 1), ("HA", 4)):
      write_bnd(os.path.join(root, subj, f"{subj}_{expr}0{lvl}{race}_F3D.bnd"), bnd_points(s + lvl))
  write_bnd(os.path.join(root, "F0001", "F0001_SU02WH_F3D.bnd"), bnd_points(9)[:80])  # bad_landmarks
  write_bnd(os.path.join(root, "F0001", "notes_F3D.bnd"), bnd_points(9))              # unrecognised


# --------------------------------------------------------------------------------------------- BP4D
def write_bp4d(root: str) -> None:
  """F001 (T1, T2) and M002 (T1); AUs 0/1/9 with one bad value; one frame without landmarks."""
  au = os.path.join(root, "AUCoding", "AU_OCC")
  os.makedirs(au, exist_ok=True)
  header = ["0", "1", "2", "4", "6", "7", "10", "12", "14", "15", "17", "23", "24", "27"]
  def csv_file(name, rows):
    _write_csv(os.path.join(au, name), header, rows)
  zeros = ["0"] * 13
  csv_file("F001_T1.csv", [["1"] + zeros, ["2"] + zeros, ["3"] + ["1"] + ["9"] + ["0"] * 11])
  csv_file("F001_T2.csv", [["7"] + ["0", "1"] + ["0"] * 11, ["8"] + ["5"] + ["0"] * 12])  # 8: bad_au
  csv_file("M002_T1.csv", [["1"] + zeros, ["2"] + ["1"] * 13])  # frame 2 has no landmarks
  feats = os.path.join(root, "3DFeatures")
  for f, seed in ((1, 0.0), (2, 2.0), (3, 5.0)):
    write_bnd(os.path.join(feats, "F001", "T1", f"{f:04d}.bndplus"), bnd_points(seed), with_index=False)
  for f in (7, 8):
    write_bnd(os.path.join(feats, f"F001_T2_{f:04d}.bndplus"), bnd_points(7.0), with_index=False)
  write_bnd(os.path.join(feats, "M002", "T1", "0001.bndplus"), bnd_points(1.0), with_index=False)


# ----------------------------------------------------------------------------------------- MorphSet
def write_morphset(root: str) -> None:
  for n in ("a", "b", "c", "d"):
    save(os.path.join(root, "img", f"{n}.png"), make_image(24, 32, (5, 20)))
  _write_csv(os.path.join(root, "manifest.csv"), ["path", "label", "valence", "arousal", "split"], [
      ["img/a.png", "1", "0.5", "0.25", "train"], ["img/b.png", "anger", "-0.5", "0.75", "train"],
      ["img/c.png", "", "", "", "train"], ["img/d.png", "9", "0", "0", "train"],     # label_out_of_range
      ["img/e.png", "2", "0", "0", "train"],                                            # missing_image
      ["img/a.png", "0", "0", "0", "test"], ["img/b.png", "3", "1.2", "0", "test"]])   # va_out_of_range


def limit_tf_threads():
  """2-core machines shared by several people: TF gets one thread of each kind."""
  import tensorflow as tf
  try:
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
  except RuntimeError:  # already initialised
    pass


def data_config(name, manual_dir, tfds_dir, image_size=20, num_classes=8, test_fraction=0.2, **options):
  import ml_collections
  return ml_collections.ConfigDict({
      "name": name, "manual_dir": str(manual_dir), "tfds_dir": str(tfds_dir), "cache_dir": "",
      "image_size": image_size, "num_classes": num_classes, "test_fraction": test_fraction,
      "builder_options": options})


def to_float(rgb) -> np.ndarray:
  """uint8 RGB -> the [-1, 1] values a source returns."""
  return np.asarray(rgb, np.float32) * (2.0 / 255.0) - 1.0


# ----------------------------------------------------------------------- damaged copies (issue 22)
AFFECTNET_DAMAGE = ("dropped_columns", "tab_separated", "empty", "binary", "header_only",
                    "corrupt_images")


def damage_affectnet(root: str, how: str) -> str:
  """Damages the AffectNet copy under root (write_affectnet_bench) as a user's copy may be; returns
  the file a one-line error must name."""
  path = os.path.join(root, "training.csv")
  with open(path, newline="") as f:
    rows = list(csv.reader(f))
  if how == "dropped_columns":  # re-saved without facial_landmarks and expression
    _write_csv(path, None, [r[:5] + r[7:] for r in rows])
  elif how == "tab_separated":
    with open(path, "w") as f:
      f.writelines("\t".join(r) + "\n" for r in rows)
  elif how == "empty":
    open(path, "w").close()
  elif how == "binary":  # e.g. a spreadsheet saved under the CSV's name
    with open(path, "wb") as f:
      f.write(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
  elif how == "header_only":
    _write_csv(path, None, rows[:1])
  elif how == "corrupt_images":
    images = os.path.join(root, "Manually_Annotated_Images")
    for folder, _, files in os.walk(images):
      for name in files:
        corrupt(os.path.join(folder, name))
  else:
    raise ValueError(how)
  return path
