"""LeVAsa evaluation on held-out identities: encodings, Tables 1-3 like for like, reference rows,
reconstruction beside expression energy, figures.

Every model is read out the same way (Table 1a: a ridge readout of V from the z_v chunk and A from
the z_a chunk fitted on the training split; Table 1b: a logistic probe on the same chunks; Table 2:
an MLP regressor; Table 3: an MLP classifier), so two models with identical encoders get identical
numbers. The Vanilla VAE's z_v / z_a chunks are chosen on the training split. LeVAsa's trained
heads are reported separately, scored as they were trained (normalised sigmoids for BCE heads).
Reference rows come from the data alone: chance (predict the training mean / class frequencies /
majority class), a pixel baseline (the same probes on pixel principal components; it can overfit
below chance, so it is no ceiling) and the issue's "ceilings: a supervised CNN on pixels and a
probe on the ground-truth factors" (one CNN trained on the training split's pixels with a head per
table, affectjax.evaluate.cnn_ceiling; the same probes on the ground-truth factors). Every table
is reported for all test faces and for clearly expressive faces (true intensity above
EXPRESSIVE_INTENSITY).
"""
from __future__ import annotations

import json
import os
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from affectjax.evaluate import alignment, cnn_ceiling, figures, probes
from affectjax.evaluate.inference import batched
from affectjax.methods.levasa.objective import PLAYER, variables

PAPER_STEPS = 26_000  # the original: Adam 1e-4, batch 128, 100 epochs of ~34k IMFDB images
EXPRESSIVE_INTENSITY = 0.5  # "clearly expressive": true intensity above this
EXPRESSION_FACTORS = ("intensity", "valence", "arousal")  # plus every AU* and mix_* factor
CHUNKS = ("z_v", "z_a", "z_z")


def _variables(state):
  return variables(state.params[PLAYER], state.aux)


_ENCODERS = weakref.WeakKeyDictionary()  # model -> {reconstruct: jitted encoder}: compiled once


def _encoder(model, reconstruct: bool):
  """The jitted encoder of `model` (one per model and flag, so evaluations reuse its compile)."""
  per_model = _ENCODERS.setdefault(model, {})
  if reconstruct not in per_model:
    @jax.jit
    def fn(variables, images):
      mu, logvar = model.apply(variables, images, method=model.encode)
      out = {"mu": mu, "logvar": logvar}
      if model.head_dim:
        out["r_v"], out["r_a"] = model.apply(variables, mu, method=model.heads)
      if reconstruct:
        x_hat = model.apply(variables, mu, method=model.decode)
        out["pixel_mse"] = jnp.mean(jnp.square(x_hat - images), axis=(1, 2, 3))
      return out
    per_model[reconstruct] = fn
  return per_model[reconstruct]


def encode(state, source, *, model, config, limit=None, reconstruct=False, pixels=False) -> dict:
  """mu (z = mu at evaluation, as the paper), head outputs and annotations for a whole split.

  reconstruct: also the per-image mean squared error of the reconstruction from mu ('pixel_mse');
  pixels: also the images average-pooled to at most 32 pixels a side, [N, h, w, C] (the input of
  the pixel baseline and of the supervised CNN ceiling).
  """
  chunk = tuple(config.model.chunk_sizes)
  fn = _encoder(model, reconstruct)
  variables = _variables(state)

  def batch_fn(batch):
    out = dict(fn(variables, jnp.asarray(batch["image"])))
    out.update(va=batch["va"], label=batch["label"], factors=batch["factors"],
               identity=batch["identity"])
    if pixels:
      out["pixels"] = probes.pool_images(np.asarray(batch["image"], np.float32), 32)
    return out

  res = batched(batch_fn, source, config.eval.batch_size, limit=limit)
  a, b = chunk[0], chunk[0] + chunk[1]
  res["z_v"], res["z_a"], res["z_z"] = res["mu"][:, :a], res["mu"][:, a:b], res["mu"][:, b:]
  return res


# ---------------------------------------------------------------- LeVAsa's heads

