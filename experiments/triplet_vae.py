"""The triplet VAE (../shared/papers/triplet_vae.md): Tables II-III, Figures 4-5, traversals.

  python experiments/triplet_vae.py --workdir=runs/triplet_vae [--steps=N] [--seeds=K] [--quick]
      [--tables_only] [--only=m1,m2] [--config.X=value] [--tune_variance=0.001,0.01]
      [--tune_anneal=0.5,1] [--tune_gamma=0.01,0.04,0.16]

Trains (or resumes) VAE, M1 and M2 in the posed setting (Table II: 7 emotions, artificial
triplets) and the spontaneous setting (Table III: positive/negative, crowd triplets with 5
simulated votes, satisfied fractions at vote difference 5/3/1), each one run of affectjax.runner
in workdir/<setting>/<model> with K seeds in one program (one data set; seed i: root key and data
order i), and writes tables.md (mean [95 % interval] over seeds) and the figures into the workdir. The raw
and PCA rows come from the same data as the models. Because the synthetic truth is known, the
tables also give the linear R^2 of the true AU intensities and identity leakage (accuracy of a
linear identity classifier on the held-out people; chance beside it).
--steps shortens every run and scales the KL annealing and the model-selection interval with it
(the paper anneals over all 100,000 iterations and selects every 2,500, i.e. 40 times).
--tune_variance / --tune_anneal / --tune_gamma tune each model as the paper's Sec. V-D did (its
architecture search is not repeated): every combination is a run in workdir/<setting>/tune/, and
the one with the best validation ELBO (the validation split only) fills the tables.
"""
import itertools
import os

import numpy as np
from absl import flags

from affectjax import config as config_lib, experiment, runner
from affectjax.configs import triplet_vae as tv_configs
from affectjax.data.example import EMOTIONS
from affectjax.evaluate import seeds as seeds_lib
from affectjax.methods.triplet_vae import evaluate as ev

flags.DEFINE_string("workdir", None, "Where the runs and the tables go.")
_STEPS = flags.DEFINE_integer("steps", 0, "Override train.num_steps of every model (0: the paper's 100,000).")
_SEEDS = flags.DEFINE_integer(
    "seeds", 1, "Seeds per model, trained as one program (train.num_seeds); more than a finished run's "
    "add the missing ones (affectjax.runner).")
experiment.define_overrides(tv_configs.get_config())  # --config.X=value: that field of every run
_QUICK = flags.DEFINE_bool("quick", False, "Tiny models and data (a smoke test, not a result).")
_MODELS = flags.DEFINE_list("models", ["vae", "m1", "m2"], "Models to train (m2_prior too if asked).")
_SETTINGS = flags.DEFINE_list("settings", ["posed", "spontaneous"], "Table II (posed), Table III (spontaneous).")
_TABLES_ONLY = flags.DEFINE_bool("tables_only", False, "Only tabulate the runs already reported in workdir.")
_ONLY = flags.DEFINE_list("only", [], "Train only these models (e.g. more seeds for them); the others' "
                          "finished runs are read with the seeds they hold.")
_TUNE_VARIANCE = flags.DEFINE_list("tune_variance", [], "Reconstruction variances (loss.variance) to "
                                   "tune every model over (Sec. V-D), e.g. 0.001,0.01.")
_TUNE_ANNEAL = flags.DEFINE_list("tune_anneal", [], "Annealing lengths to tune over, as fractions of "
                                 "the run's steps (loss.anneal_steps), e.g. 0.5,1.")
_TUNE_GAMMA = flags.DEFINE_list("tune_gamma", [], "Topological variances (loss.gamma) to tune M2 "
                                "over, e.g. 0.01,0.04,0.16.")

# The paper's numbers (Tables II, III) beside ours.
PAPER = {
    "posed": {"raw": (249, 0.72, 0.593), "pca": (30, 0.676, 0.592), "vae": (30, 0.64, 0.592),
              "m1": (30, 0.72, 0.67), "m2": (30, 0.736, 0.798)},
    "spontaneous": {"raw": (249, 0.842, 0.747, 0.615, 0.549), "pca": (30, 0.824, 0.743, 0.608, 0.549),
                    "vae": (30, 0.838, 0.706, 0.593, 0.494), "m1": (30, 0.853, 0.629, 0.575, 0.512),
                    "m2": (30, 0.835, 0.830, 0.701, 0.559)},
}
ROW_NAMES = {"raw": "None (raw)", "pca": "PCA", "vae": "VAE", "m1": "M1", "m2": "M2",
             "m2_prior": "M2 (anneal whole prior)"}


