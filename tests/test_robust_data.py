"""Bad data inputs end in one line (issue 22): damaged real-dataset copies, builder options, the
data cache (half-written, not a directory, read-only, full) and configs that leave a split empty."""
import errno
import importlib.util
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fixtures_real as fx
from conftest import REPO, load_config
from affectjax.config import ConfigError
from affectjax.errors import DataError, UserError


def _build(name, manual, tfds, **kw):
  from affectjax.data import builders
  fx.limit_tf_threads()
  return builders.load_splits(fx.data_config(name, manual, tfds, **kw))


# ------------------------------------------------------------------------- AffectNet, damaged copies
EXPECT = {  # what the one line says about each damage, beside the file's path
    "dropped_columns": "its header lacks column(s) expression;",
    "tab_separated": "is tab-separated, not comma-separated",
    "empty": "is empty",
    "binary": "is not a text file (binary data)",
    "header_only": "has a header but no rows",
    "corrupt_images": "none of its 12 indexed rows could be read (skipped: unreadable_image: 12",
}


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
  """{damage: (manual_dir, the file the error must name)}, one AffectNet copy per damage."""
  out = {}
  for how in fx.AFFECTNET_DAMAGE:
    root = str(tmp_path_factory.mktemp(how) / "manual")
    fx.write_affectnet_bench(root, 12, 16)
    out[how] = (root, fx.damage_affectnet(root, how))
  return out


@pytest.mark.parametrize("how", fx.AFFECTNET_DAMAGE)
def test_damaged_affectnet_is_one_data_error(damaged, how, tmp_path):
  manual, path = damaged[how]
  with pytest.raises(DataError) as e:
    _build("affectnet", manual, tmp_path / "tfds", image_size=16)
  msg = str(e.value)
  assert "\n" not in msg and msg.startswith("affectnet: ") and path in msg and EXPECT[how] in msg
  assert "; expected " in msg  # and what a good copy looks like


def test_corrupt_images_are_counted_and_nothing_is_prepared(damaged, tmp_path):
  with pytest.raises(DataError, match=r"unreadable_image: 12 \(first: .*/0/000000\.jpg: \w+Error"):
    _build("affectnet", damaged["corrupt_images"][0], tmp_path / "tfds", image_size=16)
  # The failed build left no prepared split behind: a rerun after a fix builds again.
  fx.write_affectnet_bench(str(tmp_path / "fixed"), 12, 16)
  splits = _build("affectnet", str(tmp_path / "fixed"), tmp_path / "tfds", image_size=16)
  assert len(splits.train) == 12 and len(splits.test) == 1


def _verify_dataset():
  spec = importlib.util.spec_from_file_location("verify_dataset", os.path.join(REPO, "tools", "verify_dataset.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("how", fx.AFFECTNET_DAMAGE + ("no_manual_dir", "absent_dir", "unknown_option",
                                                       "bad_json_option"))
def test_verify_dataset_prints_one_line_and_exits_1(damaged, how, tmp_path, capsys):
  manual, path = damaged.get(how, damaged["empty"])
  args = ["--dataset=affectnet", f"--tfds_dir={tmp_path / 'tfds'}", "--image_size=16"]
  expect = {"no_manual_dir": "config.data.manual_dir is empty",
            "absent_dir": f"{tmp_path / 'absent'} does not exist",
            "unknown_option": "unknown builder option(s) 'keep_nne' for affectnet",
            "bad_json_option": "is not valid JSON"}.get(how, EXPECT.get(how))
  args.append({"no_manual_dir": "--manual_dir=", "absent_dir": f"--manual_dir={tmp_path / 'absent'}"}
              .get(how, f"--manual_dir={manual}"))
  if how.endswith("option"):
    args.append('--options={"keep_nne": true}' if how == "unknown_option" else '--options={"keep_none": tru')
  assert _verify_dataset().main(args) == 1
  err = capsys.readouterr().err
  last = err.strip().splitlines()[-1].split("\r")[-1]
  assert last.startswith("affectjax: error: ") and expect in last, err[-2000:]
  assert "Traceback" not in err


def test_training_on_corrupt_images_ends_in_one_line(damaged, tmp_path):
  """python -m affectjax.main on an AffectNet copy whose images are all corrupt."""
  env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
             XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
             TF_CPP_MIN_LOG_LEVEL="2")
  cmd = [sys.executable, "-m", "affectjax.main", "--config=configs/levasa.py:tiny",
         f"--workdir={tmp_path / 'wd'}", "--config.data.name=affectnet",
         f"--config.data.manual_dir={damaged['corrupt_images'][0]}",
         f"--config.data.tfds_dir={tmp_path / 'tfds'}", "--config.data.image_size=32"]
  r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 1, r.stderr[-3000:]
  assert "Traceback" not in r.stderr and "No examples were yielded" not in r.stderr
  last = r.stderr.strip().splitlines()[-1].split("\r")[-1]
  assert last.startswith("affectjax: error: affectnet: no usable train examples in ")
  assert damaged["corrupt_images"][1] in last and "unreadable_image: 12" in last


