"""The one experiment runner: an experiment is a list of named runs (each one config); every run
trains its seeds on the K-seed path (config.train.num_seeds) into <workdir>/<name>/, and leaves
<workdir>/<name>/results.json: each seed's flat metrics ('eval/...', 'report/...'), its seeds and
the wall time. A run whose results.json exists is read, not retrained; one whose training was
interrupted resumes from its checkpoint; one finished under another config (a changed default, other
overrides) is refused, naming the fields; one asked for more seeds gets the missing ones as one more
program (train.first_seed), so a claim can gain seeds in a later sitting, from the run's
results.json alone. experiments/<paper>.py is its runs and its tables."""
from __future__ import annotations

import dataclasses
import functools
import json
import os
import subprocess
import time
from typing import Any, Callable, Sequence, Union

from affectjax import config as config_lib, train as train_lib, workdir as workdir_lib

RESULTS = "results.json"
# Fields that change how a run is shown or where it reads its files, not what it computes
PRESENTATION = ("train.progress", "train.log_every", "data.manual_dir", "data.tfds_dir",
                "data.cache_dir", "data.num_parallel_calls", "data.prefetch")
# Which seeds a program trains: the record's own seed count and blocks say it for a run
SEED_LAYOUT = ("train.num_seeds", "train.first_seed")


def code_version(package_dir: str | None = None) -> str:
  """Which code trains or evaluates a run: the git commit of the affectjax checkout it is imported
  from ('c3f8966'), '+dirty' when affectjax/ or experiments/ differ from it (an uncommitted edit
  can change the numbers), or 'affectjax <version>' for an install that is not a checkout."""
  package_dir = os.path.abspath(package_dir or os.path.dirname(__file__))
  root = os.path.dirname(package_dir)

  def git(*args):
    return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True,
                          timeout=30, check=True).stdout.strip()
  try:
    # the checkout must be the package's own, not a repository a site-packages happens to sit in
    if os.path.realpath(git("rev-parse", "--show-toplevel")) == os.path.realpath(root):
      dirty = git("status", "--porcelain", "--", os.path.basename(package_dir), "experiments")
      return git("rev-parse", "--short=7", "HEAD") + ("+dirty" if dirty else "")
  except (OSError, subprocess.SubprocessError):
    pass  # no git, or not a checkout
  from importlib import metadata
  try:
    return f"affectjax {metadata.version('affectjax')}"
  except metadata.PackageNotFoundError:
    return "affectjax (version unknown)"


@functools.lru_cache(maxsize=None)
def _this_code() -> str:
  return code_version()


@dataclasses.dataclass(frozen=True)
class Run:
  """One row-to-be of a table: its directory under the workdir ('digits/srbvae') and config."""
  name: str
  config: Any  # ml_collections.ConfigDict


def run_dir(workdir: str, name: str) -> str:
  return os.path.join(workdir, *name.split("/"))


def seed_dir(workdir: str, name: str, seed: int, num_seeds: int) -> str:
  """Where seed `seed` of a run wrote its report files: the run's directory for one seed,
  its seed_<i>/ for K (train.seed_report_dir); for seeds added later, their block's."""
  d = run_dir(workdir, name)
  for block in _blocks(d):
    if block["first_seed"] <= seed < block["first_seed"] + block["num_seeds"]:
      b = _block_dir(d, block)
      return b if block["num_seeds"] == 1 else train_lib.seed_report_dir(b, seed - block["first_seed"])
  return d if num_seeds == 1 else train_lib.seed_report_dir(d, seed)


def _blocks(directory: str) -> list[dict]:
  """A finished run's programs, [{first_seed, num_seeds, dir (relative), wall_s}] ([] if none
  recorded: one program of all its seeds in the run's directory)."""
  try:
    with open(os.path.join(directory, RESULTS)) as f:
      return json.load(f).get("blocks", [])
  except FileNotFoundError:
    return []


def _block_dir(directory: str, block: dict) -> str:
  return os.path.normpath(os.path.join(directory, block["dir"]))


