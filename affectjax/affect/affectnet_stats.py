"""AffectNet's per-class valence/arousal statistics (../shared/REFERENCE.md, "AffectNet per-class
valence/arousal statistics"): manually annotated training rows with valid VA.

Contempt's stds are not published: ASSUMPTION, the mean of the published stds (valence 0.163,
arousal 0.151) as REFERENCE.md suggests. A user's own AffectNet copy gives measured ones.
"""
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