def test_unknown_builder_option_is_a_config_error_before_any_data(tmp_path):
  from affectjax.data import sources
  c = load_config("levasa", "tiny")
  c.data.name = "affectnet"
  c.data.manual_dir = str(tmp_path / "absent")  # never read: the option is refused first
  c.data.builder_options = '{"keep_nne": true}'
  with pytest.raises(ConfigError, match=r"unknown builder option\(s\) 'keep_nne' for affectnet; "
                                        r"expected some of 'encoding', 'keep_none'"):
    sources.validate(c)
  c.data.builder_options = "[1, 2]"
  with pytest.raises(ConfigError, match="expected a JSON object"):
    sources.validate(c)
  c.data.builder_options = '{"keep_none": true}'
  sources.validate(c)  # a known option passes


# ----------------------------------------------------------------------------- the other builders
def test_one_actor_afew_va_names_the_identity_rule(tmp_path):
  fx.write_afew_va(str(tmp_path / "m"))
  for clip in ("003",):  # Actor B's only clip: one actor is left, so no one can be held out
    import shutil
    shutil.rmtree(tmp_path / "m" / clip)
  with pytest.raises(DataError) as e:
    _build("afew_va", tmp_path / "m", tmp_path / "tfds", image_size=24)
  msg = str(e.value)
  assert msg.startswith(f"afew_va: no usable test examples in {tmp_path / 'm'}")
  assert "the 6 indexed rows belong to 1 identity; at least 2 are needed" in msg
  assert "clip_without_json: 1" in msg  # rows dropped before the split are still counted


def test_one_subject_bu3dfe_is_one_line(tmp_path):
  fx.write_bu3dfe(str(tmp_path / "m"))
  import shutil
  for subject in ("M0002", "F0003"):
    shutil.rmtree(tmp_path / "m" / subject)
  with pytest.raises(DataError, match=r"^bu3dfe: no usable test examples .* belong to 1 identity"):
    _build("bu3dfe", tmp_path / "m", tmp_path / "tfds")


def test_imfdb_with_every_annotation_binary_names_the_files(tmp_path):
  fx.write_imfdb(str(tmp_path / "m"))
  n = 0
  for folder, _, files in os.walk(tmp_path / "m"):
    for name in files:
      if name.endswith(".txt"):
        with open(os.path.join(folder, name), "wb") as f:
          f.write(b"\x00\x01PK\x03\x04" * 50)
        n += 1
  with pytest.raises(DataError) as e:
    _build("imfdb", tmp_path / "m", tmp_path / "tfds", image_size=8)
  msg = str(e.value)
  assert msg.startswith("imfdb: no usable train examples") and f"bad_index_file: {n}" in msg
  assert "is not a text file (binary data)" in msg and n == 3


def test_aff_wild_with_empty_annotations_is_one_line(tmp_path):
  fx.write_aff_wild(str(tmp_path / "m"))
  for folder, _, files in os.walk(tmp_path / "m" / "annotations"):
    for name in files:
      open(os.path.join(folder, name), "w").close()
  with pytest.raises(DataError, match=r"^aff_wild: no usable train examples .*bad_index_file: 2 "
                                      r"\(first: aff_wild: .*105\.txt is empty"):
    _build("aff_wild", tmp_path / "m", tmp_path / "tfds", image_size=10)


def test_bp4d_empty_au_file_is_counted_and_the_rest_is_built(tmp_path):
  fx.write_bp4d(str(tmp_path / "m"))
  open(tmp_path / "m" / "AUCoding" / "AU_OCC" / "F001_T3.csv", "w").close()  # crashed before
  with open(tmp_path / "m" / "AUCoding" / "AU_OCC" / "M002_T2.csv", "wb") as f:
    f.write(b"\x00" * 64)
  s = _build("bp4d", tmp_path / "m", tmp_path / "tfds")
  assert s.metadata["skipped_before_split"] == {"bad_index_file": 2}
  names = set(s.train.sources()) | set(s.test.sources())
  assert names == {"F001_T1_0001", "F001_T1_0002", "F001_T1_0003", "F001_T2_0007", "M002_T1_0001"}