def block_dirs(directory: str) -> list[str]:
  """The directories of a run's programs: the run's own, then any that added seeds."""
  return [_block_dir(directory, b) for b in _blocks(directory)] or [directory]


def apply_overrides(config, overrides: dict) -> None:
  """Sets {'section.field': value} on config in place (ml_collections' types are kept)."""
  for path, value in overrides.items():
    section, _, name = path.rpartition(".")
    node = config_lib.get_path(config, section) if section else config
    if name not in node:
      raise config_lib.ConfigError(f"override {path}={value!r}: the config has no field {path}")
    node[name] = value


def _recorded_config(config, workdir: str) -> dict:
  """The config as JSON with the workdir in paths written '<workdir>' (a moved workdir matches)."""
  text = config.to_json_best_effort(sort_keys=True)
  return json.loads(text.replace(json.dumps(os.path.abspath(workdir))[1:-1], "<workdir>"))


def _changed(old: dict, new: dict) -> list[str]:
  """'field: old -> new' for every field the two configs set to other values, presentation aside."""
  a, b = workdir_lib.flat(old), workdir_lib.flat(new)
  ignored = PRESENTATION + SEED_LAYOUT
  if a.get("train.epochs") and a.get("train.epochs") == b.get("train.epochs"):
    # num_steps follows from the epochs and the data actually loaded (Rb-VAE's make_method
    # records the exact count; its config only estimates it): the epochs are the question
    ignored += ("train.num_steps",)
  out = []
  for k in sorted(set(a) | set(b)):
    x, y = a.get(k, "<absent>"), b.get(k, "<absent>")
    if (k not in ignored and x != y
        and not (isinstance(x, list) and list(y or ()) == x)):
      out.append(f"{k}: {x!r} -> {y!r}")
  return out


def _number(v) -> float:
  return float("nan") if v is None else float(v)


def _per_seed(directory: str, final: dict, num_seeds: int) -> list[dict]:
  """Each seed's scalars: the run's own for one seed, seeds.json's per-seed values for K."""
  if num_seeds == 1:
    return [{k: float(v) for k, v in final.items()
             if k.startswith(("eval/", "report/")) and isinstance(v, (int, float))}]
  with open(os.path.join(directory, "seeds.json")) as f:
    rows = json.load(f)["metrics"]
  return [{k: _number(row["per_seed"][i]) for k, row in rows.items()} for i in range(num_seeds)]


