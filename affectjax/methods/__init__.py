"""One module per paper. Each exposes `make_method(config) -> Method` (see base.py)."""
import importlib

from affectjax.methods.base import Method

# config.method -> module under affectjax.methods
REGISTRY = {
    "levasa": "levasa",
    "ganmut": "ganmut",
}


def get(config) -> Method:
  """Builds the Method named by config.method."""
  if config.method not in REGISTRY:
    raise ValueError(f"unknown method {config.method!r}; expected one of {sorted(REGISTRY)}")
  module = importlib.import_module(f"affectjax.methods.{REGISTRY[config.method]}")
  return module.make_method(config)