def head_probs(enc: dict, config):
  """(p_v, p_a) [N, K] from discrete heads, normalised as the heads were trained: sigmoids divided
  by their sum for loss.va_loss='bce' (Eq. 2's BCE), softmax for 'ce'. None for other models."""
  if "r_v" not in enc or enc["r_v"].shape[-1] == 1:
    return None
  kind = "sigmoid" if config.loss.va_loss == "bce" else "softmax"
  return tuple(alignment.normalised_probs(enc[h], kind) for h in ("r_v", "r_a"))


def head_va(enc: dict, config) -> np.ndarray | None:
  """LeVAsa's VA readout [N, 2] from its heads (the expected level for discrete heads), else None."""
  if "r_v" not in enc:
    return None
  if enc["r_v"].shape[-1] == 1:
    return np.concatenate([enc["r_v"], enc["r_a"]], -1).astype(np.float64)
  pv, pa = head_probs(enc, config)
  levels = config.loss.va_levels
  return np.stack([alignment.expected_level(pv, levels), alignment.expected_level(pa, levels)], -1)


def evaluate(state, data, workdir, *, model, config) -> dict:
  """Cheap periodic metrics on the held-out split."""
  enc = encode(state, data.test, model=model, config=config, limit=1024, reconstruct=True)
  out = {"pixel_mse": float(enc["pixel_mse"].mean())}
  pred = head_va(enc, config)
  known = np.all(np.isfinite(enc["va"]), -1)
  if pred is not None and known.any():
    err = pred[known] - enc["va"][known]
    out["va_mse_valence"], out["va_mse_arousal"] = (float(x) for x in np.mean(err**2, 0))
  return out


# ---------------------------------------------------------------- factors and subsets

def _factor(enc, factor_names, name):
  names = list(factor_names or ())
  if name not in names or "factors" not in enc:
    return None
  col = np.asarray(enc["factors"], np.float64)[:, names.index(name)]
  return col if np.all(np.isfinite(col)) else None


def _true_va(enc, factor_names) -> np.ndarray:
  v, a = _factor(enc, factor_names, "valence"), _factor(enc, factor_names, "arousal")
  if v is None or a is None:  # only the synthetic faces know the noiseless VA
    return np.full((len(enc["va"]), 2), np.nan)
  return np.stack([v, a], -1)


def factor_features(enc, factor_names) -> np.ndarray | None:
  """The factor ceiling's input: the ground-truth expression factors (AU intensities, mixture
  weights, intensity, true VA); None when the data has none."""
  names = list(factor_names or ())
  cols = [i for i, n in enumerate(names) if n.startswith(("AU", "mix_")) or n in EXPRESSION_FACTORS]
  if not cols or "factors" not in enc:
    return None
  x = np.asarray(enc["factors"], np.float64)[:, cols]
  return x if np.all(np.isfinite(x)) else None


def test_subsets(enc_test, factor_names) -> dict:
  """{"all": mask, "expressive": true intensity > EXPRESSIVE_INTENSITY} (the second only where the
  data knows the intensity)."""
  n = len(enc_test["va"])
  out = {"all": np.ones(n, bool)}
  intensity = _factor(enc_test, factor_names, "intensity")
  if intensity is not None:
    out["expressive"] = intensity > EXPRESSIVE_INTENSITY
  return out


# ---------------------------------------------------------------- predictions and scores

def _levels(config) -> int:
  return config.loss.va_levels


def predict(rep_train: dict, rep_test: dict, enc_train: dict, config, seed: int) -> dict:
  """One representation's predictions on the test rows, every readout fitted on the training rows.

  rep_*: {"v": input for valence, "a": input for arousal, "combos": {name: input for Table 3}}.
  Returns {"va_linear" [N, 2] (Table 1a), "probs" (p_v, p_a) (Table 1b), "va_mlp" [N, 2]
  (Table 2), "labels" {combo: [N]} (Table 3)}.
  """
  levels = _levels(config)
  k = 2 * levels + 1
  va_tr = np.asarray(enc_train["va"], np.float64)
  cls_tr = alignment.va_targets_to_classes(va_tr, levels)
  out = {"va_linear": np.stack([alignment.linear_readout(rep_train[ax], va_tr[:, i], rep_test[ax])
                                for i, ax in enumerate("va")], -1)}
  out["probs"] = tuple(alignment.normalised_probs(
      alignment.logistic_probs(rep_train[ax], cls_tr[:, i], rep_test[ax], k, seed), "probs")
      for i, ax in enumerate("va"))
  out["va_mlp"] = probes.va_regression_predict((rep_train["v"], rep_train["a"]), va_tr,
                                               (rep_test["v"], rep_test["a"]), seed=seed)
  labels = np.asarray(enc_train["label"])
  out["labels"] = ({name: probes.emotion_predict(rep_train["combos"][name], labels, x, seed=seed)
                    for name, x in rep_test["combos"].items()} if np.any(labels >= 0) else {})
  return out