def execute(workdir: str, runs: Sequence[Run], *, seeds: int = 1,
            train: Union[bool, Callable[[str], bool]] = True, overrides: dict | None = None,
            rescore: Union[bool, Callable[[str], bool]] = False,
            log=print) -> dict[str, list[dict]]:
  """{run name: [flat metrics of each seed]} for every run that has results. A run without them
  is trained when `train` (True, or a predicate of the run's name) says so, else left out.
  overrides ({'section.field': value}, e.g. an experiment's --config.* flags) apply to every run.
  A finished run asked for more seeds than it holds gets the missing ones (seeds k..n-1) as one
  more program in <name>/seeds_<k>-<n-1>/ (train.first_seed = k: the models a single n-seed
  program would train), when `train` allows; where it does not (an experiment's --only), the run is
  read with the seeds it holds, fewer or more than asked. Fewer seeds than a trainable run holds,
  or another config, is an error: its results answer another question. A finished run that
  `rescore` names (True, or a predicate of the name) is evaluated again from its checkpoints by
  the current evaluation code, without training (rescored)."""
  out = {}
  for run in runs:
    d = run_dir(workdir, run.name)
    path = os.path.join(d, RESULTS)
    config = run.config.copy_and_resolve_references()
    apply_overrides(config, overrides or {})
    config.train.num_seeds = seeds
    trainable = train(run.name) if callable(train) else train
    if not os.path.exists(path):
      if not trainable:
        continue
      log(f"== {run.name} ({seeds} seed{'s' if seeds > 1 else ''})")
      start, code = time.time(), _this_code()
      _, final = train_lib.train_and_evaluate(config, d)
      wall = time.time() - start
      record = {"name": run.name, "num_seeds": seeds,
                "seeds": [config.seed + i for i in range(seeds)],
                "wall_s": wall, "per_seed": _per_seed(d, final, seeds),
                "config": _recorded_config(config, workdir),
                "blocks": [{"first_seed": 0, "num_seeds": seeds, "dir": ".", "wall_s": wall,
                            "code": code}]}
      _write_record(d, record)
      log(f"   {record['wall_s']:.0f} s")
    with open(path) as f:
      record = json.load(f)
    changed = _changed(record.get("config", {}), _recorded_config(config, workdir))
    if "config" in record and changed:
      raise workdir_lib.WorkdirError(
          f"{path} was trained with another config ({'; '.join(changed[:6])}"
          f"{'; ...' if len(changed) > 6 else ''}): its numbers answer another question. Use a new "
          f"--workdir, or delete that results.json (and the run's checkpoints) to retrain it")
    if rescore(run.name) if callable(rescore) else rescore:
      record = rescored(workdir, run.name, record, config, log)
    if record["num_seeds"] < seeds and trainable and "config" in record:
      record = _add_seeds(workdir, run.name, record, config, seeds, log)
    elif record["num_seeds"] != seeds and not trainable:
      # e.g. --only: this run keeps its seeds (more or fewer); a claim pairs its arms over the
      # seeds both hold
      log(f"== {run.name}: read with its {record['num_seeds']} seed(s) of the {seeds} asked (not trained here)")
    elif record["num_seeds"] != seeds:
      raise workdir_lib.WorkdirError(
          f"{path} holds {record['num_seeds']} seed(s), not the {seeds} asked for: pass "
          f"--seeds={record['num_seeds']}, or more seeds where the run may train (they are added)")
    out[run.name] = [{k: _number(v) for k, v in m.items()} for m in record["per_seed"]]
  return out


def _write_record(d: str, record: dict) -> None:
  """<d>/results.json, atomically (a kill leaves the previous record or this one)."""
  workdir_lib.write_atomic(os.path.join(d, RESULTS), json.dumps(train_lib.json_safe(record), indent=1))


def _add_seeds(workdir: str, name: str, record: dict, config, seeds: int, log) -> dict:
  """The record with seeds record['num_seeds'] .. seeds - 1 trained as one more program (resumed
  from its checkpoint if an earlier attempt was cut) and appended."""
  d = run_dir(workdir, name)
  first, k = record["num_seeds"], seeds - record["num_seeds"]
  block = f"seeds_{first}-{seeds - 1}"
  c = config.copy_and_resolve_references()
  c.train.num_seeds, c.train.first_seed = k, first
  log(f"== {name}: seeds {first}..{seeds - 1} added ({block}/)")
  start, code = time.time(), _this_code()
  _, final = train_lib.train_and_evaluate(c, os.path.join(d, block))
  wall = time.time() - start
  blocks = record.get("blocks") or [{"first_seed": 0, "num_seeds": first, "dir": ".",
                                     "wall_s": record.get("wall_s")}]
  record = dict(record, num_seeds=seeds, per_seed=record["per_seed"] + _per_seed(os.path.join(d, block), final, k),
                seeds=(record.get("seeds") or []) + [c.seed + first + i for i in range(k)],
                wall_s=(record.get("wall_s") or 0.0) + wall,
                blocks=blocks + [{"first_seed": first, "num_seeds": k, "dir": block, "wall_s": wall,
                                  "code": code}])
  _write_record(d, record)
  log(f"   {wall:.0f} s")
  return record


