"""On-disk cache of generated datasets: one .npz per (generator VERSION, arguments)."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings

import numpy as np

# Bump whenever the generator's output changes, so old caches are not reused.
VERSION = 1


def cache_path(cache_dir: str, **generate_kwargs) -> str:
  """The file that holds generate(**generate_kwargs) under cache_dir."""
  key = json.dumps({"version": VERSION, **generate_kwargs}, sort_keys=True, default=str)
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
