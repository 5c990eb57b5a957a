"""Every method's config as an importable module: affectjax.configs.<method>.get_config(arg).

The command line reads them as files, --config=configs/<method>.py[:ARGS] (configs/ at the
repository's top holds one-line shims; from any other directory affectjax.main finds the
package's own file for the same path), and Python as `get("levasa", "tiny")`.
"""
import importlib
import os

NAMES = ("levasa", "ganmut", "triplet_vae", "dual_domain", "rbvae", "factor_vae")


def get(name: str, arg: str = ""):
  """affectjax.configs.<name>.get_config(arg), as --config=configs/<name>.py:<arg> loads it."""
  if name not in NAMES:
    raise ValueError(f"no config {name!r}; expected one of {', '.join(NAMES)}")
  return importlib.import_module(f"affectjax.configs.{name}").get_config(arg)


def path(name: str) -> str:
  """The file of config `name` inside the installed package (what --config= may point to)."""
  return os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.py")


def locate(argv: list) -> list:
  """argv with --config=configs/<name>.py[:ARGS] pointed at the package's file when that path
  does not exist from here (an installed affectjax run from any directory)."""
  out = []
  for a in argv:
    if a.startswith("--config="):
      spec = a[len("--config="):]
      file, sep, arg = spec.partition(":")
      name = os.path.splitext(os.path.basename(file))[0]
      if (not os.path.exists(file) and name in NAMES
          and os.path.normpath(os.path.dirname(file)) in ("configs", os.path.join("affectjax", "configs"))):
        a = f"--config={path(name)}{sep}{arg}"
    out.append(a)
  return out
