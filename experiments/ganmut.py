"""GANmut (../shared/papers/ganmut.md): StarGAN, GANmut (lambda_rho 4 and 1) and GGANmut on the
synthetic faces, over several seeds: the paper's Tables 1-3, identity preservation, and the learned
directions against the true VA angles and the AU prototypes, with chance and real-face rows.

  python experiments/ganmut.py --workdir=runs/ganmut [--size=small|paper|tiny] [--seeds=3]
      [--seed=0] [--steps=N] [--only=ganmut,stargan] [--tables_only] [--config.X=value]

Each model is one affectjax.runner run in workdir/<run> with its --seeds trained as one program
(train.num_seeds; one data set, config.seed's; seed i: root key and data order seed + i), each
seed's figures (space.png, interpolation.png, gamut.png) and ganmut_metrics.json in its seed_<i>/;
a finished run is read back, not retrained. Every run is scored by one evaluator classifier
(cached under workdir/evaluator by its config and data, trained on the training split the first
time), so FED, smoothness, ERE and accuracy are comparable across runs and seeds. tables.md goes in
workdir: every cell is the mean over seeds with its 95 % interval, every claim a paired test over
the seeds (affectjax.evaluate.seeds). --config.<field>=<value> (ml_collections' override syntax,
typed by configs/ganmut.py) changes that field of every run.
Cost: one small run of 3 seeds takes about 15 minutes on 2 CPU cores (four runs).
"""
import os

import numpy as np
from absl import flags

from affectjax import config as config_lib, experiment, runner
from affectjax.configs import ganmut as ganmut_configs
from affectjax.affect.emotions import EMOTIONS
from affectjax.evaluate import seeds

flags.DEFINE_string("workdir", None, "Where the runs and tables.md go.")
_SIZE = flags.DEFINE_enum("size", "small", ["small", "paper", "tiny"],
                          "small: 32x32 CPU runs; paper: 128x128 (GPU); tiny: a smoke test.")
_STEPS = flags.DEFINE_integer("steps", 0, "Override train.num_steps of every run (0: config's).")
_ONLY = flags.DEFINE_list("only", [], "Train only these (names of RUNS); the tables use what exists.")
_TABLES_ONLY = flags.DEFINE_bool("tables_only", False, "Train nothing: tables of the finished runs.")
_SEED = flags.DEFINE_integer("seed", 0, "config.seed of every run: its data set; seed i trains "
                             "with root key and data order seed + i.")
_SEEDS = flags.DEFINE_integer(
    "seeds", 3, "Seeds per model, trained as one program (train.num_seeds); more than a finished run's "
    "add the missing ones (affectjax.runner).")
experiment.define_overrides(ganmut_configs.get_config())

# run name -> (config argument, label in the tables)
RUNS = {
    "stargan": ("stargan", "StarGAN"),
    "ganmut_rho1": ("linear,rho1", "GANmut (lambda_rho = 1)"),
    "ganmut": ("linear", "GANmut (lambda_rho = 4)"),
    "gganmut": ("gaussian", "GGANmut"),
}
NAMES = {k: v[1] for k, v in RUNS.items()}


def run_config(arg: str, workdir: str):
  size = "" if _SIZE.value == "paper" else "," + _SIZE.value
  c = ganmut_configs.get_config(arg + size)
  c.seed = _SEED.value
  c.train.progress = False
  c.eval.classifier_dir = os.path.join(os.path.abspath(workdir), "evaluator")
  if _STEPS.value:
    config_lib.set_num_steps(c, _STEPS.value)
  return c


def _trainable(name: str) -> bool:
  return not _TABLES_ONLY.value and (not _ONLY.value or name in _ONLY.value)


def run_all(workdir: str) -> dict:
  """{run name: [report metrics of each seed]} for the runs that exist after training the
  requested ones."""
  runs = [runner.Run(name, run_config(arg, workdir)) for name, (arg, _) in RUNS.items()]
  return runner.strip(runner.execute(workdir, runs, seeds=_SEEDS.value, train=_trainable,
                                     overrides=experiment.overrides(), rescore=experiment.rescore), "report/")


# ---------------------------------------------------------------- tables

def values(m, run, key):
  return [r[key] for r in m.get(run, []) if key in r]


def _table(head, rows):
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  lines += ["| " + " | ".join(str(v) for v in r) + " |" for r in rows]
  return "\n".join(lines) + "\n"


def _mean_over(m, run, keys):
  """Per seed, the mean of `keys` (e.g. over emotions)."""
  return [float(np.mean([r[k] for k in keys])) for r in m.get(run, []) if all(k in r for k in keys)]


def _claims(rows):
  return _table(["claim (paper)", "A", "B", "verdict"], rows)