def chance_predictions(enc_train: dict, n_test: int, config, combos) -> dict:
  """The chance row's 'predictions' from training statistics alone: the training mean VA
  (Tables 1a, 2), the training class frequencies (Table 1b), the majority class (Table 3)."""
  k = 2 * _levels(config) + 1
  va_tr = enc_train["va"]
  cls_tr = alignment.va_targets_to_classes(va_tr, _levels(config))
  mean = alignment.chance_va(va_tr, n_test)
  probs = tuple(alignment.normalised_probs(alignment.chance_probs(cls_tr[:, i], k, n_test), "probs")
                for i in range(2))
  majority = np.full(n_test, probes.majority_class(enc_train["label"]))
  return {"va_linear": mean, "probs": probs, "va_mlp": mean,
          "labels": {c: majority for c in combos} if np.any(enc_train["label"] >= 0) else {}}


def score(pred: dict, enc_test: dict, mask, config, true_va) -> dict:
  """The tables' numbers of one row's predictions on the test rows in `mask`."""
  va = np.asarray(enc_test["va"], np.float64)
  cls = alignment.va_targets_to_classes(va, _levels(config))
  out = {}
  if "va_linear" in pred:
    out["align"] = alignment.continuous_alignment(pred["va_linear"][mask], va[mask])
    out["align_true_va"] = alignment.continuous_alignment(pred["va_linear"][mask], true_va[mask])
  if "probs" in pred:
    ce = [alignment.discrete_alignment(p[mask], cls[mask, i], "probs") if np.any(cls[mask, i] >= 0)
          else float("nan") for i, p in enumerate(pred["probs"])]
    out["ce"] = {"valence": ce[0], "arousal": ce[1], "combined": ce[0] + ce[1]}
  if "va_mlp" in pred:
    out["regression"] = probes.regression_metrics(va, pred["va_mlp"], mask)
  if pred.get("labels"):
    out["accuracy"] = {c: probes.accuracy(enc_test["label"], p, mask) for c, p in pred["labels"].items()}
  return out


def cnn_predictions(enc_train: dict, enc_test: dict, config, seed: int) -> dict:
  """The supervised CNN ceiling's predictions on the test rows, in predict()'s form.

  One network on the training rows' pooled pixels (enc_*["pixels"]), its heads trained jointly:
  VA (tanh, MSE; Tables 1a and 2), the round(levels * VA) classes of each axis (softmax CE;
  Table 1b, scored by its floored softmax) and the emotion (softmax CE over labels >= 0;
  Table 3's "all" input). Early-stopped on a tenth of the TRAINING identities; config.eval.ceiling_*
  bound its cost.
  """
  levels, e = _levels(config), config.eval
  va = np.asarray(enc_train["va"], np.float32)
  labels = np.asarray(enc_train["label"])
  heads = {"va": cnn_ceiling.Regression(va),
           "va_classes": cnn_ceiling.Classes(alignment.va_targets_to_classes(va, levels), 2 * levels + 1)}
  if np.any(labels >= 0):  # AFEW-like rows have no labels: no emotion head, no Table 3 cell
    classes = max(int(config.data.num_classes), int(labels.max()) + 1)
    heads["emotion"] = cnn_ceiling.Classes(labels[:, None], classes)
  fit_idx, val_idx = cnn_ceiling.validation_split(enc_train.get("identity"), np.arange(len(va)), seed)
  net = cnn_ceiling.fit(np.asarray(enc_train["pixels"], np.float32), heads, fit_idx, val_idx,
                        seed=seed, max_steps=e.ceiling_max_steps, eval_every=e.ceiling_eval_every,
                        patience=e.ceiling_patience, batch_size=e.ceiling_batch_size)
  out = cnn_ceiling.outputs(net, np.asarray(enc_test["pixels"], np.float32))
  va_hat = out["va"].astype(np.float64)
  probs = tuple(alignment.normalised_probs(out["va_classes"][:, i], "softmax") for i in range(2))
  labels_hat = {"all": out["emotion"][:, 0].argmax(-1)} if "emotion" in out else {}
  return {"va_linear": va_hat, "probs": probs, "va_mlp": va_hat, "labels": labels_hat,
          "best_step": net.best_step}


