"""The command-line shell shared by the experiments/ scripts: each script is a function from its
workdir to the markdown of its tables; `run` checks --workdir, writes the markdown beside the runs
and prints it."""
from __future__ import annotations

import os
from typing import Callable

from absl import app, flags

from affectjax import errors, train


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
