"""LeVAsa (../shared/papers/levasa.md): the paper's five models and its Tables 1-3, Figures 2-4.

  python experiments/levasa.py --workdir=runs/levasa_paper [--steps=N] [--seeds=K] [--quick]
      [--tables_only] [--only=levasa_afew,vanilla_afew] [--config.X=value]

Trains (or resumes) Vanilla VAE and LeVAsa on the IMFDB-like set (labels only; VA by annotation
transfer from the AffectNet-like reference set; continuous and discrete) and on the AFEW-like
set (discrete VA only), each one affectjax.runner run in workdir/<model> with K seeds in one
program (one data set, config.seed's; seed i: root key and data order seed + i), then writes
tables.md and the figures into the workdir.

Every number is measured on held-out identities, per sample, with the same readout for both
models (levasa_eval's module docstring); LeVAsa's heads are a separate row. Each cell is the mean
over seeds with its 95 % interval; chance, a pixel baseline (PCA + the same probe) and ceiling rows
("ceilings: a supervised CNN on pixels and a probe on the ground-truth factors") sit beside the
models; every table is given for all test faces and for clearly expressive ones (true intensity >
0.5). Reports written before the CNN ceiling existed simply lack its row. Each claim is a
two-sided t-test over seeds, Holm-corrected across the paper's claims (affectjax.evaluate.seeds):
"holds" / "does NOT hold" at adjusted p < 0.05, else "inconclusive".
"""
import json
import os

import numpy as np
from absl import app, flags

from affectjax import config as config_lib, experiment, runner
from affectjax.configs import levasa as levasa_configs
from affectjax.affect import ellipses as ell
from affectjax.data import example, sources
from affectjax.evaluate import figures, seeds
from affectjax.evaluate.alignment import markdown_table
from affectjax.methods.levasa.evaluate import PAPER_STEPS

flags.DEFINE_string("workdir", None, "Where the runs and the tables go.")
_STEPS = flags.DEFINE_integer("steps", 0, "Override train.num_steps of every model (0: config's).")
_QUICK = flags.DEFINE_bool("quick", False, "Tiny models and data (a smoke test, not a result).")
_SEED = flags.DEFINE_integer("seed", 0, "config.seed of every model: its data set; seed i trains with root key and data order seed + i.")
_SEEDS = flags.DEFINE_integer(
    "seeds", 3, "Seeds per model, trained as one program (train.num_seeds); more than a finished run's "
    "add the missing ones (affectjax.runner).")
experiment.define_overrides(levasa_configs.get_config())  # --config.X=value: that field of every run
_TABLES_ONLY = flags.DEFINE_bool("tables_only", False, "Train nothing: write tables.md from the "
                                  "runs already finished in --workdir (missing runs are left out).")
_ONLY = flags.DEFINE_list("only", [], "Train only these models (run names, e.g. more seeds for "
                          "them); the others' finished runs are read with the seeds they hold.")
_CONFIG = flags.DEFINE_string("config_args", "", "Extra configs/levasa.py arguments for every "
                              "model, e.g. paper_length (GPU).")

# The paper's five models (Sec. 3): run name -> config argument.
MODELS = {
    "vanilla_imfdb": "vanilla",
    "levasa_imfdb_continuous": "continuous",
    "levasa_imfdb_discrete": "discrete",
    "vanilla_afew": "vanilla,afew",
    "levasa_afew": "discrete,afew",
}
# Whose run carries the reference rows of each dataset (a Vanilla run shares its data with these).
REFERENCE_RUN = {"imfdb": "levasa_imfdb_continuous", "imfdb_discrete": "levasa_imfdb_discrete",
                 "afew": "levasa_afew"}
SUBSETS = (("all", "all faces"), ("expressive", "expressive faces (intensity > 0.5)"))