def _chunk_rep(enc, cv, ca, cz) -> dict:
  named = {"z_v": enc[cv], "z_a": enc[ca], "z_z": enc[cz]}
  return {"v": enc[cv], "a": enc[ca],
          "combos": {n: probes.concat_chunks(named, c) for n, c in probes.chunk_combinations().items()}}


def _feature_rep(x) -> dict:
  return {"v": x, "a": x, "combos": {"all": x}}


def summarize(enc_train: dict, enc_test: dict, config, factor_names=(), references: bool = True) -> dict:
  """One model's Table 1-3 numbers on held-out identities, per test subset, with reference rows.

  Returns {"rows": {row: {subset: tables}}, "chunks", "chunk_errors_train", ...}: row "model" is the
  like-for-like readout of the chunks, "heads" LeVAsa's own heads, and (references=True)
  "chance", "pixels" (the PCA baseline) and "cnn" (the supervised CNN ceiling; both need
  enc_*["pixels"]) and "factors" (needs ground-truth factors).
  """
  seed = config.eval.probe_seed
  subsets = test_subsets(enc_test, factor_names)
  true_va = _true_va(enc_test, factor_names)
  n_test = len(enc_test["va"])
  out = {"variant": config.variant, "view": config.data.view, "n_test": n_test,
         "n_train": len(enc_train["va"]), "num_steps": int(config.train.num_steps),
         "va_loss": config.loss.va_loss, "levels": _levels(config),
         "subsets": {k: int(m.sum()) for k, m in subsets.items()}}
  train_chunks = {k: enc_train[k] for k in CHUNKS}
  # The Vanilla VAE's z_v, z_a (Sec. 3.1 heuristic) chosen on the TRAINING split, by the readout
  # Table 1(a) scores; LeVAsa's are its z_v, z_a by construction.
  cv, ca, errors = alignment.best_chunks(train_chunks, enc_train["va"], readout="linear")
  if config.variant != "vanilla":
    cv, ca = "z_v", "z_a"
  cz = ({"z_v", "z_a", "z_z"} - {cv, ca}).pop()
  out["chunks"] = {"z_v": cv, "z_a": ca, "z_z": cz}
  # every choice made from data, all on training rows (tests/test_selection.py)
  out["selection"] = {"chunks": dict(out["chunks"])}
  out["chunk_errors_train"] = errors
  preds = {"model": predict(_chunk_rep(enc_train, cv, ca, cz), _chunk_rep(enc_test, cv, ca, cz),
                            enc_train, config, seed)}
  heads = head_va(enc_test, config)
  if heads is not None:
    preds["heads"] = {"va_linear": heads}
    if head_probs(enc_test, config) is not None:
      preds["heads"]["probs"] = head_probs(enc_test, config)
  if references:
    combos = list(probes.chunk_combinations())
    preds["chance"] = chance_predictions(enc_train, n_test, config, combos)
    if "pixels" in enc_train and "pixels" in enc_test:
      p_tr, p_te = probes.pixel_features(enc_train["pixels"], enc_test["pixels"], seed=seed)
      preds["pixels"] = predict(_feature_rep(p_tr), _feature_rep(p_te), enc_train, config, seed)
      preds["cnn"] = cnn_predictions(enc_train, enc_test, config, seed)
      out["selection"]["ceiling_best_step"] = int(preds["cnn"].pop("best_step"))
    f_tr, f_te = factor_features(enc_train, factor_names), factor_features(enc_test, factor_names)
    if f_tr is not None and f_te is not None:
      preds["factors"] = predict(_feature_rep(f_tr), _feature_rep(f_te), enc_train, config, seed)
  out["rows"] = {row: {name: score(p, enc_test, m, config, true_va) for name, m in subsets.items()}
                 for row, p in preds.items()}
  # The paper's own arithmetic (REFERENCE.md) on training rows, its raw-chunk (broadcast) readout
  # with chunks chosen by broadcast on the training rows; heads where the model has them.
  pv, pa, _ = alignment.best_chunks(train_chunks, enc_train["va"], readout="broadcast")
  if config.variant != "vanilla":
    pv, pa = "z_v", "z_a"
  train_heads = head_va(enc_train, config)
  out["align_paper_metric"] = alignment.paper_metric_alignment(
      train_heads if train_heads is not None else (enc_train[pv], enc_train[pa]), enc_train["va"], seed)
  out["align_broadcast"] = alignment.continuous_alignment((enc_test[pv], enc_test[pa]), enc_test["va"])
  out["pixel_mse"] = float(enc_test["pixel_mse"].mean()) if "pixel_mse" in enc_test else float("nan")
  return out


