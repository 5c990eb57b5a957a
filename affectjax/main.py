"""Command-line entry: python -m affectjax.main --config=configs/<method>.py --workdir=DIR.

Any config field can be overridden: --config.train.num_steps=100 --config.optim.lr=1e-4.
Variants by argument: --config=configs/levasa.py:discrete.
"""
import os
import re
import sys

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py[:variant]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics, tables and figures.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "Call jax.distributed.initialize() (multi-host pods).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0 (with --distributed; auto-detected on "
                                   "TPU pods and Slurm).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job (--distributed).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (--distributed).")


def _one_line(e: BaseException, argv) -> str:
  """A flag-parsing failure as one line: an unknown override named with ml_collections'
  suggestion, or the flag and the last line of absl's message (which embeds a traceback)."""
  text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
  suggestion = re.search(r"Did you mean \W*([\w.]+)", text)
  if isinstance(e, (KeyError, AttributeError)) or suggestion:
    field = re.search(r"[\w.]+", text).group(0)
    given = next((a.split("=")[0] for a in argv[1:] if a.startswith("--config.")
                  and field in a.split("=")[0].split(".")), f"config field {field!r}")
    return f"{given}: no such config field" + (
        f" (did you mean {suggestion.group(1)!r}?)" if suggestion else "")
  lines = [ln.strip() for ln in text.splitlines()
           if ln.strip() and not ln.strip().startswith(("Pass --help", "Attempted ["))]
  if not lines:
    return type(e).__name__
  first, last = lines[0].removeprefix("flag "), lines[-1]
  last = re.sub(r"^\w+(Error|Exception): ", "", last)
  return first if len(lines) == 1 else f"{first.split(': ')[0]}: {last}"


def _parse_flags(argv):
  """absl's flag parsing, with every failure (a bad --config file, variant or override) as one
  `affectjax: error:` line instead of a traceback."""
  from affectjax.configs import locate
  try:
    return flags.FLAGS(locate(argv))
  except Exception as e:  # noqa: BLE001 - flags.Error and what config files and overrides raise
    sys.exit(f"affectjax: error: {_one_line(e, argv)}")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from affectjax import train
  train.quiet_console_logging()
  import jax
  if _DISTRIBUTED.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  from affectjax.errors import UserError
  config = _CONFIG.value
  try:
    config["method"]  # config_flags defers a config file's load error to the first access
  except Exception as e:  # noqa: BLE001
    sys.exit(f"affectjax: error: --config={flags.FLAGS['config'].serialize().split('=', 1)[-1]}: "
             f"{_one_line(e, sys.argv)}")
  try:
    _, result = train.train_and_evaluate(config, _WORKDIR.value)
  except UserError as e:
    sys.exit(f"affectjax: error: {e}")
  summary = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.items()) if isinstance(v, float))
  print(f"done: {summary}")
  print(f"outputs in {os.path.abspath(_WORKDIR.value)}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main, flags_parser=_parse_flags)
