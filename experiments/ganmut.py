"""GANmut (../shared/papers/ganmut.md): StarGAN, GANmut (lambda_rho 4 and 1) and GGANmut on the
synthetic faces, and the paper's Tables 1-3 plus the learned directions against the true VA angles.

  python experiments/ganmut.py --workdir=runs/ganmut [--size=small|paper|tiny] [--steps=N]

Every run shares one evaluator classifier (workdir/evaluator, trained on the training split the
first time) so that their FED, smoothness, ERE and accuracy are comparable. Each run writes its
figures (space.png, interpolation.png, gamut.png) into its own directory; tables.md goes in workdir.
"""
import json
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "configs"))
import ganmut as ganmut_configs  # noqa: E402  (configs/ganmut.py)

from affectjax import config as config_lib, train  # noqa: E402
from affectjax.data.example import EMOTIONS  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "Where the runs and tables.md go.")
_SIZE = flags.DEFINE_enum("size", "small", ["small", "paper", "tiny"],
                          "small: 32x32 CPU runs; paper: 128x128 (GPU); tiny: a smoke test.")
_STEPS = flags.DEFINE_integer("steps", 0, "Override train.num_steps of every run (0: config's).")
_ONLY = flags.DEFINE_list("only", [], "Run only these (names of RUNS); the tables use what exists.")
_SEED = flags.DEFINE_integer("seed", 0, "config.seed of every run.")

# run name -> (config argument, label in the tables)
RUNS = {
    "stargan": ("stargan", "StarGAN"),
    "ganmut_rho1": ("linear,rho1", "GANmut (lambda_rho = 1)"),
    "ganmut": ("linear", "GANmut (lambda_rho = 4)"),
    "gganmut": ("gaussian", "GGANmut"),
}


def run_config(arg: str, workdir: str):
  size = "" if _SIZE.value == "paper" else "," + _SIZE.value
  c = ganmut_configs.get_config(arg + size)
  c.seed = _SEED.value
  c.eval.classifier_dir = os.path.join(workdir, "evaluator")
  if _STEPS.value:
    config_lib.set_num_steps(c, _STEPS.value)
  return c


def run_all(workdir: str) -> dict:
  out = {}
  for name, (arg, _) in RUNS.items():
    run_dir = os.path.join(workdir, name)
    path = os.path.join(run_dir, "ganmut_metrics.json")
    if not _ONLY.value or name in _ONLY.value:
      print(f"== {name} (configs/ganmut.py:{arg})", flush=True)
      train.train_and_evaluate(run_config(arg, workdir), run_dir)
    if os.path.exists(path):
      with open(path) as f:
        out[name] = json.load(f)
  return out


def _table(head, rows):
  fmt = lambda v: v if isinstance(v, str) else ("—" if v is None or not np.isfinite(v) else f"{v:.3f}")
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
  return "\n".join(lines) + "\n"


def tables(m: dict, nc: int = 7) -> str:
  get = lambda run, key: m[run].get(key) if run in m else None
  names = {k: v[1] for k, v in RUNS.items()}
  out = ["# GANmut on the synthetic faces: the paper's tables\n",
         "One evaluator classifier (the paper's VGGNet role) trained on the training split scores "
         "every run on held-out identities. Its accuracy on the real test faces: "
         + (f"{get(next(iter(m)), 'evaluator_acc_test'):.3f}" if m else "—") + ".\n"]
  cols1 = [r for r in ("stargan", "ganmut_rho1", "ganmut", "gganmut") if r in m]
  out += ["## Table 1: smoothness score (Sec. 5.2; lower is smoother, 0.1 is a linear ramp)\n",
          "Neutral to each emotion in 10 steps; max one-interval increase of the evaluator's "
          "softmax for that emotion over its total range, averaged over test faces. GGANmut (not in "
          "the paper's table) moves from the neutral mode to the emotion's mode.\n",
          _table(["emotion"] + [names[r] for r in cols1],
                 [[EMOTIONS[c]] + [get(r, f"smooth_{c}") for r in cols1] for c in range(1, nc)])]
  rows2 = [["Real", None, None, get(next(iter(m)), "fed_real") if m else None]]
  rows2 += [[names[r], get(r, "ere_1"), get(r, "ere_2"), get(r, "fed")]
            for r in ("stargan", "gganmut", "ganmut", "ganmut_rho1") if r in m]
  out += ["## Table 2: ERE and FED (Sec. 5.3)\n",
          "ERE Setting 1: targets with 3 high softmax values; Setting 2: with 2. FED: Frechet "
          "distance of evaluator penultimate features, real test faces vs generated from them; Real: "
          "two halves of the test set. GANimation and SMIT are not part of this issue.\n",
          _table(["method", "ERE Setting 1", "ERE Setting 2", "FED"], rows2)]
  rows3 = [["Real"] + [get(next(iter(m)), f"acc_real_{c}") if m else None for c in range(nc)]]
  rows3 += [[names[r]] + [get(r, f"acc_gen_{c}") for c in range(nc)]
            for r in ("stargan", "ganmut", "ganmut_rho1", "gganmut") if r in m]
  out += ["## Table 3: evaluator accuracy (%) on generated images\n",
          "Conditions: one-hot c (StarGAN), z = (theta_c, 1) (GANmut), z = mu_c (GGANmut).\n",
          _table(["method"] + [e.capitalize() for e in EMOTIONS[:nc]], rows3)]
  rows4 = []
  for r in ("ganmut", "ganmut_rho1", "gganmut"):
    if r in m and get(r, "angle_err_deg") is not None:
      angles = " ".join(f"{get(r, f'theta_deg_{c}'):.0f}" for c in range(1, nc))
      rows4.append([names[r], get(r, "angle_err_deg"),
                    "yes" if get(r, "angle_order_match") else "no", angles])
  out += ["## Learned directions vs the true valence-arousal angles (synthetic truth)\n",
          "True angle of emotion c: direction of its mean (valence, arousal) from the neutral mean. "
          "Error: mean absolute angle after the best rotation and reflection of the learned space.\n",
          _table(["method", "mean abs. error (deg)", "cyclic order matches",
                  "learned angles (deg), " + ", ".join(EMOTIONS[1:nc])], rows4)]
  return "\n".join(out)


def main(argv):
  del argv
  train.quiet_console_logging()
  workdir = _WORKDIR.value
  os.makedirs(workdir, exist_ok=True)
  m = run_all(workdir)
  text = tables(m)
  with open(os.path.join(workdir, "tables.md"), "w") as f:
    f.write(text)
  print(text)


if __name__ == "__main__":
  flags.mark_flags_as_required(["workdir"])
  app.run(main)
