"""Command-line entry: python -m affectjax.main --config=configs/<method>.py --workdir=DIR.

Any config field can be overridden: --config.train.num_steps=100 --config.optim.lr=1e-4.
Variants by argument: --config=configs/levasa.py:discrete.
"""
import os
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


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from affectjax import train
  train.quiet_console_logging()
  import jax
  if _DISTRIBUTED.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  from affectjax import config as config_lib
  try:
    _, result = train.train_and_evaluate(_CONFIG.value, _WORKDIR.value)
  except (config_lib.ConfigError, train.WorkdirError, train.TrainingDiverged) as e:
    sys.exit(f"affectjax: error: {e}")
  summary = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.items()) if isinstance(v, float))
  print(f"done: {summary}")
  print(f"outputs in {os.path.abspath(_WORKDIR.value)}")


if __name__ == "__main__":
  flags.mark_flags_as_required(["config", "workdir"])
  app.run(main)
