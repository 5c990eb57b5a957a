"""Random draws of who is pictured and how: identity, pose and illumination parameters (numpy).

Identity i's parameters depend only on (seed, identity_offset + i), so the same people come back
whatever the dataset size. Each parameter is a named column so that geometry.py and render.py read
them by name; lengths are in face units (head half-width about 0.7, y up, origin between the
cheekbones), colours are RGB in [0, 1].
"""
from __future__ import annotations

import numpy as np

# name: (low, high) of a uniform draw.
_IDENTITY_RANGES = {
    "head_a": (0.64, 0.76), "head_b_up": (0.9, 1.0), "head_b_low": (0.88, 1.0),
    "taper": (0.05, 0.3), "depth": (0.75, 0.9),
    "eye_x": (0.27, 0.33), "eye_y": (0.08, 0.14), "eye_w": (0.14, 0.17),
    "eye_hu": (0.07, 0.09), "eye_hl": (0.05, 0.065), "iris_r": (0.058, 0.07),
    "brow_dy": (0.14, 0.19), "brow_in": (0.1, 0.15), "brow_out": (0.43, 0.5),
    "brow_th": (0.035, 0.05), "brow_arch": (0.015, 0.05),
    "nose_y": (-0.27, -0.19), "nose_w": (0.07, 0.1),
    "mouth_y": (-0.53, -0.45), "mouth_w": (0.2, 0.25), "lip_up": (0.03, 0.05),
    "lip_low": (0.04, 0.065), "mouth_curve": (-0.01, 0.012),
    "hairline": (0.42, 0.68), "hair_vol": (0.04, 0.16), "hair_low": (-0.95, -0.05),
    "hair_part": (-0.3, 0.3), "skin_tone": (0.0, 1.0),
}
IDENTITY_FIELDS = tuple(_IDENTITY_RANGES) + ("skin", "lips", "hair", "brow", "iris", "bg", "shirt")
POSE_NAMES = ("roll", "yaw", "shift_x", "shift_y", "scale")
LIGHT_NAMES = ("light_x", "light_y", "ambient", "brightness", "warmth")

_LIGHT_SKIN, _DARK_SKIN = np.array([0.97, 0.81, 0.70]), np.array([0.42, 0.28, 0.2])
_HAIR = np.array([[0.08, 0.06, 0.05], [0.25, 0.16, 0.1], [0.45, 0.3, 0.17], [0.55, 0.25, 0.12],
                  [0.85, 0.7, 0.42], [0.7, 0.7, 0.7]])
_HAIR_P = np.array([0.3, 0.25, 0.15, 0.08, 0.14, 0.08])
_IRIS = np.array([[0.3, 0.18, 0.1], [0.15, 0.1, 0.06], [0.3, 0.45, 0.65], [0.35, 0.5, 0.3],
                  [0.5, 0.38, 0.2]])


# Reference colours that `colour_variety` < 1 pulls every identity's colours towards.
_COLOUR_REFERENCE = {"skin": 0.5 * (_LIGHT_SKIN + _DARK_SKIN), "hair": np.array([0.3, 0.2, 0.12]),
                     "iris": np.array([0.3, 0.28, 0.2]), "bg": np.full(3, 0.575),
                     "shirt": np.full(3, 0.5)}