def model_config(model: str, setting: str):
  arg = model + (",spontaneous" if setting == "spontaneous" else "") + (",tiny" if _QUICK.value else "")
  c = tv_configs.get_config(arg)
  c.train.progress = False
  if _STEPS.value:
    config_lib.set_num_steps(c, _STEPS.value)
    c.loss.anneal_steps = min(c.loss.anneal_steps, _STEPS.value)
    c.eval.select_every = max(1, min(c.eval.select_every, _STEPS.value // 40))
    c.train.log_every = max(1, min(c.train.log_every, _STEPS.value // 10))
  return c


# ---------------------------------------------------------------- per-model tuning (Sec. V-D)
# The paper varied the reconstruction variance and the annealing length of every model, and M2's
# topological variance, keeping each model's setting with the best validation ELBO. --tune_*
# flags give the grid; the choice reads the validation split's ELBO only (eval/best_val_elbo, the
# model selection's own number), never the test split the tables score.
SELECT_KEY = "eval/best_val_elbo"


def grid(model: str) -> list[dict]:
  """Every combination of the --tune_* values that apply to `model` ([{}]: no tuning)."""
  axes = [("loss.variance", _TUNE_VARIANCE.value), ("anneal", _TUNE_ANNEAL.value)]
  if model.startswith("m2"):
    axes.append(("loss.gamma", _TUNE_GAMMA.value))
  axes = [(k, [float(v) for v in values]) for k, values in axes if values]
  return [dict(zip([k for k, _ in axes], combo))
          for combo in itertools.product(*[v for _, v in axes])]


def point_name(setting: str, model: str, point: dict) -> str:
  if not point:
    return f"{setting}/{model}"
  short = {"loss.variance": "var", "anneal": "ann", "loss.gamma": "g"}
  return f"{setting}/tune/{model}_" + "_".join(f"{short[k]}{v:g}" for k, v in point.items())


def point_config(model: str, setting: str, point: dict):
  c = model_config(model, setting)
  for k, v in point.items():
    if k == "anneal":
      c.loss.anneal_steps = max(1, int(round(v * c.train.num_steps)))
    else:
      runner.apply_overrides(c, {k: v})
  return c


def choose(results: dict, setting: str, model: str) -> tuple[str, list]:
  """(the chosen run's name, [(point, its mean validation ELBO)]) among the trained points."""
  scored = []
  for point in grid(model):
    seeds = results.get(point_name(setting, model, point))
    if seeds:
      vals = [m.get(SELECT_KEY, np.nan) for m in seeds]
      scored.append((point, float(np.nanmean(vals)) if np.isfinite(vals).any() else -np.inf))
  if not scored:
    return point_name(setting, model, {}), []
  best = max(range(len(scored)), key=lambda i: scored[i][1])  # the first of equals
  return point_name(setting, model, scored[best][0]), scored


CHOSEN: dict = {}  # (setting, model) -> (run name, [(point, validation ELBO)]), for tables/figures


def _row(seeds: list[dict], row: str) -> list[dict]:
  return [{k[len(row) + 1:]: v for k, v in m.items() if k.startswith(row + "_")} for m in seeds]


def _trainable(name: str) -> bool:
  base = name.split("/")[-1]  # <model>, or <model>_<point> for a tuning run
  return not _TABLES_ONLY.value and (not _ONLY.value or any(
      base == m or ("/tune/" in name and base.startswith(m + "_")) for m in _ONLY.value))


def run_all(workdir: str) -> dict:
  """{setting: {row: [metrics per seed]}} with rows raw, pca and the models (each model at its
  tuned setting when --tune_* are given)."""
  runs = [runner.Run(point_name(setting, model, point), point_config(model, setting, point))
          for setting in _SETTINGS.value for model in _MODELS.value for point in grid(model)]
  found = runner.execute(workdir, runs, seeds=_SEEDS.value, train=_trainable,
                         overrides=experiment.overrides(), rescore=experiment.rescore)
  results = runner.strip(found, "report/")
  out = {}
  for setting in _SETTINGS.value:
    rows, longest = {}, []
    for model in _MODELS.value:
      name, scored = choose(found, setting, model)
      CHOSEN[setting, model] = (name, scored)
      seeds = results.get(name)
      if not seeds:
        continue
      rows[model] = _row(seeds, model)
      longest = seeds if len(seeds) >= len(longest) else longest
    if rows:
      # raw and PCA depend on the data only (equal in every seed's report): taken from the run
      # with the most seeds, so a claim against them pairs over all of the model's seeds; on a
      # tie the later model's (M2's: the claims' arm, so both sides were evaluated together)
      out[setting] = {"raw": _row(longest, "raw"), "pca": _row(longest, "pca"), **rows}
  return out


def _cells(values, keys):
  return [seeds_lib.cell([v.get(k, np.nan) for v in values]) for k in keys]


# Where each claim's key sits in a PAPER row, and how the paper names it.
PAPER_COLUMNS = {"accuracy": (1, "accuracy"), "triplets_artificial": (2, "satisfied triplets"),
                 "triplets_crowd_5": (2, "satisfied triplets, column 5"),
                 "triplets_crowd_3": (3, "satisfied triplets, column 3"),
                 "triplets_crowd_1": (4, "satisfied triplets, column 1")}


def _paper_text(setting: str, a: str, b: str, key: str) -> str:
  """What the paper's Table II (posed) or III (spontaneous) reports for 'a beats b on key'."""
  table = "III" if setting == "spontaneous" else "II"
  if key not in PAPER_COLUMNS or a not in PAPER[setting] or b not in PAPER[setting]:
    return f"Table {table}: no number for {key}"
  i, what = PAPER_COLUMNS[key]
  return (f"Table {table}: {ROW_NAMES[a]} {PAPER[setting][a][i]} vs {ROW_NAMES[b]} "
          f"{PAPER[setting][b][i]} ({what})")


def tables(results: dict) -> str:
  parts = []
  for setting, rows in results.items():
    crowd = setting == "spontaneous"
    keys = (("accuracy", "triplets_crowd_5", "triplets_crowd_3", "triplets_crowd_1") if crowd
            else ("accuracy", "triplets_artificial"))
    extra = ("factor_r2", "identity_accuracy")
    title = ("Table III (spontaneous setting: positive/negative task, crowd triplets)" if crowd
             else "Table II (posed setting: 7 emotions, artificial triplets)")
    head = (["representation", "dim", "accuracy"]
            + (["triplets 5", "triplets 3", "triplets 1"] if crowd else ["triplets"])
            + ["AU R^2", "identity acc"])
    n = len(next(iter(rows.values())))
    lines = [f"### {title}, {n} seed(s), mean [95 % interval]", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row, values in rows.items():
      dim = int(values[0]["dim"])
      lines.append(f"| {ROW_NAMES.get(row, row)} | {dim} | " + " | ".join(_cells(values, keys + extra)) + " |")
    chance = seeds_lib.cell([v["identity_chance"] for v in next(iter(rows.values()))])
    lines += ["", f"Identity chance: {chance}. AU R^2: linear (ridge) map of the representation to the "
              "true AU intensities, test people.", "", "Paper:", "",
              "| representation | " + " | ".join(head[1:-2]) + " |", "|" + "---|" * (len(head) - 2)]
    for row, vals in PAPER[setting].items():
      lines.append(f"| {ROW_NAMES[row]} | " + " | ".join(str(v) for v in vals) + " |")
    claims = seeds_lib.Claims()
    tkey = "triplets_crowd_5" if crowd else "triplets_artificial"
    for a, b, key in (("m2", "vae", tkey), ("m2", "m1", tkey), ("m1", "vae", tkey),
                      ("m2", "raw", "accuracy"), ("m2", "vae", "accuracy")):
      if a in rows and b in rows:  # every row on the same seeds: paired
        claims.add(f"{ROW_NAMES[a]} > {ROW_NAMES[b]} on {key}", [v.get(key, np.nan) for v in rows[a]],
                   [v.get(key, np.nan) for v in rows[b]], paired=True,
                   paper=_paper_text(setting, a, b, key))
    lines += ["", f"Claims. {claims.HEADER}", ""]
    lines += [f"- {c.text}: {c.line()}" for c in claims.judged()]
    lines += _tuning_lines(setting)
    parts.append("\n".join(lines))
  return "\n\n".join(parts) + "\n"


def _tuning_lines(setting: str) -> list[str]:
  """Each tuned model's grid with its validation ELBO and the chosen point."""
  tuned = [(model, CHOSEN[setting, model]) for model in _MODELS.value
           if (setting, model) in CHOSEN and len(CHOSEN[setting, model][1]) > 1]
  if not tuned:
    return []
  out = ["", "Tuning (Sec. V-D): each model's setting with the best validation ELBO (mean over "
         "seeds; the test split is not read):", ""]
  for model, (name, scored) in tuned:
    cells = [", ".join(f"{k}={v:g}" for k, v in p.items()) + f": {elbo:.1f}" for p, elbo in scored]
    out.append(f"- {ROW_NAMES[model]}: chose {name.split('/')[-1]} ({'; '.join(cells)})")
  return out


def figures(workdir: str, results: dict):
  """Figures 4-5 from seed 0: the test representations in 3D by PCA, coloured by class."""
  paths = []
  for setting in results:
    reps, labels = {}, None
    for model in _MODELS.value:
      name = CHOSEN.get((setting, model), (f"{setting}/{model}",))[0]
      path = os.path.join(runner.seed_dir(workdir, name, 0, _SEEDS.value), "representations.npz")
      if not os.path.exists(path):
        continue
      d = np.load(path)
      if labels is None:
        labels = d["label"]
        reps["Original"] = d["raw_test"]
      reps[ROW_NAMES[model]] = d["z_test"]
    if labels is None or np.sum(labels >= 0) < 3:
      continue
    names = ("negative", "positive") if setting == "spontaneous" else EMOTIONS
    out = os.path.join(workdir, f"figure_{4 if setting == 'posed' else 5}_{setting}_pca.png")
    ev.pca_figure(out, reps, labels, names, title=f"{setting}: test people, 3 principal components")
    paths.append(out)
  return paths


def main(workdir: str) -> str:
  results = run_all(workdir)
  lines = [f"figure: {p}" for p in figures(workdir, results)]
  lines.append("traversals: " + os.path.join(runner.seed_dir(workdir, "<setting>/<model>", 0, _SEEDS.value),
                                             "traversals.png"))
  return tables(results) + "\n\n" + "\n".join(lines) + "\n"


if __name__ == "__main__":
  experiment.run(main)
