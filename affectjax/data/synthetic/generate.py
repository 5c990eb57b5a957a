"""The synthetic affect faces dataset: `generate` draws the ground truth and renders it."""
from __future__ import annotations

import numpy as np

from affectjax.data.example import EMOTIONS
from affectjax.data.synthetic import aus as aus_lib
from affectjax.data.synthetic import faces, geometry, render

FACTOR_NAMES = (aus_lib.AU_NAMES + tuple(f"mix_{e}" for e in EMOTIONS)
                + ("intensity", "valence", "arousal", "clean_label")
                + faces.POSE_NAMES + faces.LIGHT_NAMES)


def synthesize(identity_params: dict, identity_index, mix, intensity, pose: dict, light: dict,
               image_size: int, jitter=None, prototypes: str = "default"):
  """Renders given expressions: (images uint8, landmarks, au_left, au_right).

  `identity_index` [N] picks each image's row of `identity_params`; `jitter` [N, 17] scales each
  AU (ones when None).
  """
  n = len(identity_index)
  jitter = np.ones((n, aus_lib.NUM_AUS), np.float32) if jitter is None else jitter
  au_l, au_r = aus_lib.action_units(np.asarray(mix, np.float32), np.asarray(intensity, np.float32),
                                    jitter, prototypes)
  idp = {k: v[identity_index] for k, v in identity_params.items()}
  images, lms = render.render_batch(idp, au_l, au_r, pose, light, image_size)
  return images, lms, au_l, au_r


def draw(seed: int, num_identities: int, images_per_identity: int, *, label_noise: float = 0.0,
         compound_fraction: float = 0.2, neutral_fraction: float = 0.15, va_noise: float = 0.05,
         identity_offset: int = 0, pose_jitter: float = 1.0, light_jitter: float = 1.0,
         intensity_min: float = aus_lib.INTENSITY_THRESHOLD, intensity_max: float = 1.0,
         zoom: float = 1.0, colour_variety: float = 1.0) -> dict:
  """The ground truth of `generate` before rendering (same arguments, same draws).

  Returns {ids (identity params), identity [N] (index into ids), mix, intensity, jitter, pose,
  light (the rendered pose and light, zoom included), clean, label, va_true, va, zoom}.
  """
  n = num_identities * images_per_identity
  identity = np.repeat(np.arange(num_identities), images_per_identity)
  ids = faces.sample_identities(seed, num_identities, identity_offset, colour_variety)
  rng = np.random.default_rng([seed, identity_offset, 22])
  mix, intensity = aus_lib.sample_expressions(rng, n, compound_fraction, neutral_fraction,
                                              intensity_min, intensity_max)
  jitter = rng.uniform(1 - aus_lib.AU_JITTER, 1 + aus_lib.AU_JITTER, (n, aus_lib.NUM_AUS))
  z = rng.standard_normal((n, 2))
  pose = faces.zoomed(faces.sample_pose(rng, n, pose_jitter), zoom, geometry.UNIT)
  light = faces.sample_light(rng, n, light_jitter)
  clean = aus_lib.clean_labels(mix, intensity)
  label = aus_lib.noisy_labels(rng, clean, label_noise)
  va_true = aus_lib.valence_arousal(mix, intensity, z)
  va = np.clip(va_true + va_noise * rng.standard_normal((n, 2)), -1, 1).astype(np.float32)
  return {"ids": ids, "identity": identity, "mix": mix, "intensity": intensity,
          "jitter": jitter.astype(np.float32), "pose": pose, "light": light, "clean": clean,
          "label": label, "va_true": va_true, "va": va, "zoom": zoom}