@pytest.mark.parametrize("how", ["binary", "empty", "tab_separated", "no_label_column"])
def test_morphset_bad_manifest_is_one_line(tmp_path, how):
  fx.write_morphset(str(tmp_path / "m"))
  path = tmp_path / "m" / "manifest.csv"
  text = path.read_text()
  data = {"binary": b"\x00\x01" * 100, "empty": b"",
          "tab_separated": text.replace(",", "\t").encode(),
          "no_label_column": text.replace("label,", "emotion,", 1).encode()}[how]
  path.write_bytes(data)
  expect = {"binary": "is not a text file", "empty": "is empty",
            "tab_separated": "is tab-separated, not comma-separated",
            "no_label_column": "its header lacks column(s) label"}[how]
  with pytest.raises(DataError) as e:
    _build("morphset", tmp_path / "m", tmp_path / "tfds")
  assert str(e.value).startswith(f"morphset: {path}") and expect in str(e.value)


def test_unwritable_tfds_dir_is_one_line(damaged, tmp_path):
  (tmp_path / "file").write_text("not a directory")
  fx.write_affectnet_bench(str(tmp_path / "m"), 12, 16)
  with pytest.raises(DataError, match=rf"^affectnet: cannot prepare the dataset under {tmp_path / 'file'}: "
                                      r".*Not a directory; expected a writable directory"):
    _build("affectnet", tmp_path / "m", tmp_path / "file", image_size=16)


def test_full_disk_while_preparing_is_one_line(tmp_path, monkeypatch):
  """array_record's writer reports a full disk as a RuntimeError (seen on a 64 KiB tmpfs)."""
  from tensorflow_datasets.core import file_adapters
  fx.write_affectnet_bench(str(tmp_path / "m"), 12, 16)

  def full(cls, path, *a, **k):
    raise RuntimeError(f"write() failed: No space left on device; writing {path}; at byte 65536")
  monkeypatch.setattr(file_adapters.ArrayRecordFileAdapter, "write_examples", classmethod(full))
  with pytest.raises(DataError, match=rf"^affectnet: cannot prepare the dataset under {tmp_path / 'tfds'}: "
                                      r"No space left on device; expected a writable directory with room"):
    _build("affectnet", tmp_path / "m", tmp_path / "tfds", image_size=16)


# ------------------------------------------------------------------------------------ the data cache
KW = dict(seed=3, num_identities=2, images_per_identity=2, image_size=16)


def _one_line_warnings(caught):
  """The DataCacheWarnings caught, each as the text Python would print: one line each."""
  from affectjax.data.synthetic.cache import DataCacheWarning
  out = [warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
         for w in caught if issubclass(w.category, DataCacheWarning)]
  assert all(text.count("\n") == 1 for text in out), out
  return out


def _load(cache_dir, **kw):
  from affectjax.data.synthetic import cache
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    arrays = cache.load_or_generate(str(cache_dir), **dict(KW, **kw))
  return arrays, _one_line_warnings(caught)


@pytest.fixture(scope="module")
def fresh():
  """KW's arrays, generated without any cache."""
  from affectjax.data.synthetic.generate import generate
  return generate(**KW)


def _same(a, b):
  return set(a) == set(b) and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