def model_config(name: str, arg: str, seed: int):
  extra = ",".join(a for a in (_CONFIG.value, "tiny" if _QUICK.value else "") if a)
  c = levasa_configs.get_config(arg + ("," + extra if extra else ""))
  c.seed = seed
  c.train.progress = not _QUICK.value
  c.eval.reference_rows = name in REFERENCE_RUN.values()
  if _STEPS.value:
    config_lib.set_num_steps(c, _STEPS.value)
  return c


def run_all(workdir: str, train: bool = True) -> tuple[dict, int]:
  """{run name: [summary of seed 0, seed 1, ...]} and the number of training steps: one
  affectjax.runner run per model in workdir/<name>, its seeds in one program (train=False: only
  the runs already finished; --only: only those runs train, the others keep their seeds)."""
  unknown = sorted(set(_ONLY.value) - set(MODELS))
  if unknown:
    raise app.UsageError(f"--only={','.join(unknown)}: not a model here ({', '.join(MODELS)})")
  runs = [runner.Run(name, model_config(name, arg, _SEED.value)) for name, arg in MODELS.items()]
  finished = runner.execute(workdir, runs, seeds=_SEEDS.value,
                            train=lambda name: train and (not _ONLY.value or name in _ONLY.value),
                            overrides=experiment.overrides(), rescore=experiment.rescore)
  summaries, steps = {name: [] for name in MODELS}, 0
  for name in MODELS:
    held = len(finished.get(name, []))  # the seeds the run holds (--only: maybe not --seeds)
    for k in range(held):
      with open(os.path.join(runner.seed_dir(workdir, name, k, held), "levasa_report.json")) as f:
        summaries[name].append(json.load(f))
      steps = summaries[name][-1]["num_steps"]
  return summaries, steps


# ---------------------------------------------------------------- cells

def values(runs: list, *path) -> list:
  """One number from every seed's summary (NaN where a seed lacks it)."""
  out = []
  for s in runs:
    node = s
    for p in path:
      node = node.get(p) if isinstance(node, dict) else None
      if node is None:
        break
    out.append(float(node) if isinstance(node, (int, float)) else float("nan"))
  return out


def cell(runs, *path, digits=3) -> str:
  return seeds.cell(values(runs, *path), digits)


REFERENCE_ROWS = ("chance", "pixels", "cnn", "factors")


def row_label(row: str) -> str:
  return {"chance": "chance", "pixels": "pixels (PCA-256) + same probe",
          "cnn": "ceiling: supervised CNN on pixels",
          "factors": "ceiling: true factors + same probe"}[row]


def present(runs: list, row: str) -> bool:
  """Whether any seed's report has this row (older reports lack the CNN ceiling)."""
  return any(row in r["rows"] for r in runs)


def table_1a(s: dict, subset: str, key: str) -> str:
  cols = [("mse_valence", "V MSE"), ("r2_valence", "V R2"), ("mse_arousal", "A MSE"),
          ("r2_arousal", "A R2"), ("mse_combined", "Comb. MSE"), ("mae_combined", "Comb. MAE")]
  ref = s[REFERENCE_RUN["imfdb"]]
  rows = [("Vanilla VAE (ridge on its best chunks)", s["vanilla_imfdb"], "model"),
          ("LeVAsa (ridge on z_v, z_a)", s["levasa_imfdb_continuous"], "model"),
          ("LeVAsa's heads h_v, h_a (as trained)", s["levasa_imfdb_continuous"], "heads")]
  rows += [(row_label(r), ref, r) for r in REFERENCE_ROWS]
  body = [[label] + [cell(runs, "rows", row, subset, key, c) for c, _ in cols]
          for label, runs, row in rows if present(runs, row)]
  return markdown_table(["row"] + [h for _, h in cols], body)


