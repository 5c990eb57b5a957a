"""Config defaults shared by every method, and up-front validation.

Method configs (configs/<method>.py) start from `base_config()` and add their own `model` and
`loss` sections. Every field has a default that runs on the embedded synthetic data.
"""
from __future__ import annotations

import os

import ml_collections

# Data sources that affectjax can build (data/sources.py); real datasets register in builders/.
SYNTHETIC_DATASETS = ("synthetic_faces",)


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
  c.data.num_identities = 60
  c.data.images_per_identity = 100
  c.data.label_noise = 0.0
  c.data.view = "full"  # which annotations the split exposes (data/sources.py VIEWS)
  c.data.va_levels = 0  # afew_like view: VA quantised to round(levels * va); 0 means 10
  # LeVAsa Algorithm 1: VA for a labels-only dataset sampled from a reference set's ellipses.
  c.data.annotation_transfer = ml_collections.ConfigDict()
  c.data.annotation_transfer.enabled = False
  # auto: the AffectNet-like synthetic set on synthetic data, AffectNet's published stats otherwise
  c.data.annotation_transfer.reference = "auto"  # | synthetic_faces | affectnet_published
  c.data.annotation_transfer.levels = 0  # >0: discretise round(levels * va) / levels (Alg. 1 line 5)
  # Input pipeline (small defaults: 2-core machines).
  c.data.num_parallel_calls = 2
  c.data.prefetch = 2

  c.optim = ml_collections.ConfigDict()
  c.optim.name = "adam"
  c.optim.lr = 1e-3
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.weight_decay = 0.0
  c.optim.schedule = "constant"  # constant | cosine | linear_decay
  c.optim.warmup_steps = 0
  c.optim.grad_clip = 0.0  # global-norm clip; 0 disables

  c.train = ml_collections.ConfigDict()
  c.train.batch_size = 64  # global batch, divisible by the number of devices
  c.train.num_steps = 2000
  c.train.log_every = 50
  c.train.checkpoint_every = 500
  c.train.eval_every = 0  # 0: evaluate only at the end
  c.train.keep_checkpoints = 2
  c.train.progress = True
  c.train.report = True  # write the method's tables and figures at the end
  return c


def set_num_steps(config, steps: int) -> None:
  """A shorter (or longer) run: train.num_steps, with a checkpoint at the end at the latest."""
  config.train.num_steps = steps
  config.train.checkpoint_every = min(config.train.checkpoint_every, steps)


def cache_dir_of(data) -> str:
  """Where generated data is cached: config.data.cache_dir, $AFFECTJAX_CACHE or ~/.cache/affectjax."""
  return (data.cache_dir or os.environ.get("AFFECTJAX_CACHE")
          or os.path.join(os.path.expanduser("~"), ".cache", "affectjax"))


class ConfigError(ValueError):
  """A config value that cannot run; raised before anything is compiled."""


def validate(config, num_devices: int) -> None:
  """Checks values that would fail late (or silently) before any compile; one clear line each."""
  from affectjax import methods  # local: avoid importing every method at config time

  def need(cond, msg):
    if not cond:
      raise ConfigError(msg)

  need(config.method in methods.REGISTRY,
       f"config.method={config.method!r} is unknown; expected one of {sorted(methods.REGISTRY)}")
  from affectjax.data import sources
  need(config.data.name in sources.known_datasets(),
       f"config.data.name={config.data.name!r} is unknown; expected one of {sorted(sources.known_datasets())}")
  for path in ("data.image_size", "train.batch_size", "train.num_steps", "train.log_every",
               "data.num_identities", "data.images_per_identity"):
    section, field = path.split(".")
    value = config[section][field]
    need(isinstance(value, int) and value > 0, f"config.{path}={value!r} must be a positive integer")
  for path in ("train.checkpoint_every", "train.eval_every"):
    section, field = path.split(".")
    need(config[section][field] >= 0, f"config.{path}={config[section][field]!r} must be >= 0")
  need(config.train.batch_size % num_devices == 0,
       f"config.train.batch_size={config.train.batch_size} is not divisible by the {num_devices} devices")
  need(config.data.num_classes in (7, 8), f"config.data.num_classes={config.data.num_classes} must be 7 or 8")
  need(0.0 < config.data.test_fraction < 1.0,
       f"config.data.test_fraction={config.data.test_fraction} must be in (0, 1)")
  need(0.0 <= config.data.label_noise <= 1.0,
       f"config.data.label_noise={config.data.label_noise} must be in [0, 1]")
  need(config.optim.lr > 0, f"config.optim.lr={config.optim.lr} must be > 0")
  need(config.optim.schedule in ("constant", "cosine", "linear_decay"),
       f"config.optim.schedule={config.optim.schedule!r} must be constant, cosine or linear_decay")
