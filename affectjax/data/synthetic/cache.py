"""On-disk cache of generated datasets: one .npz per (generator VERSION, all of its arguments)."""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import tempfile

import numpy as np

from affectjax import errors

_generate_module = importlib.import_module("affectjax.data.synthetic.generate")

# Bump whenever the generator's output changes, so old caches are not reused.
VERSION = 1
_SIGNATURE = inspect.signature(_generate_module.generate)  # the key's arguments and defaults


def cache_key(**generate_kwargs) -> dict:
  """Every argument of generate, defaults filled in (so the key changes with any option and
  passing a default explicitly or not names the same file); floats as floats (1 and 1.0 agree)."""
  signature = _SIGNATURE
  bound = signature.bind(**generate_kwargs)
  bound.apply_defaults()
  out = {}
  for k, v in bound.arguments.items():
    default = signature.parameters[k].default
    if isinstance(default, float) and isinstance(v, (int, np.integer, np.floating)):
      v = float(v)
    elif isinstance(v, np.generic):
      v = v.item()
    out[k] = v
  return out


def cache_path(cache_dir: str, **generate_kwargs) -> str:
  """The file that holds generate(**generate_kwargs) under cache_dir."""
  key = json.dumps({"version": VERSION, **cache_key(**generate_kwargs)}, sort_keys=True,
                   default=str)
  digest = hashlib.sha256(key.encode()).hexdigest()[:16]
  return os.path.join(cache_dir, f"synthetic_faces_v{VERSION}_{digest}.npz")


class DataCacheWarning(UserWarning):
  """The data cache could not be read or written; the run goes on (data regenerated or in memory)."""


_SAID = {}  # the warnings registry: under Python's default filter, one message is said once


def warn(message: str) -> None:
  """One warning line, `affectjax:0: DataCacheWarning: <message>` (warnings.warn would add a
  second line quoting the source of the call), said once per process (two views, one cache)."""
  errors.warn(message, DataCacheWarning, registry=_SAID)


def _read(path: str):
  """The cached arrays at `path`, or None (with one warning line) when the file cannot be read."""
  try:
    with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
      return {k: f[k] for k in f.files}
  except Exception as e:  # noqa: BLE001 - any unreadable file (truncated, garbled, a directory) is regenerated
    warn(f"synthetic faces cache {path} is unreadable ({type(e).__name__}: {e}); regenerating it")
    return None


def _write(cache_dir: str, path: str, arrays: dict) -> None:
  """Writes arrays to `path` through a temporary file renamed into place (os.replace): a killed
  run or a full disk never leaves a partial file, and a file already there stays whole. A cache
  that cannot be written (not a directory, read-only, full) is one warning line; the caller keeps
  the arrays in memory."""
  tmp = None
  try:
    os.makedirs(cache_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp_", suffix=".npz")
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **arrays)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from the other users
    os.replace(tmp, path)
    tmp = None
  except OSError as e:
    what = e.strerror or str(e)
    if isinstance(e, (FileExistsError, NotADirectoryError)) or not os.path.isdir(cache_dir):
      what = "not a directory"
    warn(f"cannot write the data cache {cache_dir} ({what}); the generated data stay in memory for "
         "this run (AFFECTJAX_CACHE or config.data.cache_dir: expected a writable directory with room)")
  finally:
    if tmp is not None:
      try:
        os.unlink(tmp)
      except OSError:
        pass


def load_or_generate(cache_dir: str, **generate_kwargs) -> dict:
  """generate(**generate_kwargs), read from cache_dir when cached, else generated and cached.

  An unreadable cache file is regenerated, and a cache that cannot be written leaves the arrays in
  memory, each with one warning line (DataCacheWarning); neither stops the run.
  """
  from affectjax.data.synthetic.generate import generate
  path = cache_path(cache_dir, **generate_kwargs)
  if os.path.exists(path):
    arrays = _read(path)
    if arrays is not None:
      return arrays
  arrays = generate(**generate_kwargs)
  _write(cache_dir, path, arrays)
  return arrays