# ---------------------------------------------------------------- reconstruction vs expression energy

def expression_energy(source, data, config, limit: int | None = None) -> np.ndarray | None:
  """|x - the same face rendered neutral|^2 summed over H*W*C on [-1, 1], per test image.

  Synthetic faces only: each face is re-rendered with its identity, pose and light (its factors)
  and every action unit at 0. A self-check first re-renders a few faces WITH their action units
  (non-contempt faces: both halves equal the factor) and returns None, with nothing guessed,
  when that does not reproduce the stored image (a generator this code does not know).
  """
  if not (data.info and data.info.rendered):
    return None
  metadata = data.metadata
  from affectjax.data import sources
  from affectjax.data.synthetic import aus, faces, render
  names = list(metadata.get("factor_names", ()))
  view = metadata.get("view", config.data.view)
  n = len(source) if limit is None else min(limit, len(source))
  batch = source.gather(np.arange(n))
  f = np.asarray(batch["factors"], np.float32)
  try:
    col = lambda name: f[:, names.index(name)]
    pose = {k: col(k) for k in faces.POSE_NAMES}
    light = {k: col(k) for k in faces.LIGHT_NAMES}
    au = np.stack([col(a) for a in aus.AU_NAMES], -1)
    if hasattr(sources, "synthetic_options"):  # the generator's options for this view
      opts = sources.synthetic_options(config.data, config.seed, view)
    else:
      opts = {"seed": sources.view_seed(config.seed, view),
              "identity_offset": sources.VIEWS.index(view) * 100_000}
    local = np.asarray(batch["identity"]) - opts["identity_offset"]
    extra = {"colour_variety": opts["colour_variety"]} if "colour_variety" in opts else {}
    ids = faces.sample_identities(opts["seed"], int(local.max()) + 1, opts["identity_offset"], **extra)
    idp = {k: v[local] for k, v in ids.items()}
    size = int(metadata.get("image_size", config.data.image_size))
    check = np.flatnonzero(col("mix_contempt") == 0)[:4]
    if len(check) == 0:
      return None
    # One render call (one compile): the check faces with their AUs, then every face with none.
    rows = np.concatenate([check, np.arange(n)])
    au_in = np.concatenate([au[check], np.zeros_like(au)])
    sub = lambda d: {k: v[rows] for k, v in d.items()}
    rendered, _ = render.render_batch(sub(idp), au_in, au_in, sub(pose), sub(light), size)
    again, neutral = rendered[:len(check)], rendered[len(check):]
    stored = np.round((np.asarray(batch["image"][check]) + 1.0) * 127.5)
    if np.max(np.abs(again.astype(np.float64) - stored)) > 2:
      return None
  except (ValueError, KeyError, IndexError, TypeError):
    return None
  neutral = neutral.astype(np.float32) * (2.0 / 255.0) - 1.0
  diff = np.asarray(batch["image"], np.float32) - neutral
  return np.sum(np.square(diff).reshape(n, -1), -1)


