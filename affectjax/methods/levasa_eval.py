"""LeVAsa evaluation on held-out identities: encodings, alignment, probes, tables and figures."""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import softmax

from affectjax.evaluate import alignment, figures, probes
from affectjax.evaluate.inference import batched


def _variables(state):
  v = {"params": state.params}
  if state.batch_stats is not None:
    v["batch_stats"] = state.batch_stats
  return v


def encode(state, source, *, model, config, limit=None, reconstruct=False) -> dict:
  """mu (z = mu at evaluation, as the paper), head outputs and annotations for a whole split."""
  chunk = tuple(config.model.chunk_sizes)

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

  variables = _variables(state)

  def batch_fn(batch):
    out = dict(fn(variables, jnp.asarray(batch["image"])))
    out.update(va=batch["va"], label=batch["label"], factors=batch["factors"])
    return out

  res = batched(batch_fn, source, config.eval.batch_size, limit=limit)
  a, b = chunk[0], chunk[0] + chunk[1]
  res["z_v"], res["z_a"], res["z_z"] = res["mu"][:, :a], res["mu"][:, a:b], res["mu"][:, b:]
  return res


def head_va(enc: dict, config) -> np.ndarray | None:
  """LeVAsa's VA readout [N, 2] from its heads (expected level for discrete heads), else None."""
  if "r_v" not in enc:
    return None
  if enc["r_v"].shape[-1] == 1:
    return np.concatenate([enc["r_v"], enc["r_a"]], -1)
  levels = config.loss.va_levels
  grid = np.arange(-levels, levels + 1) / levels
  return np.stack([softmax(enc["r_v"], -1) @ grid, softmax(enc["r_a"], -1) @ grid], -1)


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


def _true_va(enc, factor_names) -> np.ndarray:
  names = list(factor_names or ())
  if "valence" in names and "arousal" in names:  # synthetic faces: the noiseless VA
    return enc["factors"][:, [names.index("valence"), names.index("arousal")]]
  return np.full((len(enc["va"]), 2), np.nan)


def probe_cross_entropy(train_z, train_cls, test_z, test_cls, num_classes: int, seed: int = 0) -> float:
  """Held-out CE (nats) of a multinomial logistic probe: the discrete readout of a headless chunk."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300, random_state=seed))
  probe.fit(train_z, train_cls)
  probs = np.full((len(test_z), num_classes), 1e-12)
  probs[:, probe.classes_] = np.clip(probe.predict_proba(test_z), 1e-12, None)
  probs /= probs.sum(1, keepdims=True)
  return alignment.discrete_alignment(probs, test_cls, kind="probs")


def summarize(enc_train: dict, enc_test: dict, config, factor_names=()) -> dict:
  """One model's Table 1-3 numbers on held-out identities (plus the paper-metric definitions)."""
  levels, seed = config.loss.va_levels, config.eval.probe_seed
  chunks_te = {k: enc_test[k] for k in ("z_v", "z_a", "z_z")}
  target_tr, target_te = enc_train["va"], enc_test["va"]
  out = {"variant": config.variant, "view": config.data.view, "n_test": len(target_te)}
  # The paper's chunk choice for the Vanilla VAE: the two chunks best aligned with V and A.
  if config.variant == "vanilla":
    cv, ca, _ = alignment.best_chunks(chunks_te, target_te)
  else:
    cv, ca = "z_v", "z_a"
  cz = ({"z_v", "z_a", "z_z"} - {cv, ca}).pop()
  out["chunks"] = {"z_v": cv, "z_a": ca, "z_z": cz}
  pair_te, pair_tr = (enc_test[cv], enc_test[ca]), (enc_train[cv], enc_train[ca])
  heads = head_va(enc_test, config)
  readout = heads if heads is not None else pair_te  # Table 1's readout of the model
  out["readout"] = "heads" if heads is not None else "chunks (broadcast)"
  out["align"] = alignment.continuous_alignment(readout, target_te)
  out["align_chunks"] = alignment.continuous_alignment(pair_te, target_te)
  out["align_true_va"] = alignment.continuous_alignment(readout, _true_va(enc_test, factor_names))
  train_readout = head_va(enc_train, config)
  out["align_paper_metric"] = alignment.paper_metric_alignment(
      train_readout if train_readout is not None else pair_tr, target_tr, seed)
  # Table 1(b): cross-entropy against round(levels * va) classes (heads, or a probe when headless).
  k = 2 * levels + 1
  cls_tr = np.clip(np.round(levels * np.nan_to_num(target_tr)), -levels, levels).astype(int) + levels
  cls_te = np.clip(np.round(levels * np.nan_to_num(target_te)), -levels, levels).astype(int) + levels
  if "r_v" in enc_test and enc_test["r_v"].shape[-1] == k:
    ce = [alignment.discrete_alignment(enc_test[h], cls_te[:, i], "logits") for i, h in enumerate(("r_v", "r_a"))]
    out["ce_source"] = "heads"
  else:
    ce = [probe_cross_entropy(pair_tr[i], cls_tr[:, i], pair_te[i], cls_te[:, i], k, seed) for i in range(2)]
    out["ce_source"] = "logistic probe"
  out["ce"] = {"valence": ce[0], "arousal": ce[1], "combined": ce[0] + ce[1]}
  # Table 2: MLP regression of V from z_v and A from z_a.
  out["regression"] = probes.va_regression(pair_tr, target_tr, pair_te, target_te, seed=seed)
  # Table 3: emotion accuracy of a one-hidden-layer MLP per chunk combination (labelled data only).
  if np.any(enc_test["label"] >= 0) and np.any(enc_train["label"] >= 0):
    named_tr = {"z_v": enc_train[cv], "z_a": enc_train[ca], "z_z": enc_train[cz]}
    named_te = {"z_v": enc_test[cv], "z_a": enc_test[ca], "z_z": enc_test[cz]}
    out["accuracy"] = {
        name: probes.emotion_accuracy(probes.concat_chunks(named_tr, combo), enc_train["label"],
                                      probes.concat_chunks(named_te, combo), enc_test["label"], seed=seed)
        for name, combo in probes.chunk_combinations().items()}
  out["pixel_mse"] = float(enc_test["pixel_mse"].mean()) if "pixel_mse" in enc_test else float("nan")
  return out