def table_1b(s: dict, subset: str) -> str:
  rows = [("Vanilla VAE (logistic probe on its best chunks)", ("vanilla_imfdb", "vanilla_afew"), "model"),
          ("LeVAsa (logistic probe on z_v, z_a)", ("levasa_imfdb_discrete", "levasa_afew"), "model"),
          ("LeVAsa's BCE heads (normalised sigmoids)", ("levasa_imfdb_discrete", "levasa_afew"), "heads")]
  rows += [(row_label(r), (REFERENCE_RUN["imfdb_discrete"], REFERENCE_RUN["afew"]), r)
           for r in REFERENCE_ROWS]
  body = [[label] + [cell(s[n], "rows", row, subset, "ce", "combined") for n in names]
          for label, names, row in rows if any(present(s[n], row) for n in names)]
  return markdown_table(["row", "IMFDB-like", "AFEW-like"], body)


def table_2(s: dict) -> str:
  ref = s[REFERENCE_RUN["imfdb"]]
  rows = [("Vanilla VAE", s["vanilla_imfdb"], "model"), ("LeVAsa", s["levasa_imfdb_continuous"], "model")]
  rows += [(row_label(r), ref, r) for r in REFERENCE_ROWS]
  body = []
  for ax in ("valence", "arousal"):
    for label, runs, row in rows:
      if not present(runs, row):
        continue
      body.append([ax, label] + [cell(runs, "rows", row, "all", "regression", ax, m)
                                 for m in ("mse", "mae", "ev", "r2")]
                  + [cell(runs, "rows", row, "expressive", "regression", ax, "r2")])
  return markdown_table(["axis", "row", "MSE", "MAE", "EV", "R2", "R2 (expressive)"], body)


def table_3(s: dict) -> str:
  body = []
  van = s["vanilla_imfdb"]
  for ann, lev in (("Continuous", "levasa_imfdb_continuous"), ("Discrete", "levasa_imfdb_discrete")):
    for combo in (s[lev][0]["rows"]["model"]["all"].get("accuracy", {}) if s[lev] else {}):
      row = [ann, combo]
      for subset in ("all", "expressive"):
        v = values(van, "rows", "model", subset, "accuracy", combo)
        l = values(s[lev], "rows", "model", subset, "accuracy", combo)
        pl, pv = seeds.paired_arms(l, v)
        row += [seeds.cell(v), seeds.cell(l), seeds.cell(100 * (np.array(pl) - np.array(pv)), 1)]
      body.append(row)
  ref = s[REFERENCE_RUN["imfdb"]]
  inputs = {"chance": "(majority class)", "cnn": "(its emotion head)"}
  for r in REFERENCE_ROWS:
    if not present(ref, r):
      continue
    combo = "z_v+z_a" if r == "chance" else "all"
    row = [row_label(r), inputs.get(r, "all features")]
    for subset in ("all", "expressive"):
      row += [cell(ref, "rows", r, subset, "accuracy", combo), "", ""]
    body.append(row)
  return markdown_table(["annotation", "chunks", "Vanilla VAE (V)", "LeVAsa (L)", "L - V (%)",
                         "V, expressive", "L, expressive", "L - V, expressive (%)"], body)


def table_reconstruction(s: dict) -> str:
  runs = s["levasa_imfdb_continuous"]
  classes = list(runs[0].get("reconstruction", {})) if runs else []
  body = []
  for c in classes:
    body.append([c, cell(s["levasa_imfdb_continuous"], "reconstruction", c, "n", digits=0),
                 cell(s["levasa_imfdb_continuous"], "reconstruction", c, "expression_energy", digits=1),
                 cell(s["vanilla_imfdb"], "reconstruction", c, "recon_sse", digits=1),
                 cell(s["levasa_imfdb_continuous"], "reconstruction", c, "recon_sse", digits=1)])
  return markdown_table(["class (true)", "test faces", "expression energy",
                         "Vanilla VAE recon error", "LeVAsa recon error"], body)


