"""Image reading for the builders: tolerant file lookup, decoding, face-box crop and resize (PIL)."""
from __future__ import annotations

import functools
import os

import numpy as np

from affectjax.data.builders.report import Skip

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp")


@functools.lru_cache(maxsize=4096)
def _listing(directory: str) -> dict:
  # stem (lower case) -> file names, so a .jpg named in a CSV still finds the .png on disk.
  out = {}
  try:
    names = os.listdir(directory)
  except OSError:
    return out
  for name in names:
    stem, ext = os.path.splitext(name)
    if ext.lower() in IMAGE_EXTS:
      out.setdefault(stem.lower(), []).append(name)
  return out


def find_image(path: str) -> tuple[str, bool]:
  """(existing path, whether it differs from `path` by extension/case); Skip('missing_image') if none."""
  if os.path.isfile(path):
    return path, False
  directory, name = os.path.split(path)
  found = _listing(directory).get(os.path.splitext(name)[0].lower())
  if found:
    return os.path.join(directory, sorted(found)[0]), True
  raise Skip("missing_image", path)


def open_rgb(path: str):
  """The image at `path` as a fully decoded RGB PIL image; Skip('unreadable_image') if it is corrupt."""
  from PIL import Image
  try:
    with Image.open(path) as im:
      im.load()  # decode now: truncated files fail here, not later
      if im.mode in ("I;16", "I;16B", "I", "F"):  # 16-bit/float TIFFs: scale to 8 bits
        a = np.asarray(im, np.float64)
        a = 255.0 * (a - a.min()) / max(a.max() - a.min(), 1e-12)
        im = Image.fromarray(a.astype(np.uint8))
      return im.convert("RGB")
  except Exception as e:  # PIL raises many types (OSError, SyntaxError, ValueError, ...)
    why = str(e).replace(f" '{path}'", "").replace(f" {path}", "")  # the path is said once
    raise Skip("unreadable_image", f"{path}: {type(e).__name__}: {why}") from None


def read_rgb(path: str) -> np.ndarray:
  return np.asarray(open_rgb(path), np.uint8)


def crop_resize(image, box, size: int) -> tuple[np.ndarray, bool]:
  """Crops box = (x, y, width, height) in pixels (x = column) and resizes to size x size.

  A box running past the image is padded with black (the face keeps its place and aspect; the
  second return value says so). A box with non-positive width/height or no overlap with the image
  raises Skip('bad_face_box').
  """
  from PIL import Image
  x, y, w, h = (float(v) for v in box)
  if not (np.isfinite([x, y, w, h]).all() and w > 0 and h > 0):
    raise Skip("bad_face_box", f"box {box}")
  width, height = image.size
  if x >= width or y >= height or x + w <= 0 or y + h <= 0:
    raise Skip("bad_face_box", f"box {box} outside the {width}x{height} image")
  padded = x < 0 or y < 0 or x + w > width or y + h > height
  # PIL fills the part of a crop outside the image with zeros.
  out = image.crop((x, y, x + w, y + h)).resize((size, size), Image.BILINEAR)
  return np.asarray(out, np.uint8), padded


def resize_full(image, size: int) -> np.ndarray:
  """The whole image resized to size x size (datasets whose files are already face crops)."""
  from PIL import Image
  return np.asarray(image.resize((size, size), Image.BILINEAR), np.uint8)


def map_points(points: np.ndarray, box, size: int) -> np.ndarray:
  """[K, 2] image pixel coordinates -> [K, 3] coordinates in the size x size crop (z = 0)."""
  x, y, w, h = (float(v) for v in box)
  p = np.asarray(points, np.float32).reshape(-1, 2)
  out = np.zeros((len(p), 3), np.float32)
  out[:, 0] = (p[:, 0] - x) * (size / w)
  out[:, 1] = (p[:, 1] - y) * (size / h)
  return out
