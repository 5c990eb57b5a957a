"""AffectNet's per-class valence/arousal statistics (../shared/REFERENCE.md, "AffectNet per-class
valence/arousal statistics"): manually annotated training rows with valid VA.

Contempt's stds are not published: ASSUMPTION, the mean of the published stds (valence 0.163,
arousal 0.151) as REFERENCE.md suggests. A user's own AffectNet copy gives measured ones.

`published_gmm` turns them into the GMM parameters pi_k, mu_k, Sigma_k of dual_domain_fusion.md
Eq. 1 that the paper borrows for Aff-Wild (Sec. 4.1); `load_gmm` reads the same parameters
computed from a user's AffectNet copy instead.
"""
import os

import numpy as np

from affectjax.affect.emotions import EMOTIONS

_ROWS = {  # class: (valence mean, valence std, arousal mean, arousal std)
    "neutral": (-0.062719, 0.183525, -0.019574, 0.147558),
    "happy": (0.664328, 0.162671, 0.070280, 0.166012),
    "sad": (-0.637006, 0.221066, -0.257004, 0.141985),
    "surprise": (0.180444, 0.174439, 0.689328, 0.157603),
    "fear": (-0.125745, 0.071007, 0.766180, 0.136925),
    "disgust": (-0.693719, 0.151534, 0.457344, 0.110895),
    "anger": (-0.452736, 0.174105, 0.566778, 0.197566),
    "contempt": (-0.514574, 0.163, 0.582840, 0.151),  # stds assumed (see module docstring)
}

# [8, 2] arrays in EMOTIONS order: (valence, arousal) means and stds.
VA_MEANS = np.array([[_ROWS[e][0], _ROWS[e][2]] for e in EMOTIONS], np.float64)
VA_STDS = np.array([[_ROWS[e][1], _ROWS[e][3]] for e in EMOTIONS], np.float64)
# Class 8 ("none") has a published centre only.
NONE_VA_MEAN = np.array([0.122512, -0.163018])

# Manually annotated training images per class (AffectNet's released training.csv, classes 0-7,
# every one with VA; as tabulated by Mollahosseini et al. 2017 and its users). Their sum, 287,651,
# is the training-set size configs/dual_domain.py schedules; not in REFERENCE.md.
TRAIN_COUNTS = np.array([74874, 134415, 25459, 14090, 6378, 3803, 24882, 3750], np.float64)


def published_gmm(num_classes: int = 8):
  """(priors [C], means [C, 2], covs [C, 2, 2]) float64 of AffectNet's training set from the
  published numbers: pi_k = N_k / N (TRAIN_COUNTS), mu_k the published means, Sigma_k =
  diag(std_v^2, std_a^2). ASSUMPTION: zero valence-arousal correlation (only stds are published);
  contempt's stds as in the module docstring. Over all rows of a class (not Sec. 4.2's
  within-one-std subset, which needs the data)."""
  if not 1 <= num_classes <= len(EMOTIONS):
    raise ValueError(f"AffectNet's published statistics cover {len(EMOTIONS)} classes, not {num_classes}")
  counts = TRAIN_COUNTS[:num_classes]
  covs = np.stack([np.diag(np.square(s)) for s in VA_STDS[:num_classes]])
  return counts / counts.sum(), VA_MEANS[:num_classes].copy(), covs


def load_gmm(path: str, num_classes: int, data_config=None, reg_covar: float = 1e-6):
  """(priors, means, covs) float64 computed from a user's AffectNet: `path` is either a .npz with
  arrays priors [C], means [C, 2], covs [C, 2, 2] (e.g. the class_statistics.npz a dual-domain
  run on AffectNet writes: Sec. 4.2's within-one-std statistics), or AffectNet's manual_dir, whose
  builder computes them over the training split when it prepares the dataset (data/builders,
  metadata 'va_stats'; prepared once, under data_config's tfds_dir, at data_config's image size).
  reg_covar is added to the covariances' diagonal (as mixed_labels.class_statistics), so a class
  of identical points stays positive definite. Raises affectjax.errors.DataError (one line) when
  the file or the statistics are unusable."""
  from affectjax.errors import DataError
  if os.path.isdir(path):
    import copy
    from affectjax.data import builders
    dc = copy.deepcopy(data_config)  # the run's tfds_dir, image size and classes; AffectNet's options
    dc.name, dc.manual_dir, dc.builder_options = "affectnet", path, ""
    stats = builders.load_splits(dc).metadata.get("va_stats")
    if not stats:
      raise DataError(f"{path}: the AffectNet builder recorded no per-class VA statistics")
  else:
    try:
      f = np.load(path, allow_pickle=False)
      if not hasattr(f, "files"):  # a .npy: one array, not the three
        raise ValueError("one array, not an archive")
      with f:
        stats = {k: np.asarray(f[k], np.float64) for k in ("priors", "means", "covs")}
    except (OSError, ValueError, KeyError) as e:
      raise DataError(f"{path}: expected an AffectNet manual_dir or a .npz with arrays priors [C], "
                      f"means [C, 2], covs [C, 2, 2] ({type(e).__name__}: {e})") from None
  priors, means, covs = (np.asarray(stats[k], np.float64) for k in ("priors", "means", "covs"))
  if priors.shape != (num_classes,) or means.shape != (num_classes, 2) or covs.shape != (num_classes, 2, 2):
    raise DataError(f"{path}: statistics of shapes priors {priors.shape}, means {means.shape}, covs "
                    f"{covs.shape}; expected ({num_classes},), ({num_classes}, 2), ({num_classes}, 2, 2)")
  return priors, means, covs + reg_covar * np.eye(2)
