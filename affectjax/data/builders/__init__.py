"""TFDS builders for the papers' real datasets, read from the user's own copy (config.data.manual_dir).

One module per dataset; docs/datasets.md says where to get each, the layout under manual_dir, and
the builder options (config.data.builder_options). `load_splits(config.data)` prepares the dataset
once (array_record under config.data.tfds_dir) and returns random-access train/test sources.
"""
from __future__ import annotations

import importlib
import os

from affectjax.data.builders.splits import Splits

# affectjax dataset name -> module under affectjax.data.builders.
MODULES = {
    "affectnet": "affectnet",
    "afew_va": "afew_va",
    "aff_wild": "aff_wild",
    "imfdb": "imfdb",
    "bu3dfe": "bu3dfe",
    "bp4d": "bp4d",
    "morphset": "morphset",
    "mnist_style": "style_digits",
}
NAMES = tuple(MODULES)


def module_of(name: str):
  if name not in MODULES:
    from affectjax.config import ConfigError
    raise ConfigError(f"config.data.name={name!r} is not a real dataset; expected one of "
                      f"{', '.join(map(repr, NAMES))}")
  return importlib.import_module(f"affectjax.data.builders.{MODULES[name]}")


def tfds_dir_of(data_config) -> str:
  """config.data.tfds_dir, or <cache dir>/tfds."""
  from affectjax import config as config_lib
  return data_config.get("tfds_dir", "") or os.path.join(config_lib.cache_dir_of(data_config), "tfds")


def load_splits(data_config) -> Splits:
  """Prepares (once) and opens the dataset named by data_config.name; see docs/datasets.md."""
  module = module_of(data_config.name)
  if hasattr(module, "load_splits"):  # datasets made on the fly (style digits)
    return module.load_splits(data_config)
  from affectjax.data.builders import base
  base.require_tfds(data_config.name)  # one clear line when TensorFlow / TFDS are not installed
  from affectjax.data.builders.source import TfdsSource
  builder = base.builder_for(module, data_config, tfds_dir_of(data_config))
  base.prepare(builder, data_config.get("manual_dir", ""), module)
  md = dict(builder.info.metadata)
  metadata = {
      "name": data_config.name, "num_classes": int(data_config.num_classes),
      "image_size": int(data_config.image_size), "options": md.get("options", {}),
      "report": md.get("splits", {}), "prepared_dir": os.fspath(builder.data_path),
      "factor_names": tuple(module.factor_names(md.get("options", {}))),
      "has_images": bool(module.HAS_IMAGES),
      "skipped_before_split": md.get("skipped_before_split", {}),
  }
  if md.get("va_stats") and getattr(module, "HAS_LABELS_AND_VA", False):
    import numpy as np
    metadata["va_stats"] = {k: np.asarray(md["va_stats"][k], np.float64)
                            for k in ("priors", "means", "covs")}
  return Splits(TfdsSource(builder, "train"), TfdsSource(builder, "test"), metadata)
