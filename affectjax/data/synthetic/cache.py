"""On-disk cache of generated datasets: one .npz per (generator VERSION, all of its arguments)."""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import os
import tempfile
import warnings

import numpy as np

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


def load_or_generate(cache_dir: str, **generate_kwargs) -> dict:
  """generate(**generate_kwargs), read from cache_dir when cached, else generated and cached.

  Writes go to a temporary file renamed into place (os.replace), so a killed run never leaves a
  partial cache; an unreadable cache file is regenerated with a warning.
  """
  from affectjax.data.synthetic.generate import generate
  path = cache_path(cache_dir, **generate_kwargs)
  if os.path.exists(path):
    try:
      with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}
    except Exception as e:  # noqa: BLE001 - any unreadable file is regenerated
      warnings.warn(f"synthetic faces cache {path} is unreadable ({type(e).__name__}: {e}); "
                    "regenerating it")
  arrays = generate(**generate_kwargs)
  os.makedirs(cache_dir, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".tmp_", suffix=".npz")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **arrays)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise
  return arrays
