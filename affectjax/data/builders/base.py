"""The shared TFDS manual-download builder: options, split generation, skip report, metadata.

A dataset module subclasses `Builder` and implements two functions:
- `index(manual_dir, options, report) -> {split: [record, ...]}`: reads the annotation files only
  (cheap), counting rows it drops at this stage into `report`;
- `load(record, options, report, split) -> example dict`: reads one record's image/landmarks,
  raising report.Skip(reason) for a bad one.
Prepared data are written as array_record files (random access; data/builders/source.py reads them).
"""
from __future__ import annotations

import ast
import dataclasses
import errno
import json
import logging
import os
import zlib

import numpy as np

from affectjax.data.builders import report as report_lib
from affectjax.data.builders.report import Report, Skip
from affectjax.errors import DataError

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
  from affectjax.config import ConfigError
  if isinstance(given, str):  # --config.data.builder_options='{"keep_none": true}'
    try:
      given = json.loads(given) if given.strip() else {}
    except json.JSONDecodeError as e:
      try:  # a Python literal, '{"keep_none": True}', as docs/datasets.md writes it
        given = ast.literal_eval(given)
      except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise ConfigError(f"config.data.builder_options={given!r} is not valid JSON ({e}); expected "
                          f"an object of {dataset}'s options, e.g. '{{\"name\": value}}'") from None
  given = given.to_dict() if hasattr(given, "to_dict") else (given or {})
  if not isinstance(given, dict):
    raise ConfigError(f"config.data.builder_options={given!r}: expected a JSON object of "
                      f"{dataset}'s options")
  return dict(given)


def resolve_options(defaults: dict, given, dataset: str, image_size: int, num_classes: int) -> dict:
  """Defaults overridden by config.data.builder_options; an unknown option is one clear error."""
  from affectjax.config import ConfigError
  given = given_options(given, dataset)
  unknown = sorted(set(given) - set(defaults))
  if unknown:
    raise ConfigError(f"config.data.builder_options: unknown builder option(s) "
                      f"{', '.join(map(repr, unknown))} for {dataset}; expected some of "
                      f"{', '.join(map(repr, sorted(defaults)))}")
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


def where_from(manual_dir: str, split: str, report) -> str:
  """The index files a split was read from (Report.read_from), else manual_dir."""
  files = report.read_from.get(split) or report.read_from.get("all")
  return ", ".join(files) if files else manual_dir


def no_examples_error(module, manual_dir: str, split: str, report, what: str) -> DataError:
  """The one line for a split left without examples: where it came from, why every row was
  dropped (counts and the first row per reason), what the dataset should look like."""
  notes = "".join(f"; {n}" for n in report.notes.get(split, ()))
  return DataError(f"{module.NAME}: no usable {split} examples in {where_from(manual_dir, split, report)}"
                   f": {what} (skipped: {report.describe_skips(split)}){notes}; expected "
                   f"{module.LAYOUT_HINT} (see docs/datasets.md, section {module.NAME})")


def check_index(module, manual_dir: str, index: dict, report) -> None:
  """Every split of `index` holds a row: an empty one is one DataError line, before TFDS writes."""
  for split in ("train", "test"):
    if not index.get(split):
      raise no_examples_error(module, manual_dir, split, report, "no row was indexed for it")


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
      check_index(module, manual_dir, index, self._report)
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
      if not self._report.kept[split]:  # TFDS would stop with "No examples were yielded"
        raise no_examples_error(module, manual_dir, split, self._report,
                                f"none of its {len(records)} indexed rows could be read")
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
  quiet = _DropMessage("Using custom data configuration")  # every option set is custom: no news
  logging.getLogger("absl").addFilter(quiet)
  try:
    return cls(config=config, data_dir=tfds_dir, file_format="array_record")
  finally:
    logging.getLogger("absl").removeFilter(quiet)


class _DropMessage(logging.Filter):
  def __init__(self, prefix: str):
    super().__init__()
    self.prefix = prefix

  def filter(self, record) -> bool:
    return not str(record.msg).startswith(self.prefix)


_DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                errno.EEXIST, errno.EISDIR)


def _disk_error(e: BaseException):
  """(path or None, reason) of the disk error behind `e`, or None. TFDS re-raises a bare copy of
  an OSError (its cause keeps errno); array_record's writer raises RuntimeError('... No space left
  on device; writing <file> ...'), so the reason is also looked for in the text."""
  reasons = [os.strerror(n) for n in _DISK_ERRNOS]
  for _ in range(16):  # a chain is short; a cycle must not hang
    if e is None:
      return None
    if isinstance(e, OSError) and e.errno in _DISK_ERRNOS:
      return e.filename, e.strerror
    found = [r for r in reasons if r in str(e)]
    if found:
      return None, found[0]
    e = e.__cause__ or e.__context__
  return None


def _close_progress_bars() -> None:
  """TFDS's progress bars, closed before an error line so that they do not overwrite it."""
  try:
    from tqdm import tqdm
  except ImportError:
    return
  for bar in list(getattr(tqdm, "_instances", ())):
    bar.close()


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
  tfds_dir = os.fspath(builder.data_dir_root)
  try:
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  except Exception as e:  # noqa: BLE001 - only disk errors are translated; the rest re-raised
    _close_progress_bars()
    cause = None if isinstance(e, DataError) else _disk_error(e)
    if cause is None:
      raise
    path, reason = cause
    raise DataError(f"{module.NAME}: cannot prepare the dataset under {tfds_dir}: "
                    f"{path + ': ' if path else ''}{reason}; expected a writable directory with room "
                    "for it (config.data.tfds_dir, or AFFECTJAX_CACHE/tfds)") from None