def tables(s: dict, area: tuple, steps: int) -> str:
  k = ", ".join(f"{name} {len(runs)}" for name, runs in s.items())
  out = ["# LeVAsa on the synthetic faces: the paper's tables\n",
         f"Seeds per model: {k}; each cell is the mean over seeds [95 % interval] "
         "(affectjax.evaluate.seeds). Held-out identities, per sample.\n"]
  if steps < PAPER_STEPS:
    out.append(f"**Smoke-scale run**: {steps} training steps per model; the original trained about "
               f"{PAPER_STEPS:,} (`--config_args=paper_length` on a GPU). Read the numbers as a "
               "check of the pipeline, not as the paper's result.\n")
  out.append(f"Figure 2 (ellipses.png): the AffectNet-like reference set's 1-std ellipses cover "
             f"{100 * area[1]:.2f} % of the [-1, 1]^2 square on average (the paper says 3 %; "
             f"AffectNet's published stds give 1.95 %, REFERENCE.md).\n")
  out.append("## Table 1(a): alignment, IMFDB-like, continuous VA\n")
  out.append("Like for like: both models read out by the same ridge regression (V from the z_v "
             "chunk, A from the z_a chunk) fitted on the training split; the Vanilla VAE's chunks "
             "are the two best aligned ON THE TRAINING SPLIT. LeVAsa's trained heads are their own "
             "row. Target: the VA the models were trained on (annotation transfer). Combined = V + A "
             "(the paper's convention).\n")
  out.append("Reference rows (the data alone, no model): chance = predict the training mean / class "
             "frequencies / majority class; pixels (PCA-256) = the same probe on the training "
             "split's first 256 pixel principal components (a baseline, not a ceiling: it can "
             "overfit below chance); ceiling: supervised CNN = one small CNN trained on the "
             "training split's pixels with a VA head (Tables 1a, 2), a round(10 v) head per axis "
             "(Table 1b) and an emotion head (Table 3), early-stopped on a tenth of the training "
             "identities; ceiling: true factors = the same probe on the faces' ground-truth "
             "expression factors.\n")
  for subset, title in SUBSETS:
    out += [f"### {title}\n", table_1a(s, subset, "align")]
  out.append("### against the synthetic faces' true VA (known only here), all faces\n")
  out.append(table_1a(s, "all", "align_true_va"))
  out.append("\nThe paper's own metric definitions (REFERENCE.md: sum of 1,001 batch-of-2 means / "
             "2,000, |mean signed error| for MAE, training rows; LeVAsa's heads, the Vanilla VAE's "
             "raw chunks compared dimension by dimension), and the raw-chunk readout on held-out "
             "rows:\n")
  cols = ["mse_valence", "mae_valence", "mse_arousal", "mae_arousal", "mse_combined", "mae_combined"]
  out.append(markdown_table(["readout", "model"] + cols, [
      [label, m] + [cell(s[n], key, c) for c in cols]
      for label, key in (("paper metric", "align_paper_metric"), ("raw chunks, held out", "align_broadcast"))
      for m, n in (("Vanilla VAE", "vanilla_imfdb"), ("LeVAsa", "levasa_imfdb_continuous"))]))
  out.append("\n## Table 1(b): alignment, discrete VA (cross-entropy, nats, V + A)\n")
  out.append("Targets round(10 v), 21 classes per axis. Both models: the same multinomial logistic "
             "probe on their (z_v, z_a) chunks, fitted on the training split. LeVAsa's heads were "
             "trained with sigmoid BCE (Eq. 2) and are scored by their normalised sigmoids. Every "
             "distribution is mixed with 0.1 % of the uniform one (alignment.PROB_FLOOR).\n")
  for subset, title in SUBSETS:
    out += [f"### {title}\n", table_1b(s, subset)]
  out.append("\n## Table 2: VA regressive power (MLP regression of V from z_v, A from z_a; held out)\n")
  out.append(table_2(s))
  out.append("\n## Table 3: categorical emotion predictive power (one-hidden-layer MLP accuracy)\n")
  out.append(table_3(s))
  out.append("\n## Reconstruction (Figure 4) beside expression energy, IMFDB-like, held out\n")
  out.append("Sums of squares over H*W*C on [-1, 1] per image. Expression energy: |x - the same face "
             "rendered neutral|^2. A reconstruction error far above a class's energy means the "
             "decoder cannot show that expression.\n")
  out.append(table_reconstruction(s))
  out.append(markdown_table(["model", "pixel MSE"], [[k, cell(v, "pixel_mse", digits=4)] for k, v in s.items()]))
  out.append("\n## Does the paper's conclusion hold here?\n")
  out.append(seeds.Claims.HEADER + "\n")
  out.extend(verdicts(s))
  return "\n".join(out)