def model_tables(summary: dict) -> str:
  """Markdown tables of one model's numbers (the experiment script puts models side by side)."""
  a, p, t = summary["align"], summary["align_paper_metric"], summary["align_true_va"]
  cols = ["mse_valence", "mae_valence", "mse_arousal", "mae_arousal", "mse_combined", "mae_combined"]
  text = [f"# LeVAsa report: {summary['variant']} on {summary['view']}\n",
          f"Readout: {summary['readout']}; chunks used as (z_v, z_a, z_z): {summary['chunks']}\n",
          "## Alignment (Table 1a)\n",
          alignment.markdown_table(["metric"] + cols, [
              ["held-out, per sample"] + [a[c] for c in cols],
              ["held-out, vs true VA"] + [t[c] for c in cols],
              ["paper-metric (train rows)"] + [p[c] for c in cols]]),
          "## Cross-entropy (Table 1b)\n",
          alignment.markdown_table(["source", "valence", "arousal", "combined"], [
              [summary["ce_source"], summary["ce"]["valence"], summary["ce"]["arousal"], summary["ce"]["combined"]]]),
          "## VA regression (Table 2)\n",
          alignment.markdown_table(["axis", "MSE", "MAE", "EV", "R2"], [
              [ax] + [summary["regression"][ax][m] for m in ("mse", "mae", "ev", "r2")]
              for ax in ("valence", "arousal")])]
  if "accuracy" in summary:
    text += ["## Emotion accuracy (Table 3)\n", alignment.markdown_table(
        ["chunks", "accuracy"], [[k, v] for k, v in summary["accuracy"].items()])]
  return "\n".join(text)


def report(state, data, workdir, *, model, config) -> dict:
  """Encodes both splits, writes encodings.npz, levasa_report.json/.md and figures; returns scalars."""
  limit = config.eval.max_train_examples or None
  enc_train = encode(state, data.train, model=model, config=config, limit=limit)
  enc_test = encode(state, data.test, model=model, config=config, reconstruct=True)
  keep = ("z_v", "z_a", "z_z", "va", "label", "factors", "r_v", "r_a")
  np.savez_compressed(os.path.join(workdir, "encodings.npz"),
                      **{f"train_{k}": enc_train[k] for k in keep if k in enc_train},
                      **{f"test_{k}": enc_test[k] for k in keep if k in enc_test})
  summary = summarize(enc_train, enc_test, config, data.metadata.get("factor_names", ()))
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
  return {"align_mse_combined": summary["align"]["mse_combined"], "pixel_mse": summary["pixel_mse"]}


def reconstruct(state, source, *, model, count: int):
  """The first `count` images of a split and their reconstructions from z = mu."""
  images = jnp.asarray(source.gather(np.arange(min(count, len(source))))["image"])
  variables = _variables(state)
  mu, _ = model.apply(variables, images, method=model.encode)
  return np.asarray(images), np.asarray(model.apply(variables, mu, method=model.decode))
