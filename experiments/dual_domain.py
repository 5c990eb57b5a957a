"""Dual-domain affect fusion (../shared/papers/dual_domain_fusion.md) on the synthetic faces (or a
real dataset through --config.data.* style flags of each run's config): the paper's Table 3 (F1 of
one-hot / Euclid fusion / GMM fusion under 0-30 % injected label noise, plus accuracy against the
clean labels, which the synthetic faces know), Table 4 (alpha sweep), the Tables 1-2 rows of our
model with chance and ceiling rows, Figure 3 (GMM conditional probabilities over the VA plane)
and Figure 5 (VA errors, L2 vs weighted L2). Every cell is the mean [95 % interval] over --seeds.

  python experiments/dual_domain.py --workdir=runs/dual_domain [--size=small|paper|tiny]
      [--seeds=3] [--steps=N] [--only=table3,table4,fig5] [--noise=0,10,20,30] [--config.X=value]
      [--train_only=<run-name patterns>]

Each run is one affectjax.runner run in workdir/<run> with its --seeds in one program (one data
set; seed i: root key and data order i); a finished run is read back, not retrained, and a larger
--seeds adds the missing seeds to it. --train_only=<patterns> limits training (and added seeds)
to the runs named, e.g. more seeds for the 0 % cells alone: --seeds=7 --train_only='t3_*_noise0';
the others are read with the seeds they hold. tables.md,
fig3_gmm.png and fig5_va_errors.png go in workdir. --config.<field>=<value> (ml_collections'
override syntax, typed by configs/dual_domain.py) changes that field of every run.
"""
import fnmatch
import os

import numpy as np
from absl import flags

from affectjax import config as config_lib, experiment, runner
from affectjax.configs import dual_domain as dd_configs
from affectjax.data.example import EMOTIONS
from affectjax.evaluate import seeds as seeds_lib

flags.DEFINE_string("workdir", None, "Where the runs, tables.md and figures go.")
_SIZE = flags.DEFINE_enum("size", "small", ["small", "paper", "tiny"],
                          "small: 32x32 CPU runs; paper: 224x224 ResNet-18 (GPU); tiny: a smoke test.")
_STEPS = flags.DEFINE_integer("steps", 0, "Override train.num_steps of every run (0: config's).")
_SEEDS = flags.DEFINE_integer(
    "seeds", 1, "Seeds per cell (mean [95 % interval]); more than a finished run's add the missing ones "
    "(affectjax.runner).")
_ONLY = flags.DEFINE_list("only", ["table3", "table4", "fig5"], "Which studies to run.")
_NOISE = flags.DEFINE_list("noise", ["0", "10", "20", "30"], "Noise rates (%) of Table 3.")
_KINDS = flags.DEFINE_list("kinds", ["onehot", "euclid", "gmm"], "Label kinds of Table 3.")
_TRAIN_ONLY = flags.DEFINE_list(
    "train_only", [], "Run-name patterns (fnmatch, e.g. 't3_*_noise0') that may train or add seeds; "
    "the other runs are read with the seeds they hold (a claim pairs the seeds both arms hold).")
experiment.define_overrides(dd_configs.get_config())
_ALPHA_LABELS = flags.DEFINE_enum("alpha_labels", "euclid", ["euclid", "gmm"],
                                  "VA labels of the alpha sweep (Table 4).")

KIND_NAMES = {"onehot": "One-hot", "euclid": "Fusion (Euclidean)", "gmm": "Fusion (GMM)"}
# The paper's Table 3 (F1): {dataset: {noise %: (one-hot, Euclidean fusion, GMM fusion)}}
PAPER_T3 = {"AffectNet": {"0": (.6017, .6066, .5945), "10": (.5842, .5943, .5920),
                          "20": (.5193, .5890, .5748), "30": (.4336, .5822, .5746)},
            "Aff-Wild": {"0": (.2227, .2235, .2325), "10": (.2130, .2322, .2174),
                         "20": (.2184, .2322, .2305), "30": (.2221, .2242, .2267)},
            "MorphSet": {"0": (.8999, .8912, .8922), "10": (.8939, .8649, .9030),
                         "20": (.8709, .8514, .8866), "30": (.8377, .8224, .8883)}}
# The paper's Figure 5 (AffectNet): RMSE with L2 and with weighted L2
PAPER_FIG5 = {"valence": ("0.427", "0.33"), "arousal": ("0.39", "0.30")}  # as printed