def verdicts(s: dict) -> list:
  """Each of the paper's claims, checked on these numbers (a statement, not a tuned result)."""
  v, lc, ld = s["vanilla_imfdb"], s["levasa_imfdb_continuous"], s["levasa_imfdb_discrete"]
  va, la = s["vanilla_afew"], s["levasa_afew"]
  m = ("rows", "model")
  claims = [
      ("LeVAsa aligns better than the Vanilla VAE (Table 1a, combined MSE, same readout)",
       values(lc, *m, "all", "align", "mse_combined"), values(v, *m, "all", "align", "mse_combined"), False),
      ("... on expressive faces", values(lc, *m, "expressive", "align", "mse_combined"),
       values(v, *m, "expressive", "align", "mse_combined"), False),
      ("... against the true VA", values(lc, *m, "all", "align_true_va", "mse_combined"),
       values(v, *m, "all", "align_true_va", "mse_combined"), False),
      ("LeVAsa's heads beat predict-the-mean (Table 1a, combined MSE)",
       values(lc, "rows", "heads", "all", "align", "mse_combined"),
       values(lc, "rows", "chance", "all", "align", "mse_combined"), False),
      ("LeVAsa aligns better on discrete IMFDB-like (Table 1b CE, same probe)",
       values(ld, *m, "all", "ce", "combined"), values(v, *m, "all", "ce", "combined"), False),
      ("LeVAsa aligns better on AFEW-like (Table 1b CE, same probe)",
       values(la, *m, "all", "ce", "combined"), values(va, *m, "all", "ce", "combined"), False),
      ("z_v regresses valence better (Table 2 R2)", values(lc, *m, "all", "regression", "valence", "r2"),
       values(v, *m, "all", "regression", "valence", "r2"), True),
      ("z_a regresses arousal better (Table 2 R2)", values(lc, *m, "all", "regression", "arousal", "r2"),
       values(v, *m, "all", "regression", "arousal", "r2"), True),
      ("z_v+z_a predicts emotion better (Table 3, continuous)",
       values(lc, *m, "all", "accuracy", "z_v+z_a"), values(v, *m, "all", "accuracy", "z_v+z_a"), True),
      ("z_v+z_a predicts emotion better (Table 3, discrete)",
       values(ld, *m, "all", "accuracy", "z_v+z_a"), values(v, *m, "all", "accuracy", "z_v+z_a"), True),
      ("LeVAsa's z_v+z_a beats its own z_v+z_a+z_z (Table 3, continuous)",
       values(lc, *m, "all", "accuracy", "z_v+z_a"), values(lc, *m, "all", "accuracy", "z_v+z_a+z_z"), True),
      ("LeVAsa reconstructs worse (Sec. 3.3, held-out pixel MSE)", values(lc, "pixel_mse"),
       values(v, "pixel_mse"), True),
  ]
  paper = [  # what the paper reports for each claim above, in the same order
      "Table 1a: combined MSE LeVAsa 0.2 vs Vanilla 3.31",
      "Table 1a: no expressive subset; all faces: combined MSE 0.2 vs 3.31",
      "Table 1a (vs the transferred VA labels only; no true VA): combined MSE 0.2 vs 3.31",
      "not in the paper (no predict-the-mean row); Table 1a: LeVAsa combined MSE 0.2",
      "Table 1b: CE LeVAsa 6.63 vs Vanilla 8.9 (IMFDB)",
      "Table 1b: CE LeVAsa 2.54 vs Vanilla 8.9 (AFEW)",
      "Table 2: valence R2 LeVAsa 0.015 vs Vanilla -0.012",
      "Table 2: arousal R2 LeVAsa 0.086 vs Vanilla -0.048",
      "Table 3 (continuous): z_v+z_a accuracy LeVAsa 0.38 vs Vanilla 0.32",
      "Table 3 (discrete): z_v+z_a accuracy LeVAsa 0.33 vs Vanilla 0.25",
      "Table 3 (continuous): LeVAsa z_v+z_a 0.38 vs z_v+z_a+z_z 0.33",
      "Sec. 3.3: qualitative (Fig. 4, 'slightly compromised'), no number",
  ]
  assert len(paper) == len(claims)
  judged = seeds.Claims()
  for (text, a, b, higher), said in zip(claims, paper):  # every model on the same seeds: paired
    judged.add(text, a, b, paired=True, higher_is_better=higher, paper=said)
  # the cells beside a line are over the seeds its test pairs
  return [f"- {c.text}: {c.line()} ({seeds.cell(pa, 4)} vs {seeds.cell(pb, 4)})"
          for c, (_, a, b, _) in zip(judged.judged(), claims) for pa, pb in [seeds.paired_arms(a, b)]]


