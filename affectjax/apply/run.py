"""A trained run as train.py left it: its config.json and a checkpoint, restored as train.py does
(train.setup builds the method, Orbax StandardRestore against train.abstract_state)."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional

import ml_collections

from affectjax.errors import UserError


@dataclasses.dataclass
class Run:
  config: Any
  setup: Any  # train.Setup: the method, its data (for shapes and statistics), the mesh
  state: Any  # host (numpy) copy of one seed's state
  step: int
  workdir: str


def read_config(workdir: str):
  path = os.path.join(workdir, "config.json")
  if not os.path.isdir(workdir):
    raise UserError(f"--workdir={workdir}: no such folder")
  try:
    with open(path) as f:
      return ml_collections.ConfigDict(json.load(f))
  except FileNotFoundError:
    raise UserError(f"{path} does not exist: --workdir must be a run directory written by "
                    "python -m affectjax.main (or tools/convert_ganmut_checkpoint.py)") from None
  except (OSError, ValueError) as e:
    raise UserError(f"{path} cannot be read as a run's config ({type(e).__name__}: {e})") from None


def checkpoint_steps(workdir: str) -> list[int]:
  d = os.path.join(workdir, "checkpoints")
  return sorted(int(x) for x in os.listdir(d) if x.isdigit()) if os.path.isdir(d) else []


def load_run(workdir: str, step: Optional[int] = None, seed: int = 0, config=None) -> Run:
  """The run in `workdir` at its newest checkpoint (or `step`); seed: which seed of a K-seed run.
  config: the run's config (read from workdir/config.json when None)."""
  import orbax.checkpoint as ocp
  from affectjax import train
  workdir = os.path.abspath(workdir)
  config = read_config(workdir) if config is None else config
  steps = checkpoint_steps(workdir)
  if not steps:
    raise UserError(f"{workdir} holds no checkpoint (no {os.path.join(workdir, 'checkpoints')}/<step>/): "
                    "train the run first (python -m affectjax.main --config=... --workdir=...)")
  if step is None:
    step = steps[-1]
  elif step not in steps:
    raise UserError(f"--step={step}: {workdir} has checkpoints at steps {', '.join(map(str, steps))}")
  k = int(config.train.get("num_seeds", 1))
  if not 0 <= seed < k:
    raise UserError(f"--seed={seed}: the run trained {k} seed(s) (0..{k - 1})")
  s = train.setup(config)
  target = train.abstract_state(s)
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"),
                                  item_handlers=ocp.StandardCheckpointHandler())
  try:
    state = manager.restore(step, args=ocp.args.StandardRestore(target))
  except Exception as e:  # noqa: BLE001 - Orbax raises several types for a mismatched tree
    line = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
    raise UserError(f"{workdir}: the checkpoint at step {step} does not match the state of its "
                    f"config.json ({type(e).__name__}: {line})") from None
  finally:
    manager.close()
  local = train.seed_states(s, state)[seed] if k > 1 else train.host_state(state)
  return Run(config, s, local, step, workdir)