def _paper_t3(kind: str, noise: str, metric: str) -> str:
  """What the paper reports for 'kind beats one-hot at noise % on metric'."""
  if metric == "accuracy_clean":
    return "not in the paper: Table 3 reports F1 against the given labels only"
  if metric == "ece":
    return "Sec. 1 claims lower calibration error; no ECE number per noise rate"
  if str(int(noise)) not in PAPER_T3["AffectNet"]:
    return f"Table 3: no {noise} % noise row (0, 10, 20, 30 only)"
  i = tuple(KIND_NAMES).index(kind)
  return f"Table 3 F1 at {int(noise)} %, {KIND_NAMES[kind]} vs one-hot: " + ", ".join(
      f"{d} {rows[str(int(noise))][i]:.4f} vs {rows[str(int(noise))][0]:.4f}" for d, rows in PAPER_T3.items())
ALPHAS = (0.0, 0.3, 0.5, 0.7, 1.0)


def run_config(arg: str, **fields):
  size = "" if _SIZE.value == "paper" else "," + _SIZE.value
  c = dd_configs.get_config(arg + size)
  c.train.progress = False
  runner.apply_overrides(c, fields)
  if _STEPS.value:
    config_lib.set_num_steps(c, _STEPS.value)
  return c


def _trainable(name: str) -> bool:
  return not _TRAIN_ONLY.value or any(fnmatch.fnmatchcase(name, p) for p in _TRAIN_ONLY.value)


def over_seeds(workdir, name, arg, **fields) -> list:
  """Each seed's report metrics of one affectjax.runner run in workdir/<name> (its K seeds in one
  program), with 'dir': where that seed's predictions and figures are."""
  run = runner.Run(name, run_config(arg, **fields))
  results = runner.strip(runner.execute(workdir, [run], seeds=_SEEDS.value, train=_trainable,
                                        overrides=experiment.overrides(), rescore=experiment.rescore), "report/")
  if name not in results:
    raise SystemExit(f"{os.path.join(workdir, name)} has no results and --train_only="
                     f"{','.join(_TRAIN_ONLY.value)} does not let it train")
  return [dict(m, dir=runner.seed_dir(workdir, name, k, _SEEDS.value))
          for k, m in enumerate(results[name])]


def _cell(values) -> str:
  """mean [95 % interval]; '(n = k)' where a run holds other than --seeds seeds (--train_only)."""
  n = len(values)
  return seeds_lib.cell(values) + (f" (n = {n})" if n != _SEEDS.value else "")


def col(runs, key):
  return [r.get(key, float("nan")) for r in runs]


def _table(head, rows):
  lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
  return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


# ---------------------------------------------------------------- chance and ceiling

def reference_rows(run_dir: str) -> dict:
  """Chance (majority class; VA predicted by the training mean 0) and the annotation ceiling
  (observed test labels/VA against the synthetic truth) from a run's saved test predictions."""
  p = np.load(os.path.join(run_dir, "predictions.npz"))
  y = p["label"]
  keep = y >= 0
  from affectjax.evaluate import affect_metrics as am
  major = np.bincount(y[keep]).argmax()
  out = {"chance_acc": am.accuracy(y, np.full_like(y, major)),
         "chance_f1": am.macro_f1(y, np.full_like(y, major), int(y.max()) + 1)}
  va = p["va"]
  out["chance_rmse"] = am.rmse(np.zeros_like(va), va)
  if "clean" in p.files:
    out["ceiling_acc"] = am.accuracy(p["clean"], y)
    out["ceiling_f1"] = am.macro_f1(p["clean"], y, int(y.max()) + 1)
  return out


# ---------------------------------------------------------------- studies

