"""Vectorised JAX renderer: soft, anti-aliased shapes from signed distances over a pixel grid.

`render_batch` jits one face's renderer vmapped over images and runs it in fixed-size chunks (so
memory stays small and there is one compile per image size). Features on both face halves are
drawn once in mirrored coordinates (|x|, y) with each pixel reading its own half's parameters,
which halves the work and still lets contempt be one-sided.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from affectjax.data.synthetic import geometry as geo

CHUNK = 32  # images per jitted call: small enough for the intermediates to stay in cache


def _aa(d, pix):
  """Coverage of a pixel by the inside (d < 0) of a signed distance field."""
  return jnp.clip(0.5 - d / pix, 0.0, 1.0)


def _ellipse_sd(x, y, a, b):
  """Approximate signed distance to an axis-aligned ellipse (first-order in the implicit)."""
  k = jnp.sqrt((x / a) ** 2 + (y / b) ** 2)
  grad = jnp.sqrt((x / (a * a)) ** 2 + (y / (b * b)) ** 2) / jnp.maximum(k, 1e-4)
  return (k - 1.0) / jnp.maximum(grad, 0.5 / jnp.maximum(a, b))


def _segment_sd(x, y, p, q, r0, r1):
  """Signed distance to a capsule from p to q whose radius goes from r0 to r1."""
  dx, dy = q[0] - p[0], q[1] - p[1]
  h = jnp.clip(((x - p[0]) * dx + (y - p[1]) * dy) / (dx * dx + dy * dy + 1e-9), 0.0, 1.0)
  return jnp.sqrt((x - p[0] - h * dx) ** 2 + (y - p[1] - h * dy) ** 2) - (r0 + h * (r1 - r0))


def _polyline_sd(x, y, pts, r0, r1):
  """Distance to a chain of capsules through the points [(x, y), ...], radius r0 to r1."""
  n = len(pts) - 1
  ds = [_segment_sd(x, y, pts[i], pts[i + 1], r0 + (r1 - r0) * i / n, r0 + (r1 - r0) * (i + 1) / n)
        for i in range(n)]
  return functools.reduce(jnp.minimum, ds)


def _band(y, centre, half, x_extent, pix):
  """Coverage of a horizontal band |y - centre| < half over |x_extent| < 1 (x_extent relative)."""
  return _aa(jnp.abs(y - centre) - half, pix) * _aa(jnp.abs(x_extent) - 1.0, 0.25)


def _over(img, mask, colour):
  return img + mask[..., None] * (colour - img)


def render_face(idp: dict, g: dict, pose: dict, light: dict, size: int):
  """One face [size, size, 3] in [0, 1] from identity params, geometry and pose/light."""
  t = (jnp.arange(size, dtype=jnp.float32) + 0.5) / size
  qy, qx = t[:, None] - geo.CENTRE[1] - pose["shift_y"], t[None, :] - geo.CENTRE[0] - pose["shift_x"]
  s = geo.UNIT * pose["scale"]
  c, sn = jnp.cos(pose["roll"]), jnp.sin(pose["roll"])
  x0 = (c * qx + sn * qy) / s
  y = -(-sn * qx + c * qy) / s
  pix = 1.0 / (size * s)  # one pixel in face units
  b_low = g["head_b_low"]
  # Head outline (its silhouette does not move with the small yaw).
  hw = geo.head_width(y, idp, b_low)
  hb = jnp.where(y > 0, idp["head_b_up"], b_low)
  head_d = _ellipse_sd(x0, y, hw, hb)
  head = _aa(head_d, pix)
  z = geo.surface_depth(x0, y, idp, b_low)
  x = x0 - jnp.sin(pose["yaw"]) * z  # features slide across the surface with yaw
  ax, right = jnp.abs(x), x > 0

  def sel(name):
    return jnp.where(right, g[name + "_r"], g[name + "_l"])

  skin, hair = idp["skin"], idp["hair"]
  img = jnp.broadcast_to(idp["bg"] * (1.08 - 0.2 * t[:, None, None]), (size, size, 3))
  # Shoulders, hair behind the head, neck and ears.
  img = _over(img, _aa(_ellipse_sd(x0, y + 1.75, 1.3, 0.62), pix), idp["shirt"])
  vol = idp["hair_vol"]
  back = jnp.minimum(_ellipse_sd(x0, y - 0.06, idp["head_a"] + vol, idp["head_b_up"] + vol - 0.04),
                     jnp.maximum(jnp.abs(x0) - idp["head_a"] - 0.8 * vol, y - 0.1))
  back = jnp.maximum(back, idp["hair_low"] - y)
  img = _over(img, _aa(back, pix), hair * 0.75)
  neck = jnp.maximum(jnp.abs(x0) - 0.3 * idp["head_a"] / 0.7, y + 0.35)
  img = _over(img, _aa(jnp.maximum(neck, -1.45 - y), pix), skin * 0.75)
  ear = _ellipse_sd(jnp.abs(x0) - hw - 0.01, y - 0.02, 0.08, 0.15)
  img = _over(img, _aa(ear, pix), skin * 0.88)
  img = _over(img, head, skin)

  dark = skin * jnp.array([0.55, 0.45, 0.42])  # shadow colour of creases
  # Cheeks (AU6 raises and rounds them).
  ey, ex = idp["eye_y"], idp["eye_x"]
  cheek = _ellipse_sd(ax - ex - 0.02, y - (ey - 0.27 + 0.07 * sel("cheek")), 0.14, 0.09)
  img = _over(img, jnp.clip(-cheek / 0.08, 0, 1) * (0.12 + 0.3 * sel("cheek")),
              skin * jnp.array([1.0, 0.78, 0.76]))
  # Forehead wrinkles (AU1 centre, AU2 sides) and the vertical furrow between the brows (AU4).
  by = ey + idp["brow_dy"]
  strength = (sel("inner_wrinkle") * jnp.clip(1 - ax / 0.3, 0, 1)
              + sel("outer_wrinkle") * jnp.clip(ax / 0.2, 0, 1))
  for k in range(2):
    arc = by + 0.11 + 0.06 * k + 0.04 * (ax / 0.4) ** 2
    img = _over(img, _band(y, arc, 0.009, ax / 0.38, pix) * jnp.clip(strength, 0, 0.8), dark)
  furrow = _segment_sd(ax, y, (0.035, g["brow_in_y_l"] * 0.5 + g["brow_in_y_r"] * 0.5 - 0.04),
                       (0.045, by + 0.05), 0.009, 0.007)
  img = _over(img, _aa(furrow, pix) * (0.5 * (g["furrow_l"] + g["furrow_r"])), dark)
  # Nose: wrinkles (AU9), side shading, shadow under the tip, nostrils.
  for k in range(2):
    img = _over(img, _band(y, ey - 0.08 - 0.05 * k + 0.03 * (ax / 0.07) ** 2, 0.008, ax / 0.075,
                           pix) * g["nose_wrinkle"], dark)
  ny, nw = idp["nose_y"], idp["nose_w"]
  side = _segment_sd(ax, y, (0.05, ey - 0.13), (nw * 0.95, ny + 0.04), 0.008, 0.014)
  shade = 0.15 + 0.15 * jnp.where(right, light["light_x"], -light["light_x"])
  img = _over(img, _aa(side, pix) * jnp.clip(shade, 0.05, 0.5), dark)
  tip = _ellipse_sd(x, y - ny + 0.012, nw * 1.05, 0.04)
  img = _over(img, jnp.clip(-tip / 0.04, 0, 1) * 0.3, dark)
  nostril = _ellipse_sd(ax - nw * 0.55, y - g["nostril_y"], g["nostril_w"], 0.013)
  img = _over(img, _aa(nostril, pix) * 0.85, skin * 0.3)
  # Nasolabial folds (AU12, AU10, AU9), dimples (AU14), lid creases (AU6, AU7).
  mw, corner = sel("mouth_w"), sel("corner")
  cy = g["mouth_y"] + corner + idp["mouth_curve"]
  fold_pts = [(nw + 0.03, ny + 0.02), (nw + 0.1, 0.5 * (ny + cy) - 0.01), (mw + 0.045, cy - 0.03)]
  fold = _polyline_sd(ax, y, fold_pts, 0.008, 0.012)
  img = _over(img, _aa(fold, pix) * sel("fold"), dark)
  dimple = _ellipse_sd(ax - mw - 0.025, y - cy, 0.012, 0.022)
  img = _over(img, _aa(dimple, pix) * sel("dimple"), dark)
  ew, ecy = sel("eye_w"), sel("eye_cy")
  eu = (ax - ex) / ew
  ev = jnp.clip(1 - eu * eu, 0, 1)
  hu, hl = sel("eye_hu"), sel("eye_hl")
  crease = ecy - hl * ev - 0.03 - 0.015 * ev
  img = _over(img, _band(y, crease, 0.007, eu / 0.9, pix) * sel("lid_crease"), dark)
  chin_y = g["mouth_y"] - g["open_low"] - g["lip_low"] - 0.06 + 0.05 * (x / 0.15) ** 2
  img = _over(img, _band(y, chin_y, 0.01, x / 0.14, pix) * g["chin_crease"], dark)

  # Mouth: lips, the seam between them, the opening and the teeth.
  mu = x / mw
  line, up_in, low_in, up_out, low_out = geo.mouth_curves(mu, corner, g, idp)
  inside = jnp.abs(mu) - 1.0
  lips = jnp.maximum(jnp.maximum(low_out - y, y - up_out), inside * mw)
  img = _over(img, _aa(lips, pix), idp["lips"])
  img = _over(img, _aa(jnp.maximum(jnp.abs(y - line) - 0.006, inside * mw), pix) * 0.8,
              idp["lips"] * 0.35)
  gap = jnp.maximum(jnp.maximum(low_in - y, y - up_in), inside * mw)
  img = _over(img, _aa(gap, pix), jnp.array([0.2, 0.05, 0.06]))
  teeth = jnp.maximum(gap, jnp.minimum(up_in - 0.045 - y, y - low_in - g["teeth_low"]))
  img = _over(img, _aa(teeth, pix) * 0.9, jnp.array([0.93, 0.9, 0.84]))

  # Eyes: white, iris, pupil, then the upper lid line and the lid crease above it.
  top, bottom = ecy + hu * ev, ecy - hl * ev
  eye = jnp.maximum(jnp.maximum(bottom - y, y - top), (jnp.abs(eu) - 1.0) * ew)
  eye_m = _aa(eye, pix)
  img = _over(img, eye_m, jnp.array([0.94, 0.93, 0.9]))
  r = jnp.sqrt((ax - ex) ** 2 + (y - ecy - 0.005) ** 2)
  img = _over(img, eye_m * _aa(r - idp["iris_r"], pix), idp["iris"])
  img = _over(img, eye_m * _aa(r - 0.45 * idp["iris_r"], pix), jnp.array([0.03, 0.03, 0.03]))
  lid = jnp.maximum(jnp.abs(y - top - 0.008) - 0.011, (jnp.abs(eu) - 1.08) * ew)
  img = _over(img, _aa(lid, pix) * 0.9, idp["brow"] * 0.5)
  img = _over(img, _band(y, top + 0.045, 0.006, eu / 0.85, pix) * 0.35, dark)

  # Brows.
  bl, br = geo.brow_points(g, "_l"), geo.brow_points(g, "_r")
  pts = [(jnp.where(right, br[i, 0], bl[i, 0]), jnp.where(right, br[i, 1], bl[i, 1]))
         for i in range(len(bl))]
  brow = _polyline_sd(ax, y, pts, idp["brow_th"], 0.55 * idp["brow_th"])
  img = _over(img, _aa(brow, pix) * 0.95, idp["brow"])

  # Hair over the forehead, above a hairline with a side part.
  hairline = jnp.maximum(idp["hairline"] - 0.45 * ((x - idp["hair_part"] * 0.3) / idp["head_a"]) ** 2,
                         by + 0.15)  # never over the (raised) brows
  front = jnp.maximum(head_d - 0.03, hairline - y)  # a little volume past the outline
  img = _over(img, _aa(front, pix), hair)

  # Lambertian light on the head ellipsoid, then brightness and colour temperature.
  nx, nyy = x0 / hw, y / hb
  nz = jnp.sqrt(jnp.clip(1 - nx * nx - nyy * nyy, 0.0, 1.0))
  lvec = jnp.stack([light["light_x"], light["light_y"], 1.0])
  lvec = lvec / jnp.linalg.norm(lvec)
  norm = jnp.sqrt(nx * nx + nyy * nyy + nz * nz) + 1e-6
  lambert = jnp.clip((nx * lvec[0] + nyy * lvec[1] + nz * lvec[2]) / norm, 0.0, 1.0)
  fg = jnp.clip(1.4 - jnp.sqrt(nx * nx + nyy * nyy) * 0.4, 0, 1)  # fade shading off the head
  shading = light["ambient"] + (1 - light["ambient"]) * lambert
  shading = fg * shading + (1 - fg) * (0.85 + 0.1 * lvec[1])
  tint = jnp.stack([1 + 0.05 * light["warmth"], jnp.ones(()), 1 - 0.05 * light["warmth"]])
  return jnp.clip(img * (shading * light["brightness"])[..., None] * tint, 0.0, 1.0)


@functools.partial(jax.jit, static_argnames="size")
def _render_chunk(idp, au_left, au_right, pose, light, size):
  def one(i, al, ar, p, l):
    g = geo.face_geometry(i, al, ar)
    img = render_face(i, g, p, l, size)
    return jnp.round(img * 255.0).astype(jnp.uint8), geo.landmarks(i, g, p)
  return jax.vmap(one)(idp, au_left, au_right, pose, light)


@jax.jit
def _landmarks_chunk(idp, au_left, au_right, pose):
  return jax.vmap(lambda i, al, ar, p: geo.landmarks(i, geo.face_geometry(i, al, ar), p))(
      idp, au_left, au_right, pose)


def landmarks_batch(idp: dict, au_left, au_right, pose: dict):
  """Landmarks float32 [N, 68, 3] alone (no pixels), for the same inputs as render_batch."""
  n = len(au_left)
  idx = np.minimum(np.arange(max(8, 1 << (n - 1).bit_length())), n - 1)  # few compiled shapes
  args = jax.tree.map(lambda a: np.asarray(a, np.float32)[idx], (idp, au_left, au_right, pose))
  return np.asarray(_landmarks_chunk(*args), np.float32)[:n]


def render_batch(idp: dict, au_left, au_right, pose: dict, light: dict, size: int,
                 chunk: int | None = None):
  """Images uint8 [N, size, size, 3] and landmarks float32 [N, 68, 3] for per-image params.

  Every input is a dict of numpy arrays with leading dimension N (identity params already
  gathered per image). The last chunk is padded so that each size compiles once.
  """
  n = len(au_left)
  chunk = min(chunk or CHUNK, max(8, 1 << (n - 1).bit_length()))  # few distinct shapes, few compiles
  images = np.empty((n, size, size, 3), np.uint8)
  lms = np.empty((n, geo.NUM_LANDMARKS, 3), np.float32)
  args = jax.tree.map(lambda a: np.asarray(a, np.float32), (idp, au_left, au_right, pose, light))
  for start in range(0, n, chunk):
    stop = min(start + chunk, n)
    idx = np.minimum(np.arange(start, start + chunk), n - 1)  # pad by repeating the last
    part = jax.tree.map(lambda a: a[idx], args)
    im, lm = _render_chunk(*part, size=size)
    images[start:stop] = np.asarray(im)[: stop - start]
    lms[start:stop] = np.asarray(lm)[: stop - start]
  return images, lms
