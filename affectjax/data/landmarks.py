"""3D landmark preprocessing of the triplet VAE (triplet_vae.md Sec. IV-A, V-A): pure numpy.

Per face: rotate to the neutral (frontal) pose, centre on the point between the eyes, scale so the
inter-ocular distance is 1 (each eye the centre of its lower-eyelid points); then subtract the
training split's mean. Also the spontaneous data's neutral-frame selection and the person-wise
splits. Landmarks are [..., K, 3]; indices default to the 68-point iBUG-300W layout of the
synthetic faces (BU-3DFE's and BP4D's 83 points need their own index sets).
"""
from __future__ import annotations

import numpy as np

__all__ = ["LOWER_EYELID_68", "RIGID_68", "eye_centres", "normalise", "kabsch_rotation",
           "align_rotation", "undo_rotation", "synthetic_pose_rotation", "preprocess", "fit_mean",
           "subtract_mean", "flatten", "select_neutral_frames", "person_splits"]

# iBUG-300W: eyes 36-41 (image left) and 42-47 (image right); 40, 41 and 46, 47 the lower lids.
LOWER_EYELID_68 = ((40, 41), (46, 47))
# Points that expressions barely move: nose bridge and base (27-35), the eye corners.
RIGID_68 = (27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 39, 42, 45)


def eye_centres(landmarks, eyes=LOWER_EYELID_68):
  """(left, right) eye positions [..., 3]: each the centre of its lower-eyelid points (Sec. V-A)."""
  x = np.asarray(landmarks, np.float64)
  return x[..., list(eyes[0]), :].mean(-2), x[..., list(eyes[1]), :].mean(-2)


def normalise(landmarks, eyes=LOWER_EYELID_68) -> np.ndarray:
  """Centres on the point between the eyes and scales the inter-ocular distance to 1 (Sec. V-A)."""
  x = np.asarray(landmarks, np.float64)
  left, right = eye_centres(x, eyes)
  iod = np.linalg.norm(right - left, axis=-1)
  if np.any(iod <= 0) or not np.all(np.isfinite(iod)):
    raise ValueError("normalise: a face has coincident or non-finite eye centres")
  return (x - 0.5 * (left + right)[..., None, :]) / iod[..., None, None]


def kabsch_rotation(source, target, indices=None) -> np.ndarray:
  """The proper rotation R [..., 3, 3] that best maps centred source points onto centred target.

  Least squares over the points `indices` (all when None):
  min_R sum_i ||R (s_i - mean s) - (t_i - mean t)||^2 with det R = +1 (Kabsch).
  source, target: [..., K, 3], broadcast against each other.
  """
  s = np.asarray(source, np.float64)
  t = np.asarray(target, np.float64)
  if indices is not None:
    s, t = s[..., list(indices), :], t[..., list(indices), :]
  s = s - s.mean(-2, keepdims=True)
  t = t - t.mean(-2, keepdims=True)
  h = np.einsum("...ki,...kj->...ij", s, t)  # cross-covariance sum_k s_k t_k^T
  u, _, vt = np.linalg.svd(h)
  v = np.swapaxes(vt, -1, -2)
  d = np.sign(np.linalg.det(v @ np.swapaxes(u, -1, -2)))
  d = np.where(d == 0, 1.0, d)
  fix = np.ones(h.shape[:-1])
  fix[..., -1] = d
  return v @ (fix[..., :, None] * np.swapaxes(u, -1, -2))


def align_rotation(landmarks, reference, indices=None) -> np.ndarray:
  """Each face rotated about its centroid (over `indices`) into the pose of `reference` (Kabsch)."""
  x = np.asarray(landmarks, np.float64)
  r = kabsch_rotation(x, reference, indices)
  pts = x if indices is None else x[..., list(indices), :]
  c = pts.mean(-2, keepdims=True)
  return np.einsum("...ij,...kj->...ki", r, x - c) + c


def undo_rotation(landmarks, rotation) -> np.ndarray:
  """Rotates faces back to the frontal pose given pose estimates R (frontal -> observed): R^T x."""
  return np.einsum("...ji,...kj->...ki", np.asarray(rotation, np.float64),
                   np.asarray(landmarks, np.float64))


def synthetic_pose_rotation(roll, yaw) -> np.ndarray:
  """The synthetic faces' pose (factors 'roll', 'yaw') as rotations [..., 3, 3] of their landmarks.

  The renderer (data/synthetic/geometry.to_image) turns the frontal face by yaw about the vertical
  axis, then by roll in the image plane; these are the data set's "pose estimates" (Sec. V-A).
  """
  roll, yaw = np.asarray(roll, np.float64), np.asarray(yaw, np.float64)
  cy, sy, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(roll), np.sin(roll)
  zero, one = np.zeros_like(cy), np.ones_like(cy)
  r_yaw = np.stack([np.stack([cy, zero, sy], -1), np.stack([zero, one, zero], -1),
                    np.stack([-sy, zero, cy], -1)], -2)
  r_roll = np.stack([np.stack([cr, -sr, zero], -1), np.stack([sr, cr, zero], -1),
                     np.stack([zero, zero, one], -1)], -2)
  return r_roll @ r_yaw


