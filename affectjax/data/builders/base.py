"""The shared TFDS manual-download builder: options, split generation, skip report, metadata.

A dataset module subclasses `Builder` and implements two functions:
- `index(manual_dir, options, report) -> {split: [record, ...]}`: reads the annotation files only
  (cheap), counting rows it drops at this stage into `report`;
- `load(record, options, report, split) -> example dict`: reads one record's image/landmarks,
  raising report.Skip(reason) for a bad one.
Prepared data are written as array_record files (random access; data/builders/source.py reads them).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import zlib

import numpy as np

from affectjax.data.builders import report as report_lib
from affectjax.data.builders.report import Report, Skip

log = logging.getLogger("affectjax.data.builders")


def require_tfds(dataset: str) -> None:
  """One clear line (a ConfigError) when TensorFlow or TensorFlow Datasets is not installed."""
  try:
    import tensorflow  # noqa: F401
    import tensorflow_datasets  # noqa: F401
  except ImportError:
    from affectjax.config import ConfigError
    raise ConfigError(f"data.name={dataset} needs tensorflow and tensorflow-datasets: "
                      "pip install tensorflow-cpu tensorflow-datasets") from None


def _tfds(dataset: str = "mnist_style"):  # style_digits (TFDS mnist) calls it without a name
  require_tfds(dataset)
  import tensorflow as tf
  try:  # TF must not take the accelerator JAX uses.
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:
    pass
  import tensorflow_datasets as tfds
  return tfds


def given_options(given, dataset: str) -> dict:
  """config.data.builder_options as a dict: a JSON string (the command line's form), a dict or None."""
  if isinstance(given, str):  # --config.data.builder_options='{"keep_none": true}'
    try:
      given = json.loads(given) if given.strip() else {}
    except json.JSONDecodeError as e:
      raise ValueError(f"{dataset}: config.data.builder_options is not valid JSON: {e}") from None
  return dict(given.to_dict() if hasattr(given, "to_dict") else (given or {}))


def resolve_options(defaults: dict, given, dataset: str, image_size: int, num_classes: int) -> dict:
  """Defaults overridden by config.data.builder_options; an unknown option is one clear error."""
  given = given_options(given, dataset)
  unknown = sorted(set(given) - set(defaults))
  if unknown:
    raise ValueError(f"{dataset}: unknown builder option(s) {unknown}; known: {sorted(defaults)}")
  out = dict(defaults, **given)
  out["image_size"] = int(image_size)
  out["num_classes"] = int(num_classes)
  return out


def config_name(options: dict) -> str:
  """A readable, stable name per option set: each option set gets its own prepared directory."""
  text = json.dumps(options, sort_keys=True)
  return f"s{options['image_size']}_c{options['num_classes']}_{zlib.crc32(text.encode()):08x}"


def split_by_identity(identities, test_fraction: float, seed: int) -> set:
  """The identities held out for test: round(test_fraction * n) of them (>= 1 when n >= 2)."""
  ids = sorted(set(identities))
  if len(ids) < 2:
    return set()
  n_test = min(len(ids) - 1, max(1, int(round(test_fraction * len(ids)))))
  perm = np.random.default_rng(seed).permutation(len(ids))
  return {ids[i] for i in perm[:n_test]}


def make_builder_class(module):
  """A tfds builder class for one dataset module (not registered: affectjax names its own)."""
  tfds = _tfds(module.NAME)

  @dataclasses.dataclass(eq=False)
  class Config(tfds.core.BuilderConfig):
    options: dict = dataclasses.field(default_factory=dict)

  class Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    name = f"affectjax_{module.NAME}"
    VERSION = tfds.core.Version(getattr(module, "VERSION", "1.0.0"))
    MANUAL_DOWNLOAD_INSTRUCTIONS = module.MANUAL_DOWNLOAD_INSTRUCTIONS

    # TFDS's default looks the module up via importlib_resources, absent from the pinned images.
    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls):
      from etils import epath
      return epath.Path(module.__file__)

    def _info(self):
      o = self.builder_config.options
      f = tfds.features
      feats = {"label": f.Scalar(np.int32), "va": f.Tensor(shape=(2,), dtype=np.float32),
               "identity": f.Scalar(np.int32), "is_reference": f.Scalar(np.bool_), "source": f.Text()}
      if module.HAS_IMAGES:
        s = o["image_size"]
        feats["image"] = f.Image(shape=(s, s, 3), encoding_format=o.get("encoding", "png"))
      k = module.num_landmarks(o)
      if k:
        feats["landmarks"] = f.Tensor(shape=(k, 3), dtype=np.float32)
        if getattr(module, "HAS_NEUTRAL", False):
          feats["neutral_landmarks"] = f.Tensor(shape=(k, 3), dtype=np.float32)
      nf = len(module.factor_names(o))
      if nf:
        feats["factors"] = f.Tensor(shape=(nf,), dtype=np.float32)
      return tfds.core.DatasetInfo(
          builder=self, description=module.__doc__, features=f.FeaturesDict(feats),
          metadata=tfds.core.MetadataDict(), disable_shuffling=True)

    def _split_generators(self, dl_manager):
      manual_dir = os.fspath(dl_manager.manual_dir)
      o = self.builder_config.options
      self._report = Report(o["num_classes"])
      self._train_rows = ([], [])
      index = module.index(manual_dir, o, self._report)
      # Rows dropped before a split is known (a whole clip's unreadable JSON) are reported as 'all'.
      self.info.metadata.update({"dataset": module.NAME, "options": o, "splits": {},
                                 "skipped_before_split": dict(self._report.skipped["all"])})
      return {split: self._generate(split, records, manual_dir) for split, records in index.items()}

    def _generate_examples(self, **unused):  # splits come from _generate (one generator per split)
      raise NotImplementedError

    def _generate(self, split, records, manual_dir):
      o = self.builder_config.options
      for i, record in enumerate(records):
        try:
          ex = module.load(record, o, self._report, split)
        except Skip as e:
          self._report.skip(split, e.reason, e.detail)
          continue
        except Exception as e:  # a reader bug or an odd file must not stop a long build half-way
          self._report.skip(split, f"error_{type(e).__name__}", f"{record!r}: {e}")
          continue
        ex = self._complete(ex)
        self._report.keep(split, ex["label"], ex["va"])
        if split == "train":
          self._train_rows[0].append(int(ex["label"]))
          self._train_rows[1].append(np.asarray(ex["va"], np.float32))
        yield i, ex
      self._finish(split)

    def _complete(self, ex):
      out = {"label": np.int32(ex.get("label", -1)),
             "va": np.asarray(ex.get("va", (np.nan, np.nan)), np.float32),
             "identity": np.int32(ex.get("identity", -1)),
             "is_reference": bool(ex.get("is_reference", False)), "source": ex.get("source", "")}
      for key in ("image", "landmarks", "neutral_landmarks", "factors"):
        if key in self.info.features:
          shape = self.info.features[key].shape
          if key not in ex:
            out[key] = np.full(shape, np.nan, np.float32)
          else:
            out[key] = ex[key] if key == "image" else np.asarray(ex[key], np.float32)
      return out

    def _finish(self, split):
      o = self.builder_config.options
      self._report.log_summary(module.NAME, split)
      md = self.info.metadata
      md["splits"][split] = self._report.summary(split)
      if split == "train":
        stats = report_lib.va_stats(self._train_rows[0], np.reshape(self._train_rows[1], (-1, 2)),
                                    o["num_classes"])
        md["va_stats"] = {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in stats.items()}

  Builder.Config = Config
  return Builder