def reconstruction_vs_energy(enc_test: dict, energy, num_classes: int, pixels: int,
                             factor_names=()) -> dict:
  """Per class (the true class where the data knows it, else the label): test images, mean
  reconstruction error and mean expression energy (both sums of squares over the `pixels` =
  H*W*C values on [-1, 1]) and their ratio; energy None gives NaN energies."""
  from affectjax.data.example import EMOTIONS
  sse = np.asarray(enc_test["pixel_mse"], np.float64) * pixels
  clean = _factor(enc_test, factor_names, "clean_label")
  labels = np.asarray(enc_test["label"]) if clean is None else clean.astype(int)
  n = len(sse) if energy is None else len(energy)
  rows = {}
  for name, m in [("all", np.ones(n, bool))] + [(EMOTIONS[c], labels[:n] == c) for c in range(num_classes)]:
    if not m.any():
      continue
    e = float(np.mean(energy[m])) if energy is not None else float("nan")
    r = float(np.mean(sse[:n][m]))
    rows[name] = {"n": int(m.sum()), "recon_sse": r, "expression_energy": e,
                  "ratio": r / e if e > 0 else float("nan")}
  return rows


# ---------------------------------------------------------------- the report

ROW_NAMES = {"model": "this model (like-for-like readout)", "heads": "its heads (as trained)",
             "chance": "chance", "pixels": "pixels (PCA-256) + same probe",
             "cnn": "ceiling: supervised CNN on pixels", "factors": "ceiling: true factors + same probe"}


def model_tables(summary: dict) -> str:
  """Markdown tables of one model's numbers (the experiment script puts models side by side)."""
  rows, subsets = summary["rows"], list(summary["subsets"])
  text = [f"# LeVAsa report: {summary['variant']} on {summary['view']}\n"]
  if summary["num_steps"] < PAPER_STEPS:
    text.append(f"**Smoke-scale run**: {summary['num_steps']} steps (the original trained about "
                f"{PAPER_STEPS:,}; configs/levasa.py:paper_length on a GPU). Read the numbers as a "
                "check that everything runs, not as the paper's result.\n")
  text.append(f"Chunks read out as (z_v, z_a, z_z): {summary['chunks']} (chosen on the training "
              f"split); test faces: {summary['subsets']}.\n")
  cols = ["mse_valence", "r2_valence", "mse_arousal", "r2_arousal", "mse_combined", "mae_combined"]
  for key, title in (("align", "Table 1(a): alignment with the annotated VA (ridge readout; heads as trained)"),
                     ("align_true_va", "Table 1(a): the same readouts against the true VA")):
    text.append(f"## {title}\n")
    body = [[ROW_NAMES[r], s] + [rows[r][s][key][c] for c in cols]
            for r in rows for s in subsets if key in rows[r][s]]
    text.append(alignment.markdown_table(["row", "faces"] + cols, body))
  text.append("## Table 1(b): cross-entropy of round(levels * VA) classes (nats; logistic probe, "
              "heads normalised as trained)\n")
  text.append(alignment.markdown_table(["row", "faces", "valence", "arousal", "combined"], [
      [ROW_NAMES[r], s] + [rows[r][s]["ce"][a] for a in ("valence", "arousal", "combined")]
      for r in rows for s in subsets if "ce" in rows[r][s]]))
  text.append("## Table 2: VA regression (MLP)\n")
  text.append(alignment.markdown_table(["row", "faces", "axis", "MSE", "MAE", "EV", "R2"], [
      [ROW_NAMES[r], s, ax] + [rows[r][s]["regression"][ax][m] for m in ("mse", "mae", "ev", "r2")]
      for r in rows for s in subsets for ax in ("valence", "arousal") if "regression" in rows[r][s]]))
  acc_rows = [[ROW_NAMES[r], s, combo, v] for r in rows for s in subsets
              for combo, v in rows[r][s].get("accuracy", {}).items()]
  if acc_rows:
    text.append("## Table 3: emotion accuracy (one-hidden-layer MLP)\n")
    text.append(alignment.markdown_table(["row", "faces", "input", "accuracy"], acc_rows))
  rec = summary.get("reconstruction")
  if rec:
    text.append("## Reconstruction error beside expression energy (held out; sums of squares over "
                "H*W*C on [-1, 1])\n")
    text.append("Expression energy: |x - the same face rendered neutral|^2. A reconstruction error "
                "well above a class's energy means the decoder cannot show that expression.\n")
    text.append(alignment.markdown_table(["class", "n", "recon error", "expression energy", "ratio"], [
        [k, v["n"], v["recon_sse"], v["expression_energy"], v["ratio"]] for k, v in rec.items()]))
  return "\n".join(text)


