"""Face geometry from identity and action units, and the 68 landmarks it implies (JAX, one face).

Face frame: x to the image right, y up, lengths in face units (head half-width about 0.7); the
face is drawn at UNIT * scale image widths per face unit around CENTRE. Each AU moves the features
as REFERENCE.md ("Facial action units for the synthetic faces") lists; the numbers below are the
displacement at AU intensity 1. Per-side quantities end in _l (image left, x < 0) or _r.
"""
from __future__ import annotations

import jax.numpy as jnp

from affectjax.data.synthetic.aus import AU_INDEX

UNIT = 0.4  # image widths per face unit at scale 1
CENTRE = (0.5, 0.47)  # image-fraction position of the face origin at zero shift
NUM_LANDMARKS = 68  # iBUG-300W layout: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67


def _side(idp, au):
  """Per-side feature parameters from one half's AU vector [17]."""
  a = {k: au[i] for k, i in AU_INDEX.items()}
  by = idp["eye_y"] + idp["brow_dy"]
  g = {}
  # Brows: AU1 inner up, AU2 outer up, AU4 down and together (AU9 pulls the inner end down a bit).
  g["brow_in_x"] = idp["brow_in"] - 0.045 * a["AU4"]
  g["brow_in_y"] = by + 0.1 * a["AU1"] - 0.075 * a["AU4"] - 0.02 * a["AU9"]
  g["brow_mid_y"] = (by + idp["brow_arch"] + 0.05 * a["AU1"] + 0.08 * a["AU2"]
                     - 0.05 * a["AU4"])
  g["brow_out_x"] = idp["brow_out"]
  g["brow_out_y"] = by - 0.01 + 0.11 * a["AU2"] - 0.02 * a["AU4"]
  # Eyes: AU5 opens the upper lid, AU6 raises the lower lid and narrows, AU7 tightens both lids.
  g["eye_w"] = idp["eye_w"] * (1 - 0.04 * a["AU6"] - 0.05 * a["AU7"])
  g["eye_hu"] = idp["eye_hu"] * jnp.maximum(
      0.15, 1 + 0.9 * a["AU5"] - 0.3 * a["AU6"] - 0.45 * a["AU7"])
  g["eye_hl"] = idp["eye_hl"] * jnp.maximum(
      0.1, 1 + 0.15 * a["AU5"] - 0.55 * a["AU6"] - 0.5 * a["AU7"])
  g["eye_cy"] = idp["eye_y"] + 0.012 * a["AU6"]
  # Mouth corners: AU12 up and out, AU14 inwards (dimple), AU15 down, AU20 sideways and flat.
  g["mouth_w"] = idp["mouth_w"] * (1 + 0.22 * a["AU12"] - 0.14 * a["AU14"] + 0.3 * a["AU20"]
                                   - 0.08 * a["AU23"] - 0.12 * a["AU26"])
  g["corner"] = ((0.12 * a["AU12"] + 0.02 * a["AU14"] - 0.1 * a["AU15"] - 0.015 * a["AU20"])
                 * (1 - 0.4 * a["AU20"]))
  # Shading cues: nasolabial fold, cheek raise, lid crease, forehead wrinkles, dimple.
  g["fold"] = jnp.clip(0.1 + 0.7 * a["AU12"] + 0.6 * a["AU10"] + 0.6 * a["AU9"]
                       + 0.2 * a["AU6"], 0, 0.85)
  g["cheek"] = a["AU6"]
  g["lid_crease"] = jnp.clip(0.08 + 0.6 * a["AU6"] + 0.3 * a["AU7"], 0, 0.7)
  g["inner_wrinkle"] = 0.7 * a["AU1"]
  g["outer_wrinkle"] = 0.6 * a["AU2"]
  g["furrow"] = 0.75 * a["AU4"]
  g["dimple"] = 0.8 * a["AU14"]
  return g