def builder_for(module, data_config, tfds_dir: str):
  """The builder instance for config.data (name, image_size, num_classes, builder_options)."""
  o = resolve_options(module.OPTIONS, data_config.get("builder_options", None), module.NAME,
                      data_config.image_size, data_config.num_classes)
  given = given_options(data_config.get("builder_options", None), module.NAME)
  if "test_fraction" in module.OPTIONS and "test_fraction" not in given:
    o["test_fraction"] = float(data_config.get("test_fraction", module.OPTIONS["test_fraction"]))
  cls = make_builder_class(module)
  config = cls.Config(name=config_name(o), version=cls.VERSION, options=o)
  return cls(config=config, data_dir=tfds_dir, file_format="array_record")


def prepare(builder, manual_dir: str, module) -> None:
  """Builds the array_record files from manual_dir unless this option set is already prepared."""
  tfds = _tfds(module.NAME)
  if builder.info.splits and all(s in builder.info.splits for s in ("train", "test")):
    return
  if not manual_dir:
    raise report_lib.MissingDataError(
        f"{module.NAME}: config.data.manual_dir is empty; set it to your copy of the dataset "
        f"({module.LAYOUT_HINT})")
  report_lib.require(manual_dir, f"your copy of {module.NAME} ({module.LAYOUT_HINT})", module.NAME)
  module.check_layout(manual_dir, builder.builder_config.options)  # missing files: one clear error
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