def tables(m: dict, nc: int = 7) -> str:
  cell = lambda v, d=3: seeds.cell(v, d)
  present = [r for r in RUNS if r in m]
  first = m[present[0]] if present else []
  n_seeds = {r: len(m[r]) for r in present}

  def ref(key):
    """A reference number (Real, chance) per seed, from the first run that reports it."""
    for run in present:
      if values(m, run, key):
        return values(m, run, key)
    return []

  out = ["# GANmut on the synthetic faces: the paper's tables over seeds\n",
         "Cells: mean [95 % interval] over seeds (" + ", ".join(f"{NAMES[r]}: {n}"
                                                              for r, n in n_seeds.items())
         + "). One evaluator classifier (the paper's VGGNet role), trained on the training split, "
         "scores every run and seed on held-out identities; its accuracy on the real test faces: "
         + cell(ref("evaluator_acc_test")) + f" over {cell(ref('test_faces'), 0)} test faces.\n"]

  # Table 1
  smooth = [f"smooth_{c}" for c in range(1, nc)]
  rows = [[EMOTIONS[c]] + [cell(values(m, r, f"smooth_{c}")) for r in present] + ["0.100", "1.000"]
          for c in range(1, nc)]
  rows.append(["mean"] + [cell(_mean_over(m, r, smooth)) for r in present] + ["0.100", "1.000"])
  out += ["## Table 1: smoothness score (Sec. 5.2; lower is smoother)\n",
          "Neutral to each emotion in 10 steps; max one-interval increase of the evaluator's "
          "softmax for that emotion over its total range, averaged over test faces. A path that "
          "falls or stays flat scores 1 (never better than a ramp). Reference columns: the smoothest "
          "rising ramp (0.1) and an abrupt switch (1). GGANmut moves from the neutral mode to the "
          "emotion's mode.\n",
          _table(["emotion"] + [NAMES[r] for r in present] + ["ramp (ideal)", "switch"], rows)]
  mono = [f"monotone_{c}" for c in range(1, nc)]
  rows = [[EMOTIONS[c]] + [cell(values(m, r, f"monotone_{c}")) for r in present]
          for c in range(1, nc)]
  rows.append(["mean"] + [cell(_mean_over(m, r, mono)) for r in present])
  out += ["Fraction of monotone paths (the target's softmax never falls by more than 0.01 in a "
          "step and rises overall):\n", _table(["emotion"] + [NAMES[r] for r in present], rows)]

  # Table 2
  rows = [["Real (two halves of the test faces)", "—", "—", cell(ref("fed_real")),
           cell(ref("fed_n"), 0)],
          ["chance: the uniform distribution", cell(ref("ere_uniform_1"), 4),
           cell(ref("ere_uniform_2"), 4), "—", "—"],
          ["real faces: the best other test face", cell(ref("ere_real_1"), 4),
           cell(ref("ere_real_2"), 4), "—", "—"]]
  rows += [[NAMES[r], cell(values(m, r, "ere_1"), 4), cell(values(m, r, "ere_2"), 4),
            cell(values(m, r, "fed")), cell(values(m, r, "fed_n"), 0)]
           for r in ("stargan", "gganmut", "ganmut", "ganmut_rho1") if r in m]
  out += ["## Table 2: ERE and FED (Sec. 5.3)\n",
          "ERE over every test batch of 16 (" + cell(ref("ere_targets"), 0) + " targets per "
          "setting): Setting 1 targets have 3 high softmax values, Setting 2 have 2; lower is "
          "better. FED: Frechet distance of evaluator penultimate features between one random half "
          "of the test faces and the other half (Real) or G(other half, random codes of the space) "
          "(generators), so both use the same sample size (faces per half in the last column). "
          "GANimation and SMIT are not part of this issue.\n",
          _table(["method", "ERE Setting 1", "ERE Setting 2", "FED", "FED faces per half"], rows)]

  # Table 3
  acc = [f"acc_gen_{c}" for c in range(nc)]
  rows = [["chance (uniform guess)"] + [f"{100 / nc:.1f}"] * nc + [f"{100 / nc:.1f}"],
          ["majority class"] + ["—"] * nc + [cell(ref("acc_majority"), 1)],
          ["Real"] + [cell(ref(f"acc_real_{c}"), 1) for c in range(nc)]
          + [cell(_mean_over({"x": first}, "x", [f"acc_real_{c}" for c in range(nc)]), 1)]]
  rows += [[NAMES[r]] + [cell(values(m, r, f"acc_gen_{c}"), 1) for c in range(nc)]
           + [cell(_mean_over(m, r, acc), 1)]
           for r in ("stargan", "ganmut", "ganmut_rho1", "gganmut") if r in m]
  out += ["## Table 3: evaluator accuracy (%) on generated images\n",
          "Conditions: one-hot c (StarGAN), z = (theta_c, 1) (GANmut), z = mu_c (GGANmut), on every "
          "test face.\n",
          _table(["method"] + [e.capitalize() for e in EMOTIONS[:nc]] + ["mean"], rows)]

  # identity preservation
  rows = [["another test face (reference)", cell(ref("id_l1_other_face"))]]
  rows += [[NAMES[r], cell(values(m, r, "id_l1_neutral"))] for r in present]
  out += ["## Identity preservation\n",
          "Mean per-pixel L1 (images in [-1, 1]) between G(x, neutral code) and x on held-out faces "
          "(neutral code: the origin, mu_neutral, onehot(neutral)); lower keeps the person.\n",
          _table(["method", "L1(G(x, neutral), x)"], rows)]

  # directions
  rows = [["random directions (chance)", cell(ref("angle_err_chance_deg"), 1), "—", "—"],
          ["true VA directions (reference)", "0", "yes", cell(ref("au_sim_r_true_va"))]]
  for r in ("ganmut", "ganmut_rho1", "gganmut"):
    if values(m, r, "angle_err_deg"):
      rows.append([NAMES[r], cell(values(m, r, "angle_err_deg"), 1),
                   f"{np.mean(values(m, r, 'angle_order_match')):.2f}",
                   cell(values(m, r, "au_sim_r"))])
  out += ["## Learned directions vs the synthetic truth\n",
          "True angle of emotion c: direction of its mean (valence, arousal) from the neutral mean. "
          "Error: mean absolute angle after the best rotation and reflection of the learned space. "
          "AU similarity r: Pearson r over emotion pairs between cos(angle difference) and the "
          "cosine similarity of their AU prototypes (REFERENCE.md).\n",
          _table(["method", "mean abs. error (deg)", "cyclic order matches (fraction of seeds)",
                  "AU similarity r"], rows)]

  # verdicts
  lower = dict(higher_is_better=False)
  claims, judged = [], seeds.Claims()
  def claim(text, a, b, va, vb, paper="", **kw):
    if len(va) and len(vb):  # both sides were run, on the same seeds: paired
      claims.append([text, NAMES.get(a, a), NAMES.get(b, b)])
      judged.add(text, va, vb, paired=True, paper=paper, **kw)
  claim("GANmut interpolates more smoothly than StarGAN (Table 1, mean)", "ganmut", "stargan",
        _mean_over(m, "ganmut", smooth), _mean_over(m, "stargan", smooth),
        paper="Table 1: GANmut 0.33-0.38 vs StarGAN 0.43-0.79 per emotion (mean of the 6: "
        "0.36 vs 0.55)", **lower)
  claim("lambda_rho = 4 is smoother than lambda_rho = 1 (Sec. 5.2)", "ganmut", "ganmut_rho1",
        _mean_over(m, "ganmut", smooth), _mean_over(m, "ganmut_rho1", smooth),
        paper="Sec. 5.2: qualitative (Fig. 4), no number for lambda_rho = 1", **lower)
  claim("GGANmut reproduces complex emotions best (ERE Setting 1)", "gganmut", "ganmut",
        values(m, "gganmut", "ere_1"), values(m, "ganmut", "ere_1"),
        paper="Table 2 ERE Setting 1: GGANmut 0.020 vs GANmut 0.025", **lower)
  claim("GANmut's ERE is below StarGAN's (Setting 1)", "ganmut", "stargan",
        values(m, "ganmut", "ere_1"), values(m, "stargan", "ere_1"),
        paper="Table 2 ERE Setting 1: GANmut 0.025 vs StarGAN 0.038", **lower)
  claim("GANmut's FED is below StarGAN's (Table 2)", "ganmut", "stargan",
        values(m, "ganmut", "fed"), values(m, "stargan", "fed"),
        paper="Table 2 FED: GANmut 0.71 vs StarGAN 4.89 (Real 0.21)", **lower)
  claim("GGANmut's FED is above GANmut's (Table 2)", "gganmut", "ganmut",
        values(m, "gganmut", "fed"), values(m, "ganmut", "fed"),
        paper="Table 2 FED: GGANmut 18.32 vs GANmut 0.71")
  if present:
    claim("generated expressions are more recognisable than real ones (Table 3, mean)", "ganmut",
          "Real", _mean_over(m, "ganmut", acc),
          _mean_over({"x": first}, "x", [f"acc_real_{c}" for c in range(nc)]),
          paper="Table 3 accuracy (%), mean of the 7 classes: GANmut 91.1 vs Real 58.2")
    claim("the learned directions follow valence-arousal better than chance", "ganmut", "chance",
          values(m, "ganmut", "angle_err_deg"), ref("angle_err_chance_deg"),
          paper="Sec. 5.1, Sec. 6: qualitative (Figs. 1, 3: space resembles VA), no number", **lower)
  rows = [row + [c.line()] for row, c in zip(claims, judged.judged())]
  out += ["## Verdicts\n", seeds.Claims.HEADER + "\n", _claims(rows)]
  return "\n".join(out)


def main(workdir: str) -> str:
  return tables(run_all(workdir))


if __name__ == "__main__":
  experiment.run(main)