def table3(workdir: str) -> tuple[str, dict]:
  cells = {}
  for kind in _KINDS.value:
    for n in _NOISE.value:
      arg = kind + (f",noise{n}" if int(n) else "")
      cells[kind, n] = over_seeds(workdir, f"t3_{kind}_noise{n}", arg)
  out = ["## Table 3: F1 under injected label noise\n",
         "Macro F1 on the test identities (against their given labels), mean [95 % interval] over "
         f"{_SEEDS.value} seed(s) (a cell marked n = k: over the k its run holds). Noise: that share "
         "of training labels flipped to another class.\n",
         _table(["Noise (%)"] + [KIND_NAMES[k] for k in _KINDS.value],
                [[n] + [_cell(col(cells[k, n], "f1")) for k in _KINDS.value]
                 for n in _NOISE.value]),
         "\nAccuracy against the clean (true) labels of the synthetic faces:\n",
         _table(["Noise (%)"] + [KIND_NAMES[k] for k in _KINDS.value],
                [[n] + [_cell(col(cells[k, n], "accuracy_clean")) for k in _KINDS.value]
                 for n in _NOISE.value]),
         "\nExpected calibration error (15 bins; lower is better):\n",
         _table(["Noise (%)"] + [KIND_NAMES[k] for k in _KINDS.value],
                [[n] + [_cell(col(cells[k, n], "ece")) for k in _KINDS.value]
                 for n in _NOISE.value])]
  if "onehot" in _KINDS.value:
    claims = seeds_lib.Claims()  # every arm on the same seeds: paired
    for k in (k for k in _KINDS.value if k != "onehot"):
      for n in _NOISE.value:
        for metric, what, higher in (("f1", "F1", True), ("accuracy_clean", "clean accuracy", True),
                                     ("ece", "lower ECE", False)):
          claims.add(f"{KIND_NAMES[k]} beats one-hot at {n} % noise: {what}",
                     col(cells[k, n], metric), col(cells["onehot", n], metric), paired=True,
                     higher_is_better=higher, paper=_paper_t3(k, n, metric))
    out += [f"\nClaims (Sec. 5.1). {claims.HEADER}\n",
            "\n".join(f"- {c.text}: {c.line()}" for c in claims.judged()) + "\n"]
  return "\n".join(out), cells


def table4(workdir: str) -> str:
  k = _ALPHA_LABELS.value
  rows = []
  for a in ALPHAS:
    name = f"t3_{k}_noise0" if a == 0.5 and k in _KINDS.value else f"t4_{k}_alpha{a}"
    runs = over_seeds(workdir, name, k, **{"labels.alpha": a})
    rows.append([f"{a:.1f}"] + [_cell(col(runs, m)) for m in
                                ("rmse_v", "rmse_a", "accuracy", "f1")])
  return "\n".join([f"## Table 4: fusion alpha ({KIND_NAMES[k]}, no injected noise)\n",
                    "alpha = 1 is one-hot labels, 0 the VA labels alone (Eq. 4).\n",
                    _table(["alpha", "RMSE V", "RMSE A", "Accuracy", "F1"], rows)])


def tables12(workdir: str, runs: list) -> str:
  ref = reference_rows(runs[0]["dir"])
  t1 = [["Ours (Euclid fusion, alpha 0.5)", _cell(col(runs, "accuracy")),
         _cell(col(runs, "f1"))],
        ["Chance (majority class)", f"{ref['chance_acc']:.3f}", f"{ref['chance_f1']:.3f}"]]
  if "ceiling_acc" in ref:
    t1.append(["Ceiling (given test labels vs the truth)", f"{ref['ceiling_acc']:.3f}",
               f"{ref['ceiling_f1']:.3f}"])
  t2 = [["Ours"] + [_cell(col(runs, m)) for m in ("rmse_v", "rmse_a", "ccc_v", "ccc_a")],
        ["Chance (predict 0)", f"{ref['chance_rmse'][0]:.3f}", f"{ref['chance_rmse'][1]:.3f}",
         "0.000", "0.000"]]
  return "\n".join(["## Table 1: classification (our model)\n",
                    _table(["Method", "Accuracy", "F1"], t1),
                    "\n## Table 2: valence/arousal regression (our model; CCC over the whole test set)\n",
                    _table(["Method", "RMSE V", "RMSE A", "CCC V", "CCC A"], t2)])