def report(state, data, workdir, *, model, config) -> dict:
  """Encodes both splits, writes encodings.npz, levasa_report.json/.md and figures; returns scalars."""
  limit = config.eval.max_train_examples or None
  refs = bool(config.eval.reference_rows)
  enc_train = encode(state, data.train, model=model, config=config, limit=limit, pixels=refs)
  enc_test = encode(state, data.test, model=model, config=config, reconstruct=True, pixels=refs)
  keep = ("z_v", "z_a", "z_z", "va", "label", "factors", "r_v", "r_a")
  np.savez_compressed(os.path.join(workdir, "encodings.npz"),
                      **{f"train_{k}": enc_train[k] for k in keep if k in enc_train},
                      **{f"test_{k}": enc_test[k] for k in keep if k in enc_test})
  summary = summarize(enc_train, enc_test, config, data.metadata.get("factor_names", ()), refs)
  energy = expression_energy(data.test, data, config, limit=config.eval.energy_examples or None)
  pixels = int(np.prod(data.test.gather(np.arange(1))["image"].shape[1:]))
  summary["reconstruction"] = reconstruction_vs_energy(enc_test, energy, config.data.num_classes,
                                                       pixels, data.metadata.get("factor_names", ()))
  with open(os.path.join(workdir, "levasa_report.json"), "w") as f:
    json.dump(summary, f, indent=1)
  with open(os.path.join(workdir, "levasa_report.md"), "w") as f:
    f.write(model_tables(summary))
  # Figures: this model's circumplex (Fig. 3) and reconstructions of 8 test faces (Fig. 4).
  figures.plot_circumplex(os.path.join(workdir, "circumplex.png"), {
      f"{config.variant} on {config.data.view}": {
          "z_v": enc_test[summary["chunks"]["z_v"]], "z_a": enc_test[summary["chunks"]["z_a"]],
          "va": enc_test["va"], "labels": enc_test["label"]}})
  originals, recon = reconstruct(state, data.test, model=model, count=8)
  np.savez_compressed(os.path.join(workdir, "reconstructions.npz"), originals=originals, recon=recon)
  figures.plot_reconstructions(os.path.join(workdir, "reconstructions.png"),
                               {"input": originals, config.variant: recon}, value_range=(-1, 1))
  every = summary["reconstruction"].get("all", {})
  recon, energy = every.get("recon_sse", float("nan")), every.get("expression_energy", float("nan"))
  if summary["num_steps"] < PAPER_STEPS:  # on the console, whatever its verbosity
    print(f"LeVAsa {config.variant}: smoke-scale run ({summary['num_steps']} steps; the original "
          f"trained about {PAPER_STEPS:,}): held-out reconstruction error {recon:.1f} vs expression "
          f"energy {energy:.1f} (sums of squares per image; per class in levasa_report.md)", flush=True)
  return {"align_mse_combined": summary["rows"]["model"]["all"]["align"]["mse_combined"],
          "pixel_mse": summary["pixel_mse"], "recon_sse": recon, "expression_energy": energy}


def reconstruct(state, source, *, model, count: int):
  """The first `count` images of a split and their reconstructions from z = mu."""
  images = jnp.asarray(source.gather(np.arange(min(count, len(source))))["image"])
  variables = _variables(state)
  mu, _ = model.apply(variables, images, method=model.encode)
  return np.asarray(images), np.asarray(model.apply(variables, mu, method=model.decode))
