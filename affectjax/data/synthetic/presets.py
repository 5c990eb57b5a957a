"""Named difficulty presets of the synthetic faces, and config.data's knobs that they fix.

config.data.preset:
- 'calibrated' (the default): chosen by model-independent criteria only, measured by
  tools/calibrate_faces.py: a supervised CNN trained on the training identities reaches >= 85 %
  accuracy on held-out identities at 64x64, with >= 300 training identities at the base config's
  num_identities, and the expression's pixel energy reported beside the nuisance (pose and light)
  energy. Never chosen by whether a paper's result reproduces.
- 'hard': the generator as it was before the presets existed, exactly (faint expressions: 30 %
  of faces below intensity 0.3, pose and light jitter carrying most of the pixel energy). With
  num_identities=60 and images_per_identity=100 it reproduces the old default dataset.
- 'custom': the knobs below exactly as set in config.data.
The knobs' base_config() defaults are the calibrated values, so 'custom' starts from 'calibrated'.
Under 'calibrated' or 'hard' a knob set to anything other than its default is an error (it would
be silently ignored). Sizes (num_identities, images_per_identity, image_size) and label_noise are
not part of a preset: they are always as set.
"""
from __future__ import annotations

from affectjax.config import expect
from affectjax.data.synthetic.aus import INTENSITY_THRESHOLD

PRESET_NAMES = ("calibrated", "hard", "custom")

# knob: (one-line condition, check), in config.data; every one is an argument of generate().
KNOBS = {
    "pose_jitter": ("in [0, 3] (a multiple of the hard preset's pose ranges)",
                    lambda v: 0.0 <= v <= 3.0),
    "light_jitter": ("in [0, 2] (a multiple of the hard preset's lighting ranges)",
                     lambda v: 0.0 <= v <= 2.0),
    "intensity_min": (f"in [{INTENSITY_THRESHOLD}, 1] (expressive faces are not neutral)",
                      lambda v: INTENSITY_THRESHOLD <= v <= 1.0),
    "intensity_max": ("in [intensity_min, 1]", None),  # checked against intensity_min below
    "neutral_fraction": ("in [0, 1]", lambda v: 0.0 <= v <= 1.0),
    "compound_fraction": ("in [0, 1]", lambda v: 0.0 <= v <= 1.0),
    "va_noise": ("in [0, 1]", lambda v: 0.0 <= v <= 1.0),
    "zoom": ("in [0.5, 2] (1: the whole head in the frame, >1: the face fills it)",
             lambda v: 0.5 <= v <= 2.0),
    "colour_variety": ("in [0, 1] (1: every skin, hair, eye and background colour)",
                       lambda v: 0.0 <= v <= 1.0),
}

PRESETS = {
    # generate()'s own defaults: the generator before presets existed.
    "hard": {"pose_jitter": 1.0, "light_jitter": 1.0, "intensity_min": INTENSITY_THRESHOLD,
             "intensity_max": 1.0, "neutral_fraction": 0.15, "compound_fraction": 0.2,
             "va_noise": 0.05, "zoom": 1.0, "colour_variety": 1.0},
    # tools/calibrate_faces.py's criteria; the values and measurements are in its docstring.
    "calibrated": {"pose_jitter": 0.5, "light_jitter": 0.5, "intensity_min": 0.5,
                   "intensity_max": 1.0, "neutral_fraction": 0.125, "compound_fraction": 0.1,
                   "va_noise": 0.05, "zoom": 1.4, "colour_variety": 1.0},
}
# Dataset sizes that go with each preset (base_config() uses the calibrated ones).
SIZES = {"calibrated": {"num_identities": 400, "images_per_identity": 15},
         "hard": {"num_identities": 60, "images_per_identity": 100}}


def validate(data, defaults) -> None:
  """config.data's preset and knobs (`defaults`: base_config().data); one line each."""
  expect(data.preset in PRESET_NAMES,
         f"config.data.preset={data.preset!r}: expected one of "
         + ", ".join(repr(p) for p in PRESET_NAMES))
  for name, (what, check) in KNOBS.items():
    value = data[name]
    expect(isinstance(value, (int, float)) and not isinstance(value, bool),
           f"config.data.{name}={value!r} must be a number {what}")
    if check is not None:
      expect(check(value), f"config.data.{name}={value} must be {what}")
  expect(data.intensity_min <= data.intensity_max <= 1.0,
         f"config.data.intensity_max={data.intensity_max} must be in [intensity_min="
         f"{data.intensity_min}, 1]")
  if data.preset != "custom":
    for name in KNOBS:
      expect(data[name] == defaults[name],
             f"config.data.{name}={data[name]} takes effect only with config.data.preset='custom' "
             f"(preset {data.preset!r} sets it to {PRESETS[data.preset][name]})")


def options(data) -> dict:
  """generate()'s difficulty arguments for config.data: the preset's, or the knobs as set."""
  if data.preset == "custom":
    return {name: float(data[name]) for name in KNOBS}
  return dict(PRESETS[data.preset])