def fig3(path: str, stats_path: str):
  """GMM conditional probabilities p(y = k | x) over the VA plane (Eq. 2), one panel per class
  plus the argmax map, from a run's class statistics."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from affectjax.affect import mixed_labels as ml
  s = np.load(stats_path)
  g = np.linspace(-1, 1, 121)
  vv, aa = np.meshgrid(g, g)
  p = np.asarray(ml.gmm_labels(np.stack([vv.ravel(), aa.ravel()], -1), s["priors"], s["means"], s["covs"]))
  c = p.shape[1]
  fig, axes = plt.subplots(1, c + 1, figsize=(2.2 * (c + 1), 2.4))
  for k in range(c):
    axes[k].imshow(p[:, k].reshape(vv.shape), origin="lower", extent=(-1, 1, -1, 1), vmin=0, vmax=1,
                   cmap="viridis")
    axes[k].plot(*s["means"][k], "r+")
    axes[k].set_title(EMOTIONS[k], fontsize=8)
  axes[c].imshow(p.argmax(-1).reshape(vv.shape), origin="lower", extent=(-1, 1, -1, 1), cmap="tab10",
                 vmin=0, vmax=9)
  axes[c].set_title("argmax", fontsize=8)
  for a in axes:
    a.set_xticks([]), a.set_yticks([])
  axes[0].set_xlabel("valence"), axes[0].set_ylabel("arousal")
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)


def fig5(workdir: str, path: str) -> str:
  """VA errors of plain L2 vs weighted L2 (Eq. 8): each test face at its annotated VA, coloured by
  its error, with the RMSE in the title."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  plain = over_seeds(workdir, "f5_plain_l2", "euclid", **{"loss.weighted_l2": False})
  weighted = over_seeds(workdir, "t3_euclid_noise0", "euclid") if "euclid" in _KINDS.value else \
      over_seeds(workdir, "f5_weighted_l2", "euclid")
  fig, axes = plt.subplots(2, 2, figsize=(8.5, 8), constrained_layout=True)  # no label overlaps
  for row, (name, runs) in enumerate((("L2", plain), ("weighted L2", weighted))):
    p = np.load(os.path.join(runs[0]["dir"], "predictions.npz"))
    err = np.abs(p["va_pred"] - p["va"])
    for j, dim in enumerate(("valence", "arousal")):
      ax = axes[row, j]
      sc = ax.scatter(p["va"][:, 0], p["va"][:, 1], c=err[:, j], s=4, cmap="magma_r", vmin=0, vmax=1)
      ax.set(xlim=(-1, 1), ylim=(-1, 1), xlabel="valence", ylabel="arousal")
      ax.set_title(f"{name}: {dim} RMSE {np.sqrt(np.nanmean(err[:, j] ** 2)):.3f}", fontsize=9)
  fig.colorbar(sc, ax=axes.ravel().tolist(), shrink=0.6, label="|error|")
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)
  rows = [[name] + [_cell(col(runs, m)) for m in ("rmse_v", "rmse_a", "ccc_v", "ccc_a")]
          for name, runs in (("L2", plain), ("weighted L2 (Eq. 8)", weighted))]
  claims = seeds_lib.Claims()
  for m, dim in (("rmse_v", "valence"), ("rmse_a", "arousal")):
    claims.add(f"Weighted L2 lowers RMSE ({dim})", col(weighted, m), col(plain, m), paired=True,
               higher_is_better=False, paper=f"Fig. 5 (AffectNet) {dim} RMSE: weighted L2 "
               f"{PAPER_FIG5[dim][1]} vs L2 {PAPER_FIG5[dim][0]}")
  return "\n".join(["## Figure 5: L2 vs weighted L2 (fig5_va_errors.png)\n",
                    _table(["Loss", "RMSE V", "RMSE A", "CCC V", "CCC A"], rows),
                    f"\n{claims.HEADER}\n"]
                   + [f"- {c.text}: {c.line()}" for c in claims.judged()] + [""])


def main(workdir: str) -> str:
  parts = [f"# Dual-domain fusion on the {_SIZE.value} preset ({_SEEDS.value} seed(s)"
           f"{f', {_STEPS.value} steps' if _STEPS.value else ''})\n"]
  if "table3" in _ONLY.value:
    text, cells = table3(workdir)
    parts.append(text)
    base = cells.get(("euclid", "0"))
    if base:
      parts.append(tables12(workdir, base))
    gmm = cells.get(("gmm", _NOISE.value[0]))
    if gmm:
      fig3(os.path.join(workdir, "fig3_gmm.png"), os.path.join(gmm[0]["dir"], "class_statistics.npz"))
      parts.append("Figure 3: fig3_gmm.png (GMM conditional probabilities over the VA plane).\n")
  if "table4" in _ONLY.value:
    parts.append(table4(workdir))
  if "fig5" in _ONLY.value:
    parts.append(fig5(workdir, os.path.join(workdir, "fig5_va_errors.png")))
  return "\n".join(parts)


if __name__ == "__main__":
  # seed 0's test predictions (chance, ceiling, Figure 5) and class statistics (Figure 3)
  experiment.run(main, records=("predictions.npz", "class_statistics.npz", "seed_0/predictions.npz",
                                "seed_0/class_statistics.npz"))