def face_geometry(idp: dict, au_left, au_right) -> dict:
  """All feature parameters of one face: identity params plus AU-driven displacements."""
  g = {}
  for suffix, au in (("_l", au_left), ("_r", au_right)):
    g.update({k + suffix: v for k, v in _side(idp, au).items()})
  a = {k: (au_left[i] + au_right[i]) / 2 for k, i in AU_INDEX.items()}
  # Midline features: nose (AU9 wrinkles and lifts the nostrils), lips and jaw.
  g["nostril_y"] = idp["nose_y"] - 0.02 + 0.035 * a["AU9"] + 0.01 * a["AU10"]
  g["nostril_w"] = 0.024 * (1 + 0.35 * a["AU9"])
  g["nose_wrinkle"] = 0.8 * a["AU9"]
  lift = 0.05 * a["AU10"] + 0.02 * a["AU9"]  # AU10 (and AU9) raise the upper lip
  g["open_up"] = 0.012 * a["AU25"] + 0.035 * a["AU26"] + lift
  g["open_low"] = jnp.maximum(0.0, 0.025 * a["AU25"] + 0.2 * a["AU26"] + 0.05 * a["AU16"]
                              - 0.02 * a["AU17"])
  thin = jnp.clip(1 - 0.6 * a["AU23"] - 0.3 * a["AU20"] - 0.25 * (a["AU12"] + a["AU14"]) / 2, 0.25, 1)
  g["lip_up"] = idp["lip_up"] * thin
  g["lip_low"] = idp["lip_low"] * thin + 0.012 * a["AU16"] - 0.008 * a["AU17"]
  g["mouth_y"] = idp["mouth_y"] - 0.015 * a["AU26"] + 0.01 * a["AU17"]
  g["teeth_low"] = 0.03 * a["AU16"] + 0.015 * a["AU26"]
  g["chin_crease"] = jnp.clip(0.1 + 0.6 * a["AU17"], 0, 0.7)
  g["head_b_low"] = idp["head_b_low"] + 0.08 * a["AU26"]  # jaw drop lengthens the face
  return g


def mouth_curves(u, corner, g, idp):
  """Lip curves at relative mouth abscissa u in [-1, 1] (per-side `corner` lift).

  Returns (mouth line, upper inner, lower inner, upper outer, lower outer) heights.
  """
  v = jnp.clip(1 - u * u, 0.0, 1.0)
  sv = jnp.sqrt(v + 1e-6)
  line = g["mouth_y"] + (corner + idp["mouth_curve"]) * u * u
  upper_in = line + g["open_up"] * v
  lower_in = line - g["open_low"] * v
  bow = 1 - 0.3 * jnp.clip(1 - (u / 0.18) ** 2, 0, 1)  # cupid's bow dip at the centre
  upper_out = upper_in + g["lip_up"] * sv * bow
  lower_out = lower_in - g["lip_low"] * sv
  return line, upper_in, lower_in, upper_out, lower_out


def brow_points(g, side: str, n: int = 5):
  """n points along one brow, inner to outer, in mirrored (|x|, y) coordinates [n, 2]."""
  return _brow(g["brow_in_x" + side], g["brow_in_y" + side], g["brow_mid_y" + side],
               g["brow_out_y" + side], g["brow_out_x" + side], n)


def _brow(in_x, in_y, mid_y, out_y, out_x, n):
  t = jnp.linspace(0.0, 1.0, n)
  mid_x = 0.5 * (in_x + out_x)
  cx, cy = 2 * mid_x - 0.5 * (in_x + out_x), 2 * mid_y - 0.5 * (in_y + out_y)  # through mid
  x = (1 - t) ** 2 * in_x + 2 * t * (1 - t) * cx + t ** 2 * out_x
  y = (1 - t) ** 2 * in_y + 2 * t * (1 - t) * cy + t ** 2 * out_y
  return jnp.stack([x, y], -1)


def head_width(y, idp, b_low):
  """Half-width of the head outline at height y (the jaw tapers towards the chin)."""
  return idp["head_a"] * (1 - idp["taper"] * jnp.clip(-y / b_low, 0, 1) ** 2)


def surface_depth(x, y, idp, b_low):
  """Depth of the head ellipsoid's front surface at (x, y); 0 on and outside the outline."""
  b = jnp.where(y > 0, idp["head_b_up"], b_low)
  k2 = (x / head_width(y, idp, b_low)) ** 2 + (y / b) ** 2
  return idp["depth"] * jnp.sqrt(jnp.clip(1 - k2, 0.0, 1.0))


