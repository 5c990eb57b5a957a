"""The command-line shell shared by the experiments/ scripts: each script is a function from its
workdir to the markdown of its tables; `run` checks --workdir, writes the markdown beside the runs
and prints it. `define_overrides(base)` gives a script ml_collections' --config.section.field=value
flags, typed and checked against its base config, which `overrides()` returns for
affectjax.runner.execute to set on every run."""
from __future__ import annotations

import os
from typing import Callable

from absl import app, flags
from ml_collections import config_flags

from affectjax import errors, train

_OVERRIDES = "config"


def define_overrides(base) -> None:
  """--config.X=value flags of every run, checked against `base` (the experiment's default
  config: a field it lacks, or a value of another type, is refused by ml_collections)."""
  config_flags.DEFINE_config_dict(
      _OVERRIDES, base, "Overrides of every run's config, e.g. --config.train.batch_size=32 "
      "(--config.<field>=<value>; fields and types of the experiment's default config).")


def overrides() -> dict:
  """{'section.field': value} of the --config.* flags given on the command line ({} if none)."""
  if _OVERRIDES not in flags.FLAGS:
    return {}
  return dict(config_flags.get_override_values(flags.FLAGS[_OVERRIDES]))


def run(tables: Callable[[str], str], *, report: str = "tables.md") -> None:
  """Runs `tables(workdir)` under absl (one-line errors for user mistakes), then writes its text
  to workdir/report and prints it. The script must define --workdir."""
  def main(argv):
    del argv
    train.quiet_console_logging()
    workdir = flags.FLAGS.workdir
    os.makedirs(workdir, exist_ok=True)
    text = tables(workdir)
    with open(os.path.join(workdir, report), "w") as f:
      f.write(text)
    print(text)

  flags.mark_flags_as_required(["workdir"])
  app.run(errors.one_line(main))
