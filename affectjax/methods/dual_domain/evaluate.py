"""Dual-domain fusion's evaluation (dual_domain_fusion.md Tables 1-4, Figures 3, 5, 6 and the
calibration claim): the evaluated model is the SWA average with BatchNorm statistics recomputed
for it when SWA has averaged anything, else the last weights; one prediction of the test split
serves the evaluation and the report."""
from __future__ import annotations

import json
import os
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from affectjax import swa as swa_lib
from affectjax.evaluate import affect_metrics as am
from affectjax.evaluate.gradcam import gradcam, gradcam_figure
from affectjax.evaluate.inference import batched
from affectjax.methods.dual_domain.labels import clean_label_index, read
from affectjax.methods.dual_domain.objective import net_variables, variables


def _entry(cache, state) -> dict:
  """The cache's record for this very host state (evaluate and report of one run, or of one of
  K seeds, receive the same object); records of other steps are dropped. The state is held
  weakly, so a record never outlives it nor keeps its arrays alive."""
  if cache is None:
    return {}
  step = int(state.step)
  records = [r for r in cache.get("records", []) if r["step"] == step and r["state"]() is not None]
  cache["records"] = records
  for r in records:
    if r["state"]() is state:
      return r
  r = {"state": weakref.ref(state), "step": step}
  records.append(r)
  return r


def eval_variables(state, data, *, model, config, cache=None):
  """(variables, used_swa): the SWA weights with BatchNorm statistics recomputed over
  eval.bn_batches un-augmented training batches when SWA has averaged anything, else the last
  weights. `cache` (a dict) keeps the result per state, so evaluate and report share one pass."""
  if state.swa is None or int(state.swa.count) == 0:
    return variables(state), False
  record = _entry(cache, state)
  if "swa_variables" in record:
    return record["swa_variables"], True
  params = state.swa.params
  stats = state.aux
  if stats is not None:
    bs, n = config.eval.batch_size, len(data.train)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(n)
    batches = ({"image": jnp.asarray(data.train.gather(np.sort(order[i:i + bs]))["image"])}
               for i in range(0, min(n, bs * config.eval.bn_batches) - bs + 1, bs)) if n >= bs else iter(
                   [{"image": jnp.asarray(data.train.gather(np.arange(n))["image"])}])
    apply = lambda v, b: model.apply(v, b["image"], train=True, mutable=["batch_stats"])
    stats = swa_lib.recompute_batch_stats(apply, params, stats, batches)
  record["swa_variables"] = net_variables(params, stats)
  return record["swa_variables"], True


def predict_fn(model):
  """jitted (variables, images) -> (probs, features[, va]) (va when the model has a VA head)."""
  @jax.jit
  def predict(variables, images):
    logits, va, feats = model.apply(variables, images, train=False)
    probs = jax.nn.softmax(logits, -1)
    return (probs, feats) if va is None else (probs, feats, va)
  return predict


def predictions(variables, split, *, model, config, limit=None, predict=None):
  """{'probs', 'features', 'va_pred' (if the model has a VA head), 'label', 'va'} over a split,
  in order (numpy). predict: predict_fn(model), made once by the caller to compile once."""
  predict = predict or predict_fn(model)
  out = batched(lambda b: predict(variables, jnp.asarray(b["image"])), split,
                config.eval.batch_size, limit)
  n = len(out[0])
  res = {"probs": out[0], "features": out[1]}
  if len(out) == 3:
    res["va_pred"] = out[2]
  res["label"] = read(split, "label")[:n].astype(np.int32)
  res["va"] = read(split, "va")[:n].astype(np.float32)
  return res


