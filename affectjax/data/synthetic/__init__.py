"""The embedded default dataset: procedural synthetic affect faces with exact ground truth.

DESIGN.md, "The embedded default: synthetic affect faces". Expressions are action units from
EMFACS-style prototypes (aus.py), rendered by a vectorised JAX renderer (geometry.py, render.py).
"""
from affectjax.data.synthetic.aus import AU_NAMES, INTENSITY_THRESHOLD
from affectjax.data.synthetic.cache import VERSION, load_or_generate
from affectjax.data.synthetic.figures import emotion_grid, save_emotion_grid
from affectjax.data.synthetic.generate import FACTOR_NAMES, generate, neutral_faces
from affectjax.data.synthetic.geometry import NUM_LANDMARKS

__all__ = ["AU_NAMES", "FACTOR_NAMES", "INTENSITY_THRESHOLD", "NUM_LANDMARKS", "VERSION",
           "emotion_grid", "generate", "load_or_generate", "neutral_faces", "save_emotion_grid"]