def reference_figure(workdir: str) -> tuple:
  """Figure 2: ellipses of the AffectNet-like reference set, with their measured area."""
  c = model_config("levasa_imfdb_continuous", "continuous", _SEED.value)
  ref = sources.synthetic_arrays(c.data, c.seed, "affectnet_like")
  fitted = ell.fit_ellipses(ref["label"], ref["va"], c.data.num_classes)
  figures.plot_ellipses(os.path.join(workdir, "ellipses.png"), fitted, example.EMOTIONS[:c.data.num_classes])
  return ell.area_fraction(fitted)


def combined_figures(workdir: str):
  """Figures 3 and 4 from the first seed's runs."""
  base = lambda name: runner.seed_dir(workdir, name, 0, _SEEDS.value)
  needed = ([os.path.join(base(n), "encodings.npz") for n in REFERENCE_RUN.values()]
            + [os.path.join(base(n), "reconstructions.npz") for n in MODELS])
  if not all(os.path.exists(p) for p in needed):  # runs read back from records: figures as they were
    return
  panels = {}
  for title, name in (("IMFDB-like cont.", "levasa_imfdb_continuous"),
                      ("IMFDB-like disc.", "levasa_imfdb_discrete"), ("AFEW-like", "levasa_afew")):
    enc = np.load(os.path.join(base(name), "encodings.npz"))
    panels[title] = {"z_v": enc["test_z_v"], "z_a": enc["test_z_a"], "va": enc["test_va"],
                     "labels": enc["test_label"]}
  figures.plot_circumplex(os.path.join(workdir, "circumplex.png"), panels)
  rows = {}
  for name in MODELS:
    rec = np.load(os.path.join(base(name), "reconstructions.npz"))
    if name in ("vanilla_imfdb", "vanilla_afew"):
      rows[f"input ({name.split('_')[1]})"] = rec["originals"]
    rows[name] = rec["recon"]
  figures.plot_reconstructions(os.path.join(workdir, "reconstructions.png"), rows, value_range=(-1, 1))


def main(workdir: str) -> str:
  if _SEEDS.value < 1:
    raise app.UsageError(f"--seeds={_SEEDS.value} must be >= 1")
  from affectjax.data import synthetic
  synthetic.save_emotion_grid(os.path.join(workdir, "synthetic_faces.png"), seed=_SEED.value)
  area = reference_figure(workdir)
  summaries, steps = run_all(workdir, train=not _TABLES_ONLY.value)
  if not _TABLES_ONLY.value:
    combined_figures(workdir)
  return tables(summaries, area, steps)


if __name__ == "__main__":
  experiment.run(main, records=("levasa_report.json", "seed_*/levasa_report.json"))
