"""The user's files as the models read them: images of any size and mode, landmark text files.

Images: whatever PIL opens (PNG, JPEG, TIFF, BMP, WebP, ...), EXIF orientation applied, 16-bit
and float images scaled to 8 bits, transparency composited on white, grayscale replicated to RGB;
then centre-cropped to a square and resized to the model's size, in [-1, 1] as the training data.
A file that cannot be read is a Skip (its reason is reported and counted, never a traceback).
"""
from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np


class Skip(Exception):
  """A file that cannot be used: `reason` (short) and `detail`."""

  def __init__(self, reason: str, detail: str):
    super().__init__(f"{reason}: {detail}")
    self.reason, self.detail = reason, detail


def list_inputs(path: str) -> tuple[list[str], str]:
  """(files, root): the file `path`, or every non-hidden file under the folder `path` (sorted,
  recursively); root is the folder that output names are relative to."""
  from affectjax.errors import UserError
  if os.path.isfile(path):
    return [os.path.abspath(path)], os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(path):
    raise UserError(f"--input={path}: no such file or folder")
  files = []
  for d, dirs, names in os.walk(path):
    dirs[:] = sorted(x for x in dirs if not x.startswith("."))
    files += [os.path.abspath(os.path.join(d, n)) for n in sorted(names) if not n.startswith(".")]
  if not files:
    raise UserError(f"--input={path}: the folder holds no files")
  return files, os.path.abspath(path)


def output_stems(files: list[str], root: str) -> dict[str, str]:
  """file -> its output name without extension, relative to the output folder: the path under
  root without its extension ('a/b.jpg' -> 'a/b'), keeping the extension ('b_jpg') where two
  inputs would otherwise share a name."""
  rel = {f: os.path.relpath(f, root) for f in files}
  plain = {f: os.path.splitext(r)[0] for f, r in rel.items()}
  count = collections.Counter(plain.values())
  return {f: plain[f] if count[plain[f]] == 1 else rel[f].replace(".", "_") for f in files}


def check_output(output: str, files: list[str]) -> None:
  """The output folder is created; it may be the input folder, but no output may be an input."""
  from affectjax.errors import UserError
  try:
    os.makedirs(output, exist_ok=True)
  except OSError as e:
    raise UserError(f"--output={output}: cannot create the folder ({e.strerror or e})") from None
  if os.path.isfile(output):
    raise UserError(f"--output={output} is a file; expected a folder")


def safe_path(path: str, inputs: set) -> str:
  """`path`, created folder included, unless it is one of the inputs (never overwritten)."""
  from affectjax.errors import UserError
  if os.path.realpath(path) in inputs:
    raise UserError(f"{path}: the output would overwrite an input file; use another --output")
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  return path


@dataclasses.dataclass
class Image:
  pixels: np.ndarray  # [size, size, 3] float32 in [-1, 1]
  original_size: tuple  # (width, height) as read
  mode: str  # PIL mode as read (RGB, L, RGBA, I;16, ...)


def read_image(path: str, size: int) -> Image:
  """The image at `path` as the model's input [size, size, 3] in [-1, 1]; Skip if unreadable."""
  from PIL import Image as PILImage, ImageOps
  try:
    with PILImage.open(path) as im:
      im.load()  # decode now: a truncated file fails here
      mode, original = im.mode, im.size
      im = ImageOps.exif_transpose(im)
      if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / float: full range to 8 bits
        a = np.asarray(im, np.float64)
        a = 255.0 * (a - a.min()) / max(a.max() - a.min(), 1e-12)
        im = PILImage.fromarray(a.astype(np.uint8))
      if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")  # transparent pixels become white, not their hidden colour
        white = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = PILImage.alpha_composite(white, rgba)
      im = im.convert("RGB")
      w, h = im.size
      s = min(w, h)
      left, top = (w - s) // 2, (h - s) // 2
      im = im.crop((left, top, left + s, top + s))
      if s != size:
        im = im.resize((size, size), PILImage.LANCZOS)
      x = np.asarray(im, np.float32) / 127.5 - 1.0
  except Exception as e:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError, ValueError)
    msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else ""
    raise Skip("unreadable image", f"{type(e).__name__}{': ' + msg if msg else ''}") from None
  return Image(x, original, mode)


def write_png(path: str, pixels) -> None:
  """[H, W, 3] in [-1, 1] -> 8-bit PNG."""
  from PIL import Image as PILImage
  a = np.clip(np.rint((np.asarray(pixels, np.float64) + 1.0) * 127.5), 0, 255).astype(np.uint8)
  PILImage.fromarray(a).save(path)


def resize_line(images: dict, size: int) -> str | None:
  """One line saying how the images were brought to the model's size (None: all already were)."""
  changed = {f: im for f, im in images.items() if im.original_size != (size, size)}
  if not changed:
    return None
  sizes = collections.Counter(f"{w}x{h}" for w, h in (im.original_size for im in changed.values()))
  shown = ", ".join(f"{k} ({v})" if v > 1 else k for k, v in sizes.most_common(4))
  more = f" and {len(sizes) - 4} other sizes" if len(sizes) > 4 else ""
  return (f"{len(changed)} of {len(images)} images centre-cropped to a square and resized to "
          f"{size}x{size}, the model's input size (from {shown}{more})")


def read_landmarks(path: str, k: int) -> np.ndarray:
  """[k, 3] points from a landmark file in a format the builders read (.bnd / .bndplus lines
  'x y z' or 'index x y z', .pts blocks, 2-D files with z = 0) or a .npy array [k, 2|3]."""
  if path.lower().endswith(".npy"):
    try:
      a = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
      raise Skip("unreadable landmarks", f"{type(e).__name__}: {e}") from None
    if a.ndim != 2 or a.shape[0] != k or a.shape[1] not in (2, 3) or not np.isfinite(a).all():
      raise Skip("bad landmarks", f"array of shape {a.shape}, expected [{k}, 3] finite values")
    out = np.zeros((k, 3), np.float32)
    out[:, :a.shape[1]] = a
    return out
  from affectjax.data.builders import common
  from affectjax.data.builders.report import Skip as BuilderSkip
  try:
    pts = common.read_points(path, k)
  except BuilderSkip as e:
    raise Skip(e.reason.replace("_", " "), e.detail) from None
  except UnicodeDecodeError as e:
    raise Skip("bad landmarks", f"not a text file ({e.reason})") from None
  if not np.isfinite(pts).all():
    raise Skip("bad landmarks", "non-finite coordinates")
  return pts