def rescored(workdir: str, name: str, record: dict, config, log=print) -> dict:
  """The record with every seed's metrics computed again by the current evaluation code from the
  final checkpoint of each of its programs (nothing trained; training metrics and wall time kept),
  written back with the time it was rescored. For when an evaluation changes after training:
  the numbers then answer the current code's question. A program without its final checkpoint
  (a record copied without checkpoints, or checkpoints deleted) is an error naming it."""
  if "config" not in record:
    raise workdir_lib.WorkdirError(f"{run_dir(workdir, name)}/{RESULTS} records no config "
                                   "(adopted): it cannot be evaluated again here")
  d = run_dir(workdir, name)
  steps = int(record["config"]["train"]["num_steps"])  # the step every program ended at
  blocks = record.get("blocks") or [{"first_seed": 0, "num_seeds": record["num_seeds"], "dir": "."}]
  per_seed = []
  for block in blocks:
    b = _block_dir(d, block)
    ckpts = os.path.join(b, "checkpoints")
    if not os.path.isdir(os.path.join(ckpts, str(steps))):
      raise workdir_lib.WorkdirError(
          f"{ckpts} has no checkpoint of step {steps}: {name}'s seeds "
          f"{block['first_seed']}..{block['first_seed'] + block['num_seeds'] - 1} cannot be "
          "evaluated again (retrain them: delete the run's results.json and checkpoints)")
    c = config.copy_and_resolve_references()
    c.train.num_seeds, c.train.first_seed, c.train.num_steps = block["num_seeds"], block["first_seed"], steps
    log(f"== {name}: seeds {block['first_seed']}..{block['first_seed'] + block['num_seeds'] - 1} "
        "evaluated again from their checkpoints")
    _, final = train_lib.train_and_evaluate(c, b)
    new = _per_seed(b, final, block["num_seeds"])
    old = record["per_seed"][len(per_seed):len(per_seed) + len(new)]
    per_seed += [{**o, **n} for o, n in zip(old, new)]  # a metric the code no longer gives stays
  record = dict(record, per_seed=per_seed, rescored=time.strftime("%Y-%m-%d %H:%M:%S"),
                rescored_code=_this_code())
  _write_record(d, record)
  return record


def strip(runs: dict[str, list[dict]], prefix: str = "eval/") -> dict[str, list[dict]]:
  """The same results with `prefix` taken off the keys that have it (other keys dropped)."""
  return {name: [{k[len(prefix):]: v for k, v in m.items() if k.startswith(prefix)} for m in seeds]
          for name, seeds in runs.items()}


def adopt(workdir: str, name: str) -> bool:
  """Writes <workdir>/<name>/results.json for a K-seed run trained outside the runner (python -m
  affectjax.main with train.num_seeds = K, e.g. by tools/gpu_campaign.py) from its seeds.json.
  The record carries no config, so an experiment reads it whatever overrides trained it: the
  caller vouches that the run is the experiment's. False (nothing written) without seeds.json."""
  d = run_dir(workdir, name)
  try:
    with open(os.path.join(d, "seeds.json")) as f:
      k = int(json.load(f)["num_seeds"])
  except FileNotFoundError:
    return False
  record = {"name": name, "num_seeds": k, "seeds": None, "wall_s": None, "adopted": True,
            "per_seed": _per_seed(d, {}, k)}
  _write_record(d, record)
  return True


def finished_runs(workdir: str) -> list[dict]:
  """Every finished run under workdir (its results.json): name, seeds, wall time, steps and code
  (the commits that trained its seed blocks, '—' for a block from before the runner kept them,
  then 'rescored at <commit>')."""
  out = []
  for root, _, files in sorted(os.walk(workdir)):
    if RESULTS in files:
      with open(os.path.join(root, RESULTS)) as f:
        r = json.load(f)
      steps = (r.get("config") or {}).get("train", {}).get("num_steps")
      out.append({"name": os.path.relpath(root, workdir).replace(os.sep, "/"),
                  "num_seeds": r["num_seeds"], "wall_s": r.get("wall_s"), "num_steps": steps,
                  "adopted": bool(r.get("adopted")), "code": _codes(r)})
  return out


def _codes(record: dict) -> list[str]:
  out = []
  for block in record.get("blocks") or []:
    code = block.get("code") or "—"  # a block trained before records kept their code
    if code not in out:
      out.append(code)
  if record.get("rescored_code"):
    out.append(f"rescored at {record['rescored_code']}")
  return out