def sample_identities(seed: int, num: int, offset: int = 0, colour_variety: float = 1.0) -> dict:
  """Per-identity parameters {name: [num] or [num, 3]} for identities offset..offset+num-1.

  `colour_variety` scales how far skin, hair, iris, background and shirt colours spread around
  fixed reference colours (1: the full variety, 0: everyone shares the reference colours); the
  draws are the same whatever its value, so identity i keeps its geometry.
  """
  rng = np.random.default_rng([seed, offset, 11])
  u = rng.random((num, len(_IDENTITY_RANGES) + 24))  # fixed draws per identity, in order
  out = {}
  for i, (name, (lo, hi)) in enumerate(_IDENTITY_RANGES.items()):
    out[name] = lo + (hi - lo) * u[:, i]
  c = u[:, len(_IDENTITY_RANGES):]
  tone = out["skin_tone"][:, None] ** 1.3  # more light than dark draws, still every tone
  skin = (1 - tone) * _LIGHT_SKIN + tone * _DARK_SKIN
  out["skin"] = np.clip(skin * (0.95 + 0.1 * c[:, 0:3]), 0, 1)
  out["lips"] = out["skin"] * np.array([0.8, 0.45, 0.45])
  hair = _HAIR[np.searchsorted(np.cumsum(_HAIR_P), c[:, 3] * 0.9999)]
  out["hair"] = np.clip(hair * (0.85 + 0.3 * c[:, 4:7]), 0, 1)
  out["brow"] = 0.45 * out["hair"] + 0.55 * np.minimum(out["hair"], 0.15)  # brows darker than hair
  out["iris"] = _IRIS[(c[:, 7] * len(_IRIS)).astype(int)]
  out["bg"] = 0.35 + 0.45 * (0.5 * c[:, 8:9] + 0.5 * c[:, 9:12])  # muted: grey plus a tint
  out["shirt"] = 0.15 + 0.7 * c[:, 12:15]
  if colour_variety != 1.0:  # (exactly 1 leaves every colour untouched)
    for name, ref in _COLOUR_REFERENCE.items():
      out[name] = ref + colour_variety * (out[name] - ref)
    out["lips"] = out["skin"] * np.array([0.8, 0.45, 0.45])
    out["brow"] = 0.45 * out["hair"] + 0.55 * np.minimum(out["hair"], 0.15)
  bald = c[:, 20] < 0.06
  out["hairline"] = np.where(bald, 3.0, out["hairline"])
  out["hair_vol"] = np.where(bald, -0.2, out["hair_vol"])
  return {k: v.astype(np.float32) for k, v in out.items()}


def sample_pose(rng: np.random.Generator, n: int, jitter: float = 1.0) -> dict:
  """Small per-image pose: in-plane roll and yaw (radians), shift (image fraction), scale."""
  return {
      "roll": np.clip(rng.normal(0.0, 0.07, n), -0.18, 0.18) * jitter,
      "yaw": rng.uniform(-0.15, 0.15, n) * jitter,
      "shift_x": rng.uniform(-0.03, 0.03, n) * jitter,
      "shift_y": rng.uniform(-0.03, 0.03, n) * jitter,
      "scale": 1.0 + rng.uniform(-0.06, 0.06, n) * jitter,
  }


def sample_light(rng: np.random.Generator, n: int, jitter: float = 1.0) -> dict:
  """Per-image illumination: light direction (x, y), ambient share, brightness, warmth."""
  return {
      "light_x": rng.uniform(-0.7, 0.7, n) * jitter,
      "light_y": 0.35 + rng.uniform(-0.35, 0.35, n) * jitter,
      "ambient": 0.6 + rng.uniform(-0.12, 0.12, n) * jitter,
      "brightness": 1.0 + rng.uniform(-0.15, 0.12, n) * jitter,
      "warmth": rng.uniform(-1.0, 1.0, n) * jitter,
  }


# Face point (face units, y up) that zoom keeps in place: the middle of the expressive features,
# between the brows and the chin, so zooming in fills the frame with them.
ZOOM_ANCHOR_Y = -0.15


def zoomed(pose: dict, zoom: float, unit: float) -> dict:
  """`pose` with the face `zoom` times larger about ZOOM_ANCHOR_Y (`unit`: image widths per face
  unit at scale 1); zoom 1 returns `pose` itself."""
  if zoom == 1.0:
    return pose
  # image y of the anchor: centre + shift_y - ZOOM_ANCHOR_Y * unit * scale, kept fixed
  scale = np.asarray(pose["scale"])
  shift = -ZOOM_ANCHOR_Y * unit * (1.0 - zoom) * scale
  return dict(pose, scale=scale * zoom, shift_y=pose["shift_y"] + shift)


def frontal(n: int) -> tuple[dict, dict]:
  """Zero pose and default light for n images (neutral reference faces, figures)."""
  rng = np.random.default_rng(0)
  return sample_pose(rng, n, 0.0), sample_light(rng, n, 0.0)