def metrics_of(pred: dict, config, clean=None) -> dict:
  """Accuracy, macro F1, ECE; RMSE and CCC (global) for V and A; accuracy against clean labels."""
  c = config.data.num_classes
  y = np.where(pred["label"] < c, pred["label"], -1)
  guess = pred["probs"].argmax(-1)
  out = {"accuracy": am.accuracy(y, guess) if np.any(y >= 0) else float("nan"),
         "f1": am.macro_f1(y, guess, c) if np.any(y >= 0) else float("nan"),
         "ece": am.expected_calibration_error(pred["probs"], y) if np.any(y >= 0) else float("nan")}
  if clean is not None:
    out["accuracy_clean"] = am.accuracy(clean, guess)
    out["f1_clean"] = am.macro_f1(clean, guess, c)
  if "va_pred" in pred and np.any(np.all(np.isfinite(pred["va"]), -1)):
    ccc_batch = config.eval.ccc_batch or None
    r, k = am.rmse(pred["va_pred"], pred["va"]), am.concordance_cc(pred["va_pred"], pred["va"], ccc_batch)
    out.update(rmse_v=float(r[0]), rmse_a=float(r[1]), ccc_v=float(k[0]), ccc_a=float(k[1]))
  return out


def _clean_test_labels(data, config):
  idx = clean_label_index(data.metadata)
  if idx is None:
    return None
  clean = np.rint(read(data.test, "factors")[:, idx]).astype(np.int32)
  return np.where(clean < config.data.num_classes, clean, -1)


def _evaluated(state, data, *, model, config, cache):
  """(variables, used_swa, test predictions) of the evaluated model, predicted once per state."""
  variables_, used = eval_variables(state, data, model=model, config=config, cache=cache)
  record = _entry(cache, state)
  if "pred" not in record:
    record["pred"] = predictions(variables_, data.test, model=model, config=config,
                                 limit=config.eval.max_test or None, predict=cache.get("predict"))
  return variables_, used, record["pred"]


def evaluate(state, data, workdir, *, model, config, info, cache=None):
  """Test-split metrics of the evaluated model (SWA when active) and, with SWA, of the last weights."""
  del workdir
  cache = {} if cache is None else cache
  _, used, pred = _evaluated(state, data, model=model, config=config, cache=cache)
  clean = _clean_test_labels(data, config)
  out = metrics_of(pred, config, None if clean is None else clean[:len(pred["label"])])
  out["swa_models"] = float(int(state.swa.count)) if state.swa is not None else 0.0
  if used:
    last = metrics_of(predictions(variables(state), data.test, model=model, config=config,
                                  limit=config.eval.max_test or None, predict=cache.get("predict")),
                      config)
    out.update({f"last_{k}": v for k, v in last.items() if k in ("accuracy", "f1", "ece")})
  out["labels_flipped"] = float(info["num_flipped"])
  return out


def report(state, data, workdir, *, model, config, info, cache=None):
  """Writes dual_domain_metrics.json, predictions.npz (test probabilities, VA predictions and
  targets: Figure 5), class_statistics.npz (Figure 3), reliability.png and gradcam.png (Figure 6)."""
  cache = {} if cache is None else cache
  variables_, used, pred = _evaluated(state, data, model=model, config=config, cache=cache)
  clean = _clean_test_labels(data, config)
  if clean is not None:
    clean = clean[:len(pred["label"])]
  out = metrics_of(pred, config, clean)
  np.savez(os.path.join(workdir, "predictions.npz"),
           **{k: v for k, v in pred.items() if k != "features"},
           **({"clean": clean} if clean is not None else {}))
  np.savez(os.path.join(workdir, "class_statistics.npz"), priors=info["priors"], means=info["means"],
           covs=info["covs"], class_weights=info["class_weights"])
  with open(os.path.join(workdir, "dual_domain_metrics.json"), "w") as f:
    json.dump({"variant": config.variant, "labels": config.labels.kind,
               "alpha": config.labels.alpha, "label_noise": config.train.label_noise,
               "swa_used": used, **{k: float(v) for k, v in out.items()}}, f, indent=1)
  if config.eval.figures and np.any(pred["label"] >= 0):
    am.plot_reliability(os.path.join(workdir, "reliability.png"), pred["probs"], pred["label"],
                        title=f"dual_domain:{config.variant}")
    if config.model.backbone == "resnet18":  # Grad-CAM needs the last conv block and a linear head
      n = min(config.eval.gradcam_images, len(pred["label"]))
      images = data.test.gather(np.arange(n))["image"]
      cams = gradcam(model, variables_, images, pred["probs"][:n].argmax(-1))
      gradcam_figure(os.path.join(workdir, "gradcam.png"), images, cams, pred["label"][:n],
                     pred["probs"][:n].argmax(-1))
  return out
