"""Config defaults shared by every method, and up-front validation.

Method configs (configs/<method>.py) start from `base_config()` and add their own `model` and
`loss` sections. Every field has a default that runs on the embedded synthetic data.
"""
from __future__ import annotations

import os

import ml_collections

from affectjax.errors import UserError

def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.method = ""
  c.variant = ""
  c.seed = 0

  c.data = ml_collections.ConfigDict()
  c.data.name = "synthetic_faces"
  c.data.image_size = 64
  c.data.num_classes = 8  # emotions used (7 drops contempt), in affectjax.data.example.EMOTIONS order
  c.data.test_fraction = 0.2  # held-out share of identities
  c.data.cache_dir = ""  # '' -> $AFFECTJAX_CACHE or ~/.cache/affectjax
  # Real datasets (issue "Real datasets"): the user's own copy and where TFDS keeps its build.
  c.data.manual_dir = ""
  c.data.tfds_dir = ""
  c.data.builder_options = ""  # JSON of dataset options, e.g. '{"keep_none": true}' (docs/datasets.md)
  # Synthetic faces: size and difficulty of the embedded default.
  c.data.num_identities = 400  # 320 training identities at test_fraction 0.2
  c.data.images_per_identity = 15
  c.data.label_noise = 0.0
  # calibrated (default) | hard (the generator before presets, exactly) | custom (the knobs as
  # set); affectjax/data/synthetic/presets.py. The knobs' defaults are the calibrated values.
  c.data.preset = "calibrated"
  c.data.pose_jitter = 0.5  # multiple of the hard preset's pose ranges (roll, yaw, shift, scale)
  c.data.light_jitter = 0.5  # multiple of the hard preset's lighting ranges
  c.data.intensity_min = 0.5  # expressive faces' intensity ~ U(intensity_min, intensity_max)
  c.data.intensity_max = 1.0
  c.data.neutral_fraction = 0.125  # faces with intensity below the neutral threshold (0.15)
  c.data.compound_fraction = 0.1  # faces mixing a second emotion (weight 0.2-0.45)
  c.data.va_noise = 0.05  # std of the annotation noise added to the true VA
  c.data.zoom = 1.4  # >1: the face fills more of the frame (1: the whole head and shoulders)
  c.data.colour_variety = 1.0  # spread of skin, hair, eye, background and shirt colours
  c.data.view = "full"  # which annotations the split exposes (data/sources.py VIEWS)
  c.data.va_levels = 0  # afew_like view: VA quantised to round(levels * va); 0 means 10
  # Input pipeline (small defaults: 2-core machines).
  c.data.num_parallel_calls = 2
  c.data.prefetch = 2

  # Evaluations of the representation added to the method's own (affectjax/evaluate/registry.py):
  # {name: ConfigDict(type='linear_probe' | 'ridge_r2' | 'identity_leakage', feature, target)}
  c.evals = ml_collections.ConfigDict()

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adam"
  c.optim.lr = 1e-3
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.weight_decay = 0.0
  c.optim.eps = 1e-8
  c.optim.schedule = "constant"  # constant | cosine | linear_decay (affectjax/optim.py)
  c.optim.warmup_steps = 0  # linear warm-up from 0, in steps
  # linear_decay: constant until decay_start (a fraction of train.num_steps), then linear to
  # final_lr_fraction * lr at the last step (StarGAN's schedule: 0.5 and 0)
  c.optim.decay_start = 0.5
  c.optim.final_lr_fraction = 0.0
  c.optim.grad_clip = 0.0  # global-norm clip; 0 disables

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64  # global batch, divisible by the number of devices
  c.train.num_steps = 2000
  c.train.log_every = 50
  c.train.checkpoint_every = 500
  c.train.eval_every = 0  # 0: evaluate only at the end
  c.train.keep_checkpoints = 2  # newest checkpoints kept (>= 1: a run can always be resumed)
  c.train.progress = True
  c.train.report = True  # write the method's tables and figures at the end
  c.train.num_seeds = 1  # K > 1: K independent models in one program (a seed axis)
  # Seed i of this program is seed first_seed + i of its experiment (root key and data order
  # config.seed + first_seed + i; the data set stays config.seed's): more seeds for a finished run
  c.train.first_seed = 0
  # K > 1: every seed reads config.seed's data order (one read, broadcast) instead of its own
  c.train.shared_data_order = False
  # K > 1: how the step runs the seeds. 'vmap' batches them (weights too: XLA:CPU turns the
  # convolutions into grouped ones, 7.4x one seed's time for K = 3 in LeVAsa); 'unroll' runs
  # K one-seed steps one after another in the same program; 'auto': unroll on CPU, vmap elsewhere
  c.train.seed_map = "auto"
  # Resuming a workdir with another method, variant, seed, model, loss or data is refused
  # (affectjax/workdir.py); True lets a run continue another experiment's weights on purpose.
  c.train.allow_config_change = False
  return c


