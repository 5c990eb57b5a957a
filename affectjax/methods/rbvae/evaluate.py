"""Rb-VAE's evaluation (rbvae.md Sec. 5.3, Table 1, Figs. 3-4), usable by any method whose
represent returns {'z'} (and {'e'} for a reference-based model) and whose generate draws G(z[, e]).

Linear probes fitted on a second split (Splits.probe_fit) and scored on a third (test =
probe_score) on the means of q(e|x) (Rb-VAE, sRb-VAE: 'main'), q(z|x) (their z-only control 'z')
or q(z|x) of a baseline ('main'): style digits -> mean absolute error of linear regressors of
scale, width, R, G, B (each factor in [0, 1], see FACTOR_RANGES); faces -> per-class accuracy of a
linear classifier of the 7 expressions. On synthetic faces also: AU intensities predicted from e
and how much identity leaks into e. Figures: conditional synthesis (Fig. 3) and attribute transfer
(Fig. 4), and reconstructions.
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np

from affectjax.data import source as source_lib
from affectjax.data.source import ArraySource
from affectjax.data.sources import Splits
from affectjax.evaluate.figures import image_grid, save_grid
from affectjax.evaluate import probes

# Style-digit factors mapped to [0, 1] for the MAE of Table 1 (an assumption: the paper's MAEs,
# .03-.1, are only possible on such a scale): scale s in [0.5, 1], width k in 1..10, colour c/|c|_1.
FACTOR_RANGES = {"scale": (0.5, 1.0), "width": (1.0, 10.0), "color_r": (0.0, 1.0),
                 "color_g": (0.0, 1.0), "color_b": (0.0, 1.0)}
DIGIT_COLUMNS = (("R", "color_r"), ("G", "color_g"), ("B", "color_b"), ("Scale", "scale"),
                 ("Width", "width"))


def read(source, key) -> np.ndarray:
  """One field of every example (the stored array of an in-memory source)."""
  if isinstance(source, ArraySource) and key in source.arrays:
    return np.asarray(source.arrays[key])
  return source_lib.read_field(source, key)


def model_name(config) -> str:
  """The row name of a run: its variant (Rb-VAE's configs), else its method."""
  return config.get("variant") or config.method


# ---------------------------------------------------------------- evaluation (Sec. 5.3)

def _features(state, source, represent, config):
  from affectjax.evaluate.inference import batched
  limit = config.eval.max_probe_examples or None
  feats = batched(lambda b: represent(state, {"image": b["image"]}), source,
                  config.eval.batch_size, limit=limit)
  n = len(next(iter(feats.values())))
  idx = np.arange(n)
  fields = source.gather(idx) if not isinstance(source, ArraySource) else {
      k: np.asarray(v)[:n] for k, v in source.arrays.items() if k != "image"}
  return {k: np.asarray(v, np.float64) for k, v in feats.items()}, fields


def normalized_factors(factors, names) -> np.ndarray:
  """Style-digit factors mapped to [0, 1] by FACTOR_RANGES (columns in `names` order)."""
  f = np.asarray(factors, np.float64).copy()
  for i, n in enumerate(names):
    lo, hi = FACTOR_RANGES.get(n, (0.0, 1.0))
    f[:, i] = (f[:, i] - lo) / (hi - lo)
  return f


def _feature_sets(f):
  """The representations Table 1 scores: 'main' (e for Rb-VAE/sRb-VAE, z for the baselines) and
  the z-only control (models with an e)."""
  if "e" in f:
    return {"main": f["e"], "z": f["z"]}
  return {"main": f["z"]}


RECON_EXAMPLES = 256  # images per set for the reconstruction check


def reconstruction_check(state, data: Splits, *, config, represent, generate) -> dict:
  """Pixel MAE of reconstructions of unlabelled (probe_score) and reference (training) images,
  beside the best constant image (the set's per-pixel median, the L1 optimum of a constant).

  A reference MAE at its constant level means G(z_r, e_r) draws no reference image: z then holds
  no common factor, and Rb-VAE's reference pathway (Eq. 3's second line) is not working.
  Reference images are rebuilt with e_r (Rb-VAE, sRb-VAE) or G(z) (the baselines)."""
  from affectjax.evaluate.inference import batched
  ref_idx = np.flatnonzero(read(data.train, "is_reference").astype(bool))[:RECON_EXAMPLES]
  sets = {"unlabelled": data.test.gather(np.arange(min(RECON_EXAMPLES, len(data.test))))["image"],
          "reference": data.train.gather(ref_idx)["image"]}
  out = {}
  for name, x in sets.items():
    x = np.asarray(x, np.float32)
    f = batched(lambda b: represent(state, {"image": b}), x, config.eval.batch_size)
    inputs = {"z": f["z"]}
    if "e" in f and name == "unlabelled":
      inputs["e"] = f["e"]
    x_hat = batched(lambda b: generate(state, b), inputs, config.eval.batch_size)
    r = probes.reconstruction_mae(x, x_hat)
    out[f"recon/{name}_mae"], out[f"recon/{name}_constant_mae"] = r["mae"], r["constant_mae"]
  return out


def evaluate(state, data: Splits, workdir: str, *, config, represent, generate) -> dict:
  """Table 1's numbers for this model (keys: '<feature>/<metric>'), plus the reconstruction
  check and the faces' extras. 'select/<feature>/<avg>' is the same probe fitted on three
  quarters of the fit split and scored on its other quarter (probes.select_rows: whole people on
  faces, as the test split's people are new): what a choice
  between models (experiments/rbvae.py's --sweep) reads, so that no choice reads the test split."""
  fit_f, fit_fields = _features(state, data.probe_fit, represent, config)
  sc_f, sc_fields = _features(state, data.test, represent, config)
  names = tuple(data.info.factor_names)
  out = reconstruction_check(state, data, config=config, represent=represent, generate=generate)
  sets_fit, sets_sc = _feature_sets(fit_f), _feature_sets(sc_f)
  if data.info.factor_targets:
    cols = [names.index(n) for _, n in DIGIT_COLUMNS]
    y_fit = normalized_factors(fit_fields["factors"][:, cols], [n for _, n in DIGIT_COLUMNS])
    y_sc = normalized_factors(sc_fields["factors"][:, cols], [n for _, n in DIGIT_COLUMNS])
    for feat in sets_fit:
      mae = probes.linear_regression_mae(sets_fit[feat], y_fit, sets_sc[feat], y_sc)
      for (col, _), v in zip(DIGIT_COLUMNS, mae):
        out[f"{feat}/mae_{col}"] = float(v)
      out[f"{feat}/mae_avg"] = float(np.mean(mae))
      sel = probes.select_rows(np.zeros(len(y_fit)))  # the same probe within the fit split
      out[f"select/{feat}/mae_avg"] = float(np.mean(probes.linear_regression_mae(
          sets_fit[feat][~sel], y_fit[~sel], sets_fit[feat][sel], y_fit[sel])))
    # chance: predicting the fit split's mean
    out["chance/mae_avg"] = float(np.mean(np.abs(y_sc - y_fit.mean(0))))
    return out
  from affectjax.data.example import EMOTIONS
  lab_fit, lab_sc = fit_fields["label"].astype(np.int64), sc_fields["label"].astype(np.int64)
  keep_fit, keep_sc = lab_fit > 0, lab_sc > 0  # the 7 expressions (neutral is the reference)
  classes = sorted(set(lab_fit[keep_fit].tolist()))
  people = fit_fields["identity"][keep_fit] if "identity" in fit_fields else None
  for feat in sets_fit:
    if len(classes) < 2:
      break
    r = probes.linear_classifier((sets_fit[feat][keep_fit], lab_fit[keep_fit]),
                                 (sets_sc[feat][keep_sc], lab_sc[keep_sc]), people=people,
                                 seed=config.seed)
    for c, v in r["per_class"].items():
      out[f"{feat}/acc_{EMOTIONS[c]}"] = v
    out[f"{feat}/acc_avg"] = r["mean_recall"]
    out[f"{feat}/accuracy"] = r["accuracy"]
    out[f"{feat}/acc_C"] = r["C"]  # chosen on the fit split's selection rows (people)
    x, y = sets_fit[feat][keep_fit], lab_fit[keep_fit]
    sel = probes.select_rows(y, people)  # the same probe within the fit split (on other people)
    out[f"select/{feat}/acc_avg"] = probes.linear_classifier(
        (x[~sel], y[~sel]), (x[sel], y[sel]), people=None if people is None else people[~sel],
        seed=config.seed)["mean_recall"]
  if len(classes) >= 2:
    out["chance/acc_avg"] = 1.0 / len(classes)
  if data.info.rendered and "factors" in sc_fields:
    out.update(_faces_truth(config, names, sets_fit, sets_sc, fit_fields, sc_fields))
  return out


def _faces_truth(config, names, sets_fit, sets_sc, fit_fields, sc_fields) -> dict:
  """What the truth of the synthetic faces allows (probes shared with the triplet VAE): R^2 of
  ridge regressors of the AU intensities and the expression intensity (how much expression a
  representation predicts), and identity leakage (probes.identity_leakage over the scoring
  split's faces: how much identity leaks into it)."""
  from affectjax.data.synthetic import AU_NAMES
  out = {}
  cols = [names.index(n) for n in AU_NAMES + ("intensity",)]
  y_fit, y_sc = fit_fields["factors"][:, cols], sc_fields["factors"][:, cols]
  for feat in sets_fit:
    r2 = probes.ridge_r2((sets_fit[feat], y_fit), (sets_sc[feat], y_sc),
                         people=fit_fields["identity"])["r2"]
    out[f"{feat}/au_r2"] = float(np.nanmean(r2[:-1]))
    out[f"{feat}/intensity_r2"] = float(r2[-1])
    if len(np.unique(sc_fields["identity"])) >= 2:
      leak = probes.identity_leakage(sets_sc[feat], sc_fields["identity"], seed=config.seed)
      out[f"{feat}/identity_acc"], out["chance/identity_acc"] = leak["accuracy"], leak["chance"]
  return out


# ---------------------------------------------------------------- figures and report

def figures(state, data: Splits, workdir: str, *, config, represent, generate) -> dict:
  """Fig. 3 (conditional synthesis: z of real images, columns share a random e ~ N(0, I)) and
  Fig. 4 (attribute transfer: G(z of B, e of A)), and reconstructions for every variant. Every
  image is generated in one batched pass (one compile)."""
  from affectjax.evaluate.inference import batched
  n = config.eval.num_figure_rows
  if not n:
    return {}
  src = data.test
  x = src.gather(np.arange(min(2 * n, len(src))))["image"]
  n = min(n, len(x))
  f = {k: np.asarray(v) for k, v in represent(state, {"image": x}).items()}
  rb = "e" in f
  a, b = x[:n], (x[n:2 * n] if len(x) >= 2 * n else x[:n])
  z_a, z_b = f["z"][:n], (f["z"][n:2 * n] if len(x) >= 2 * n else f["z"][:n])
  cols = 8
  zs, es = [z_a], [f["e"][:n]] if rb else []
  if rb:
    e_rand = np.asarray(jax.random.normal(jax.random.key(config.seed + 3), (cols, config.model.e_dim)))
    e_r = np.broadcast_to(np.asarray(state.params["generator"]["e_r"]), (n, config.model.e_dim))
    zs += [z_a, np.repeat(z_a, cols, 0), np.tile(z_b, (n, 1))]
    es += [e_r, np.tile(e_rand, (n, 1)), np.repeat(f["e"][:n], len(z_b), 0)]
  inputs = {"z": np.concatenate(zs).astype(np.float32)}
  if rb:
    inputs["e"] = np.concatenate(es).astype(np.float32)
  gen = batched(lambda bt: generate(state, bt), inputs, config.eval.batch_size)
  rec, gen = gen[:n], gen[n:]
  paths = {"reconstructions": save_grid(
      os.path.join(workdir, "reconstructions.png"), image_grid([[x[i], rec[i]] for i in range(n)]),
      f"{model_name(config)}: image | reconstruction")}
  if not rb:
    return paths
  ref, cond, transfer = gen[:n], gen[n:n + n * cols], gen[n + n * cols:]
  rows = [[a[i], ref[i], None] + list(cond[i * cols:(i + 1) * cols]) for i in range(n)]
  paths["conditional_synthesis"] = save_grid(
      os.path.join(workdir, "conditional_synthesis.png"), image_grid(rows),
      f"{model_name(config)} (Fig. 3): image | G(z, e_r) | G(z, e_j), e_j ~ N(0, I) shared by columns")
  rows = [[None] + list(b)] + [[a[i]] + list(transfer[i * len(b):(i + 1) * len(b)]) for i in range(n)]
  paths["attribute_transfer"] = save_grid(
      os.path.join(workdir, "attribute_transfer.png"), image_grid(rows),
      f"{model_name(config)} (Fig. 4): row = A (gives e), column = B (gives z), cell = G(z_B, e_A)")
  return paths


def report(state, data: Splits, workdir: str, *, config, evaluate, represent, generate) -> dict:
  """Writes rbvae_metrics.json (evaluate's numbers), rbvae_table.md (this model's Table 1 row)
  and the figures; returns the averages."""
  ev = evaluate(state, data, workdir)
  paths = figures(state, data, workdir, config=config, represent=represent, generate=generate)
  with open(os.path.join(workdir, "rbvae_metrics.json"), "w") as fh:
    json.dump({"variant": model_name(config), "dataset": data.info.name,
               "metrics": ev, "figures": paths}, fh, indent=1)
  with open(os.path.join(workdir, "rbvae_table.md"), "w") as fh:
    fh.write(table_row_markdown(model_name(config), data.info.name, ev))
  return {k: v for k, v in ev.items() if k.endswith("_avg")}


def table_row_markdown(variant, dataset, ev) -> str:
  """One Table 1 row (main features; z-only control below it for Rb-VAE/sRb-VAE)."""
  digits = dataset in ("style_digits", "mnist_style")
  cols = ([c for c, _ in DIGIT_COLUMNS] if digits else
          sorted({k.split("acc_")[1] for k in ev if "/acc_" in k and not k.endswith("avg")}))
  key = (lambda f, c: f"{f}/mae_{c}") if digits else (lambda f, c: f"{f}/acc_{c}")
  avg = "mae_avg" if digits else "acc_avg"
  lines = [f"| model | {' | '.join(cols)} | Avg. |", "|---" * (len(cols) + 2) + "|"]
  for feat, name in (("main", variant), ("z", f"{variant} (z only)")):
    if f"{feat}/{avg}" in ev:
      vals = [f"{ev.get(key(feat, c), float('nan')):.3f}" for c in cols]
      lines.append(f"| {name} | {' | '.join(vals)} | {ev[f'{feat}/{avg}']:.3f} |")
  if "recon/reference_mae" in ev:
    lines += ["", "Reconstruction pixel MAE on [0, 1] (the set's per-pixel median image in brackets, "
              f"the best constant): unlabelled {ev['recon/unlabelled_mae']:.3f} "
              f"[{ev['recon/unlabelled_constant_mae']:.3f}], reference {ev['recon/reference_mae']:.3f} "
              f"[{ev['recon/reference_constant_mae']:.3f}]"]
  return "\n".join(lines) + "\n"