def test_half_written_cache_file_is_one_warning_line(tmp_path, fresh):
  from affectjax.data.synthetic import cache
  _load(tmp_path)
  path = cache.cache_path(str(tmp_path), **KW)
  data = open(path, "rb").read()
  with open(path, "wb") as f:
    f.write(data[: len(data) // 2])  # a copy or write stopped half-way
  arrays, lines = _load(tmp_path)
  assert _same(arrays, fresh) and len(lines) == 1
  assert path in lines[0] and "unreadable (BadZipFile" in lines[0] and "regenerating it" in lines[0]
  assert open(path, "rb").read() == data  # rewritten whole
  assert _load(tmp_path)[1] == []  # and read back without a word


def test_cache_path_that_is_a_file_falls_back_to_memory(tmp_path, fresh):
  target = tmp_path / "cache_file"
  target.write_bytes(b"someone's file")
  arrays, lines = _load(target)
  assert _same(arrays, fresh) and len(lines) == 1
  assert f"cannot write the data cache {target} (not a directory)" in lines[0]
  assert "stay in memory" in lines[0] and target.read_bytes() == b"someone's file"
  arrays, lines = _load(target / "sub")  # a path under a file: the same line
  assert _same(arrays, fresh) and "(not a directory)" in lines[0]


def test_unwritable_cache_is_said_once_per_run(tmp_path):
  """Two views (LeVAsa's data and its reference set) meet the same unwritable cache: one line."""
  from affectjax.data.synthetic import cache
  (tmp_path / "f").write_text("x")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("default")  # Python's own filter for UserWarning
    for seed in (5, 6):
      cache.load_or_generate(str(tmp_path / "f"), **dict(KW, seed=seed))
  assert len(_one_line_warnings(caught)) == 1


def _other_entry(cache_dir):
  """A cache file already written (another key), as bytes, to check nothing damages it."""
  from affectjax.data.synthetic import cache
  _load(cache_dir, seed=4)
  path = cache.cache_path(str(cache_dir), **dict(KW, seed=4))
  return path, open(path, "rb").read()


def test_read_only_cache_falls_back_to_memory(tmp_path, monkeypatch, fresh):
  from affectjax.data.synthetic import cache
  other, before = _other_entry(tmp_path)

  def refuse(*a, **k):  # what mkstemp meets in a read-only directory (as root, chmod would not do)
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(tmp_path / ".tmp_x.npz"))
  monkeypatch.setattr(cache.tempfile, "mkstemp", refuse)
  arrays, lines = _load(tmp_path)
  assert _same(arrays, fresh) and len(lines) == 1
  assert f"cannot write the data cache {tmp_path} (Permission denied)" in lines[0]
  assert open(other, "rb").read() == before and sorted(os.listdir(tmp_path)) == [os.path.basename(other)]


def test_full_disk_cache_falls_back_to_memory_and_damages_nothing(tmp_path, monkeypatch, fresh):
  from affectjax.data.synthetic import cache
  other, before = _other_entry(tmp_path)
  real = np.savez

  def full(f, **arrays):  # ENOSPC half-way through the file
    f.write(b"PK\x03\x04" + b"\0" * 1000)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  monkeypatch.setattr(cache.np, "savez", full)
  arrays, lines = _load(tmp_path)
  monkeypatch.setattr(cache.np, "savez", real)
  assert _same(arrays, fresh) and len(lines) == 1
  assert f"cannot write the data cache {tmp_path} (No space left on device)" in lines[0]
  assert sorted(os.listdir(tmp_path)) == [os.path.basename(other)]  # no partial or temporary file
  assert open(other, "rb").read() == before
  assert _load(tmp_path)[1] == []  # with room again, it is written and nothing is said


def test_main_with_a_file_as_cache_trains(tmp_path):
  """AFFECTJAX_CACHE pointing at a file: sources.load still gives the splits, with one line."""
  from affectjax.data import sources
  c = load_config("levasa", "tiny")
  c.data.num_identities, c.data.images_per_identity, c.data.image_size = 3, 2, 16
  (tmp_path / "f").write_text("x")
  c.data.cache_dir = str(tmp_path / "f")
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    splits = sources.load(c)
  assert len(splits.train) + len(splits.test) == 6 and len(_one_line_warnings(caught)) == 1


# ------------------------------------------------------------------------ configs with an empty split
@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.75, 0.9])
def test_validate_refuses_exactly_the_identity_counts_that_empty_a_split(fraction):
  from affectjax.data import sources
  c = load_config("levasa", "tiny")
  c.data.test_fraction = fraction
  for n in range(1, 25):
    c.data.num_identities = n
    train, test = sources.split_by_identity(np.repeat(np.arange(n), 2), fraction, 0)
    if len(train) and len(test):
      sources.validate(c)
    else:
      with pytest.raises(ConfigError, match=rf"^config.data.num_identities={n} leaves no identity "
                                            "for training"):
        sources.validate(c)


def test_one_identity_is_one_config_error_before_anything_is_generated(monkeypatch):
  import importlib
  from affectjax import methods
  gen = importlib.import_module("affectjax.data.synthetic.generate")

  def boom(*a, **k):
    raise AssertionError("generated data before validating")
  monkeypatch.setattr(gen, "generate", boom)
  for name, arg in (("levasa", "tiny"), ("triplet_vae", ""), ("dual_domain", ""), ("ganmut", "")):
    c = load_config(name, arg)
    if c.data.name != "synthetic_faces":
      continue
    c.data.num_identities = 1
    with pytest.raises(ConfigError, match=r"num_identities=1 leaves no identity for training: .* "
                                          r"expected num_identities >= 2"):
      methods.validate(c, 1)


def test_too_few_style_digits_is_a_config_error():
  from affectjax.data import sources
  c = load_config("rbvae", "")
  c.data.name = "style_digits"
  c.data.num_digits = 3  # round(0.3 x 3) = 1 probe digit
  with pytest.raises(ConfigError, match=r"num_digits=3 with probe_fraction=0.3 gives 2 training and 1 probe"):
    sources.validate(c)
  c.data.num_digits = 8
  sources.validate(c)


def test_errors_are_user_errors():
  from affectjax.data.builders.report import MissingDataError
  assert issubclass(MissingDataError, UserError) and issubclass(DataError, UserError)