def set_num_steps(config, steps: int) -> None:
  """A shorter (or longer) run: train.num_steps, with a checkpoint at the end at the latest."""
  config.train.num_steps = steps
  config.train.checkpoint_every = min(config.train.checkpoint_every, steps)
  if "epochs" in config.train:  # a step count given outright replaces a schedule in epochs
    config.train.epochs = 0


def cache_dir_of(data) -> str:
  """Where generated data is cached: config.data.cache_dir, $AFFECTJAX_CACHE or ~/.cache/affectjax."""
  return (data.cache_dir or os.environ.get("AFFECTJAX_CACHE")
          or os.path.join(os.path.expanduser("~"), ".cache", "affectjax"))


class ConfigError(UserError, ValueError):
  """A config value that cannot run; raised before anything is generated, read or compiled."""


def get_path(config, path: str):
  node = config
  for part in path.split("."):
    node = node[part]
  return node


def expect(cond: bool, msg: str) -> None:
  if not cond:
    raise ConfigError(msg)


def expect_one_of(config, path: str, choices) -> None:
  """config.<path> must be one of `choices`: `config.X=VALUE: expected one of A, B`."""
  value = get_path(config, path)
  expect(value in tuple(choices),
         f"config.{path}={value!r}: expected one of {', '.join(repr(c) for c in choices)}")


def check_choices(config, choices: dict) -> None:
  """expect_one_of for every {path: choices} entry whose path the config has."""
  for path, allowed in choices.items():
    try:
      get_path(config, path)
    except (KeyError, AttributeError):
      continue
    expect_one_of(config, path, allowed)


# Enumerated fields of base_config(): {path: allowed values}; methods add their own CHOICES.
CHOICES = {
    "data.num_classes": (7, 8),
    "data.preset": ("calibrated", "hard", "custom"),  # data/synthetic/presets.py PRESET_NAMES
    "optim.name": ("adam", "sgd"),
    "optim.schedule": ("constant", "cosine", "linear_decay", "step_decay"),
}


# Fields named like these are counts that must be positive integers, in every section of every
# method's config (eval.batch_size, triplets.batch_size, eval.ceiling_max_steps, ...).
POSITIVE_SUFFIXES = ("batch_size", "num_steps", "max_steps")


def check_counts(config, prefix: str = "") -> None:
  """Every field whose name ends in one of POSITIVE_SUFFIXES is a positive integer."""
  for key, value in config.items():
    path = f"{prefix}{key}"
    if hasattr(value, "items"):
      check_counts(value, path + ".")
    elif key.endswith(POSITIVE_SUFFIXES) and not isinstance(value, bool):
      expect(isinstance(value, int) and value > 0,
             f"config.{path}={value!r} must be a positive integer")


def validate(config, num_devices: int) -> None:
  """The shared fields (config.method and config.data.name are checked by their owners,
  affectjax.methods.validate and affectjax.data.sources.validate); one clear line each."""
  for path in ("data.image_size", "train.batch_size", "train.num_steps", "train.log_every",
               "train.num_seeds"):
    value = get_path(config, path)
    expect(isinstance(value, int) and value > 0, f"config.{path}={value!r} must be a positive integer")
  for path in ("train.checkpoint_every", "train.eval_every", "optim.warmup_steps", "seed",
               "train.first_seed"):
    value = get_path(config, path)
    expect(isinstance(value, int) and value >= 0, f"config.{path}={value!r} must be an integer >= 0")
  expect(isinstance(config.train.keep_checkpoints, int) and config.train.keep_checkpoints >= 1,
         f"config.train.keep_checkpoints={config.train.keep_checkpoints!r} must be an integer >= 1 "
         "(the newest checkpoints kept; with none a run could not be resumed)")
  check_counts(config)
  expect(config.train.batch_size % num_devices == 0,
         f"config.train.batch_size={config.train.batch_size} is not divisible by the {num_devices} devices")
  check_choices(config, CHOICES)
  expect(isinstance(config.train.shared_data_order, bool),
         f"config.train.shared_data_order={config.train.shared_data_order!r} must be True or False")
  o = config.optim
  expect(o.lr > 0, f"config.optim.lr={o.lr} must be > 0")
  for name in ("b1", "b2", "decay_start", "final_lr_fraction"):
    expect(0.0 <= o[name] <= 1.0, f"config.optim.{name}={o[name]} must be in [0, 1]")
  for name in ("weight_decay", "grad_clip"):
    expect(o[name] >= 0, f"config.optim.{name}={o[name]} must be >= 0")
  expect(o.eps > 0, f"config.optim.eps={o.eps} must be > 0")
  if o.schedule == "step_decay":
    expect(isinstance(o.get("decay_every"), int) and o.get("decay_every") > 0,
           f"config.optim.decay_every={o.get('decay_every')!r} must be a positive integer (steps)")
    expect(0.0 < o.get("decay_factor", 0.0) <= 1.0,
           f"config.optim.decay_factor={o.get('decay_factor')!r} must be in (0, 1]")
  expect(o.warmup_steps < config.train.num_steps,
         f"config.optim.warmup_steps={o.warmup_steps} must be below train.num_steps="
         f"{config.train.num_steps}")
