"""The command-line shell shared by the experiments/ scripts: each script is a function from its
workdir to the markdown of its tables; `run` checks --workdir, writes the markdown beside the runs
and prints it, with claims.json: the command, every claim judged (affectjax.evaluate.seeds) with
its verdict line, the finished runs (seeds, steps, wall time) and the figures, which
experiments/results.py turns into docs/results.md. `define_overrides(base)` gives a script ml_collections' --config.section.field=value
flags, typed and checked against its base config, which `overrides()` returns for
affectjax.runner.execute to set on every run; --rescore names finished runs to evaluate again
(`rescore`)."""
from __future__ import annotations

import glob
import json
import os
import sys
from typing import Callable

from absl import app, flags
from ml_collections import config_flags

from affectjax import errors, runner, train, workdir as workdir_lib
from affectjax.evaluate import seeds

_OVERRIDES = "config"
_RESCORE = flags.DEFINE_list(
    "rescore", [], "Finished runs (names or fnmatch patterns, e.g. 'faces/*'; '*': all) to evaluate "
    "again from their checkpoints with the current evaluation code, without training them.")


def rescore(name: str) -> bool:
  """Whether --rescore names run `name` (affectjax.runner.execute's rescore predicate)."""
  import fnmatch
  return any(fnmatch.fnmatchcase(name, p) for p in _RESCORE.value)


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


CLAIMS = "claims.json"


def figures(workdir: str) -> list[str]:
  """The figures a reader looks at, relative to workdir: the experiment's own (workdir/*.png),
  then each run's first seed's (<run>/seed_0/*.png, or <run>/*.png for one seed)."""
  own = sorted(glob.glob(os.path.join(workdir, "*.png")))
  runs = []
  for r in runner.finished_runs(workdir):
    d = runner.seed_dir(workdir, r["name"], 0, r["num_seeds"])
    runs += sorted(glob.glob(os.path.join(d, "*.png")))
  return [os.path.relpath(p, workdir).replace(os.sep, "/") for p in own + runs]


def records(workdir: str, patterns=()) -> list[str]:
  """What the tables were computed from, relative to workdir: each finished run's results.json
  and its files matching `patterns` (globs relative to the run's directory, e.g.
  'seed_*/levasa_report.json'). Copied with the page, they let a later sitting re-tabulate and
  add runs without the finished ones' checkpoints."""
  out = []
  for r in runner.finished_runs(workdir):
    d = runner.run_dir(workdir, r["name"])
    found = [os.path.join(d, runner.RESULTS)]
    for pattern in patterns:
      for b in runner.block_dirs(d):  # seeds added later keep their files in their block
        found += sorted(glob.glob(os.path.join(b, pattern)))
    out += [os.path.relpath(p, workdir).replace(os.sep, "/") for p in found]
  return out


def summary(workdir: str, report: str, patterns=()) -> dict:
  """What claims.json holds (see the module's docstring)."""
  argv = [os.path.relpath(sys.argv[0])] + sys.argv[1:] if sys.argv else []
  return {"command": " ".join(["python"] + argv), "tables": report,
          "claims": [c.record() for c in seeds.JUDGED], "runs": runner.finished_runs(workdir),
          "figures": figures(workdir), "records": records(workdir, patterns)}


def run(tables: Callable[[str], str], *, report: str = "tables.md", records=()) -> None:
  """Runs `tables(workdir)` under absl (one-line errors for user mistakes), then writes its text
  to workdir/report and prints it. The script must define --workdir. records: the globs (relative
  to a run's directory) of the run files the tables read besides results.json."""
  def main(argv):
    del argv
    train.quiet_console_logging()
    workdir = flags.FLAGS.workdir
    os.makedirs(workdir, exist_ok=True)
    del seeds.JUDGED[:]
    seeds.PAPER_WIDE = True  # one Holm family: every claim the tables judge
    try:
      text = seeds.resolve(tables(workdir))
    finally:
      seeds.PAPER_WIDE = False
    with open(os.path.join(workdir, report), "w") as f:
      f.write(text)
    workdir_lib.write_atomic(os.path.join(workdir, CLAIMS), json.dumps(train.json_safe(
        summary(workdir, report, records)), indent=1))
    print(text)

  flags.mark_flags_as_required(["workdir"])
  app.run(errors.one_line(main))