def landmarks(idp: dict, g: dict, pose: dict):
  """68 landmarks [68, 3]: x, y in image fractions (0 = left/top edge, 1 = right/bottom edge), z
  the depth towards the camera in the same units (0 at the head outline)."""
  pts, relief = [], []
  # Jaw 0-16: just inside the lower outline, image left to image right.
  phi = jnp.linspace(jnp.pi - 0.1, 2 * jnp.pi + 0.1, 17)
  jy = 0.97 * jnp.where(jnp.sin(phi) > 0, idp["head_b_up"], g["head_b_low"]) * jnp.sin(phi)
  jx = 0.97 * head_width(jy, idp, g["head_b_low"]) * jnp.cos(phi)
  pts.append(jnp.stack([jx, jy], -1)); relief.append(jnp.zeros(17))
  # Brows 17-21 (left, outer to inner) and 22-26 (right, inner to outer).
  bl, br = brow_points(g, "_l"), brow_points(g, "_r")
  pts.append(bl[::-1] * jnp.array([-1.0, 1.0])); pts.append(br); relief.append(jnp.full(10, 0.04))
  # Nose 27-30 bridge to tip, 31-35 nostril base left to right.
  t = jnp.linspace(0.0, 1.0, 4)
  by = idp["eye_y"] + 0.03
  pts.append(jnp.stack([jnp.zeros(4), by + t * (idp["nose_y"] - by)], -1))
  relief.append(0.05 + 0.2 * t)
  nx = idp["nose_w"] * jnp.array([-1.0, -0.5, 0.0, 0.5, 1.0])
  ny = g["nostril_y"] - 0.015 + 0.01 * jnp.array([0.0, 1.0, 0.0, 1.0, 0.0])
  pts.append(jnp.stack([nx, ny], -1)); relief.append(jnp.array([0.08, 0.12, 0.14, 0.12, 0.08]))
  # Eyes 36-41 (left: outer corner, upper outer, upper inner, inner corner, lower inner, lower
  # outer) and 42-47 (right: inner corner, upper inner, upper outer, outer corner, lower ...).
  for side, sign in (("_l", -1.0), ("_r", 1.0)):
    o = jnp.array([-1.0, -1 / 3, 1 / 3, 1.0, 1 / 3, -1 / 3])  # towards the midline; -1 outer
    if sign > 0:  # the right eye starts at its inner corner
      o = -o
    up = jnp.array([0.0, 1.0, 1.0, 0.0, -1.0, -1.0])
    h = jnp.where(up > 0, g["eye_hu" + side], g["eye_hl" + side])
    ex = sign * (idp["eye_x"] - o * g["eye_w" + side])
    ey = g["eye_cy" + side] + up * h * (1 - o * o)
    pts.append(jnp.stack([ex, ey], -1)); relief.append(jnp.full(6, -0.03))
  # Mouth 48-59 outer (left corner, upper to right corner, lower back), 60-67 inner.
  def mouth(us, which):
    w = jnp.where(us > 0, g["mouth_w_r"], g["mouth_w_l"])
    c = jnp.where(us > 0, g["corner_r"], g["corner_l"])
    curves = mouth_curves(us, c, g, idp)
    return jnp.stack([us * w, jnp.stack([curves[k][i] for i, k in enumerate(which)])], -1)
  uo = jnp.array([-1.0, -0.6, -0.3, 0.0, 0.3, 0.6, 1.0, 0.6, 0.3, 0.0, -0.3, -0.6])
  pts.append(mouth(uo, [0, 3, 3, 3, 3, 3, 0, 4, 4, 4, 4, 4])); relief.append(jnp.full(12, 0.03))
  ui = jnp.array([-0.92, -0.4, 0.0, 0.4, 0.92, 0.4, 0.0, -0.4])
  pts.append(mouth(ui, [0, 1, 1, 1, 0, 2, 2, 2])); relief.append(jnp.full(8, 0.02))
  p = jnp.concatenate(pts, 0)
  z = surface_depth(p[:, 0], p[:, 1], idp, g["head_b_low"]) + jnp.concatenate(relief)
  return to_image(p[:, 0], p[:, 1], z, pose)


def to_image(x, y, z, pose):
  """Face-frame points to image fractions: yaw about the vertical axis, roll, scale, shift."""
  yaw, roll, s = pose["yaw"], pose["roll"], UNIT * pose["scale"]
  xr = x * jnp.cos(yaw) + z * jnp.sin(yaw)
  zr = z * jnp.cos(yaw) - x * jnp.sin(yaw)
  c, sn = jnp.cos(roll), jnp.sin(roll)
  dx, dy = xr * s, -y * s  # image y points down
  ix = CENTRE[0] + pose["shift_x"] + c * dx - sn * dy
  iy = CENTRE[1] + pose["shift_y"] + sn * dx + c * dy
  return jnp.stack([ix, iy, zr * s], -1)