def preprocess(landmarks, *, rotation=None, reference=None, rigid=RIGID_68,
               eyes=LOWER_EYELID_68) -> np.ndarray:
  """Sec. V-A for faces [..., K, 3], before the training-mean subtraction (`subtract_mean`).

  Pose: with `rotation` (pose estimates, frontal -> observed) the faces are rotated back (the
  paper's procedure); else with `reference` (e.g. the person's neutral face) each face is rotated
  onto the reference's pose by Kabsch over the `rigid` points; with neither, no rotation. Then
  centred on the point between the eyes and scaled to an inter-ocular distance of 1.
  """
  x = np.asarray(landmarks, np.float64)
  if rotation is not None:
    x = undo_rotation(x, rotation)
  elif reference is not None:
    x = align_rotation(x, reference, rigid)
  return normalise(x, eyes)


def fit_mean(train_landmarks) -> np.ndarray:
  """The training split's mean face along each dimension, [K, 3] (Sec. V-A)."""
  return np.asarray(train_landmarks, np.float64).mean(0)


def subtract_mean(landmarks, mean) -> np.ndarray:
  """Centres faces (and neutral faces) on the training mean from `fit_mean`."""
  return np.asarray(landmarks, np.float64) - np.asarray(mean, np.float64)


def flatten(landmarks) -> np.ndarray:
  """[N, K, 3] -> [N, 3K] float32 feature vectors (83 points -> 249, as the paper's networks)."""
  x = np.asarray(landmarks, np.float32)
  return x.reshape(len(x), -1)


def select_neutral_frames(landmarks, identity, au_absent) -> np.ndarray:
  """Each frame's person's neutral frame, int [N] (-1 where the person has none) (Sec. V-A).

  Spontaneous data (BP4D) marks no neutral face: per person, among the frames with every AU
  absent, the one with the least summed Euclidean distance to the person's other such frames.
  au_absent: bool [N] (all AUs absent), or AU occurrences [N, A] (absent = all exactly 0; NaN,
  unknown, is not absent).
  """
  x = np.asarray(landmarks, np.float64)
  x = x.reshape(len(x), -1)
  identity = np.asarray(identity).reshape(-1)
  calm = np.asarray(au_absent)
  if calm.ndim == 2:
    calm = np.all(calm == 0, axis=1)
  calm = calm.astype(bool)
  out = np.full(len(x), -1, np.int64)
  for person in np.unique(identity):
    frames = np.flatnonzero((identity == person) & calm)
    if len(frames) == 0:
      continue
    f = x[frames]
    sq = np.sum(f * f, 1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * f @ f.T, 0.0)  # Gram form: no [m, m, D]
    np.fill_diagonal(d2, 0.0)
    out[identity == person] = frames[int(np.argmin(np.sqrt(d2).sum(1)))]
  return out


def person_splits(identity, sizes=(0.8, 0.1, 0.1), seed: int = 0) -> tuple:
  """Person-wise splits (Sec. IV-A): a bool mask [N] per split, no person in two splits.

  sizes: fractions of the people (posed: 0.8, 0.1, 0.1 = 80/10/10 of 100) or integer counts
  (spontaneous: 25, 8, 8 of 41). Fractions are rounded by largest remainder so that they add up
  to all people; counts may leave people out but not exceed them. People are shuffled by `seed`.
  """
  identity = np.asarray(identity).reshape(-1)
  people = np.unique(identity)
  p = len(people)
  sizes = list(sizes)
  if all(isinstance(s, (int, np.integer)) for s in sizes):
    counts = np.asarray(sizes, np.int64)
    if np.any(counts < 0) or counts.sum() > p:
      raise ValueError(f"person_splits: counts {sizes} need {counts.sum()} people, have {p}")
  else:
    frac = np.asarray(sizes, np.float64)
    if np.any(frac < 0) or frac.sum() > 1 + 1e-9:
      raise ValueError(f"person_splits: fractions {sizes} must be >= 0 and add up to <= 1")
    raw = frac * p
    counts = np.floor(raw).astype(np.int64)
    total = int(round(frac.sum() * p))
    extra = np.argsort(-(raw - counts), kind="stable")[: max(0, total - counts.sum())]
    counts[extra] += 1
  order = np.random.default_rng(seed).permutation(people)
  bounds = np.concatenate([[0], np.cumsum(counts)])
  return tuple(np.isin(identity, order[a:b]) for a, b in zip(bounds[:-1], bounds[1:]))