def generate(seed: int, num_identities: int, images_per_identity: int, image_size: int = 64, *,
             label_noise: float = 0.0, compound_fraction: float = 0.2,
             neutral_fraction: float = 0.15, va_noise: float = 0.05, identity_offset: int = 0,
             pose_jitter: float = 1.0, light_jitter: float = 1.0,
             prototypes: str = "default", intensity_min: float = aus_lib.INTENSITY_THRESHOLD,
             intensity_max: float = 1.0, zoom: float = 1.0,
             colour_variety: float = 1.0) -> dict[str, np.ndarray]:
  """Synthetic affect faces with exact ground truth, deterministic from `seed`.

  N = num_identities * images_per_identity images, grouped by identity. Returns numpy arrays:
    image             uint8 [N, H, W, 3]
    label             int32 [N]   observed label: clean label (argmax of the mixture, neutral when
                                  intensity < aus.INTENSITY_THRESHOLD) replaced with probability
                                  `label_noise` by a confusable class (aus.CONFUSION)
    va                float32 [N, 2] valence, arousal in [-1, 1]: the true VA
                                  (aus.valence_arousal: centre c_n + t (sum_e w_e c_e - c_n) around
                                  AffectNet's class centres with their stds as spread) plus
                                  N(0, va_noise^2) annotation noise, clipped
    landmarks         float32 [N, 68, 3] iBUG-300W order; x, y in image fractions (x / W, y / H
                                  with y down, pixel centres at (i + 0.5) / H), z depth towards the
                                  camera in image widths (0 at the head outline)
    neutral_landmarks float32 [N, 68, 3] the same person and pose with no expression
    identity          int32 [N]   identity_offset + identity index
    factors           float32 [N, len(FACTOR_NAMES)] AU intensities (the stronger face half),
                                  mixture weights, intensity, true VA, clean label, pose (as
                                  rendered, zoom included), light
  Compound images (`compound_fraction`) mix two emotions; `neutral_fraction` of the images have
  an intensity below the threshold, the others U(intensity_min, intensity_max). `pose_jitter` and
  `light_jitter` scale the nuisance ranges (0 = frontal, fixed light); `zoom` > 1 makes the face
  fill more of the frame (about the middle of its features); `colour_variety` scales the spread
  of skin, hair, eye, background and shirt colours; `prototypes` is "default" or "variant"
  (aus.PROTOTYPES). The defaults are the 'hard' preset (presets.py).
  """
  p = draw(seed, num_identities, images_per_identity, label_noise=label_noise,
           compound_fraction=compound_fraction, neutral_fraction=neutral_fraction,
           va_noise=va_noise, identity_offset=identity_offset, pose_jitter=pose_jitter,
           light_jitter=light_jitter, intensity_min=intensity_min, intensity_max=intensity_max,
           zoom=zoom, colour_variety=colour_variety)
  ids, identity, pose, light = p["ids"], p["identity"], p["pose"], p["light"]
  images, lms, au_l, au_r = synthesize(ids, identity, p["mix"], p["intensity"], pose, light,
                                       image_size, p["jitter"], prototypes)
  zero_au = np.zeros_like(au_l)
  neutral_lms = render.landmarks_batch({k: v[identity] for k, v in ids.items()}, zero_au, zero_au,
                                       pose)
  factors = np.concatenate(
      [np.maximum(au_l, au_r), p["mix"], p["intensity"][:, None], p["va_true"],
       p["clean"][:, None]]
      + [pose[k][:, None] for k in faces.POSE_NAMES]
      + [light[k][:, None] for k in faces.LIGHT_NAMES], -1).astype(np.float32)
  return {
      "image": images, "label": p["label"], "va": p["va"], "landmarks": lms,
      "neutral_landmarks": neutral_lms, "identity": (identity + identity_offset).astype(np.int32),
      "factors": factors,
  }


def neutral_renders(params: dict, image_size: int, keep_nuisance: bool = True) -> np.ndarray:
  """The faces of `draw`'s `params` rendered with no expression: uint8 [N, H, W, 3].

  keep_nuisance: each image's own pose and light jitter (the same face made neutral), else the
  frontal pose and default light (zoom kept), so that the difference between the two is the
  nuisance (pose and lighting) part of an image.
  """
  n = len(params["identity"])
  pose, light = params["pose"], params["light"]
  if not keep_nuisance:
    pose, light = faces.frontal(n)
    pose = faces.zoomed(pose, params["zoom"], geometry.UNIT)
  zero = np.zeros((n, len(EMOTIONS)), np.float32)
  images, _, _, _ = synthesize(params["ids"], params["identity"], zero, np.zeros(n, np.float32),
                               pose, light, image_size)
  return images


def neutral_faces(seed: int, num_identities: int, image_size: int = 64,
                  identity_offset: int = 0, zoom: float = 1.0,
                  colour_variety: float = 1.0) -> np.ndarray:
  """Each identity's frontal neutral face under default light: uint8 [num_identities, H, W, 3]."""
  ids = faces.sample_identities(seed, num_identities, identity_offset, colour_variety)
  pose, light = faces.frontal(num_identities)
  pose = faces.zoomed(pose, zoom, geometry.UNIT)
  zero = np.zeros((num_identities, len(EMOTIONS)), np.float32)
  images, _, _, _ = synthesize(ids, np.arange(num_identities), zero,
                               np.zeros(num_identities, np.float32), pose, light, image_size)
  return images
