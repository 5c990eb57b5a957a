"""The categorical emotion list of affectjax: AffectNet's ids 0-7, the order used everywhere.

Label-space math (affectjax.affect) owns it; affectjax.data.example re-exports it.
"""
from __future__ import annotations

EMOTIONS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt")
NUM_EMOTIONS = len(EMOTIONS)
