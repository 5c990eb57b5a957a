"""Measures how hard a synthetic-faces preset is, by model-independent criteria; one JSON line.

  python tools/calibrate_faces.py [--config.data.preset=hard] [--config.data.image_size=32]
      [--config.data.X=V ...] [--quick]

For config.data (the base config's: preset, knobs, sizes, test_fraction, seed), on the 'full' view
that training reads (the same seed, identities and split):
- expression_energy: per clean class, mean over images of |x - x0|^2 / |x|^2, x0 the same face
  (same pose and light) rendered with no expression, x in [0, 1]; nuisance_energy: the same ratio
  for |x0 - x00|^2, x00 the face neutral in the frontal pose and default light (zoom kept), i.e.
  the pose and lighting jitter; *_pm1: the same ratios with x in [-1, 1], the models' input scale
  (where reconstruction errors are measured); pixels_changed: mean fraction of pixels (max over
  channels) where |x - x0| > 0.1; intensity_below_0.3: fraction of faces;
- cnn_heldout_accuracy: the small CNN of affectjax.evaluate.cnn_ceiling (optax Adam; LeVAsa's
  supervised-CNN ceiling) with one emotion head, trained on the training identities and
  early-stopped on a tenth of them held out for validation (validation cross-entropy evaluated
  every --eval_every steps until --patience evaluations bring no improvement, at most
  --max_steps; the best step's network kept), scored on the test identities; chance: the training
  majority class's rate on the test identities;
- probe_au_accuracy / probe_landmarks_accuracy: logistic regression on the true AU intensities /
  on the landmark displacements (landmarks - neutral landmarks, x and y), fitted on the training
  identities and scored on the test ones: ceilings of what the pixels carry.
--quick: few images for the energies and few steps (tests).

Measured with seed 0 on 2 CPU cores shared with a nice-19 training run (--max_steps=1000
--patience=3 --energy_images=512; CNN held-out accuracy, energies as mean ratios in [0, 1] pixel
scale):
  calibrated 64x64, 320/80 identities: CNN 0.937 (best step 700; chance 0.113, AU probe 1.00,
    landmark probe 0.998); expression energy mean 1.25 % (median 0.54 %), nuisance 3.8 %;
    13 % below 0.3; 33 s
  calibrated 32x32: CNN 0.897; 128x128 (--max_steps=800 --energy_images=256): CNN 0.924
  hard 64x64 with the old default sizes (60 x 100: 48/12 identities): CNN 0.406 (best step 400,
    stopped at 700; chance 0.159, AU probe 0.99, landmark probe 0.98); expression energy mean
    0.42 % (median 0.16 %), nuisance 6.3 %; 30 % below 0.3
(Before the CNN moved to evaluate/cnn_ceiling and stopped on validation cross-entropy instead of
accuracy, the same commands gave 0.906 / 0.910 / 0.940 and hard 0.508.)
The calibrated values (presets.py) came from these criteria alone: expressive faces at
intensity >= 0.5, half the pose and light jitter, a 1.4x zoom onto the face, balanced classes.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np

from affectjax import config as config_lib


def _subset(params: dict, idx) -> dict:
  """`draw`'s parameters of the images idx (identity parameters kept whole)."""
  out = {}
  for k, v in params.items():
    if k in ("ids", "zoom"):
      out[k] = v
    elif isinstance(v, dict):
      out[k] = {n: np.asarray(a)[idx] for n, a in v.items()}
    else:
      out[k] = np.asarray(v)[idx]
  return out


def energies(data, seed: int, num_images: int) -> dict:
  """Expression and nuisance energy of `num_images` faces of the 'full' view (docstring)."""
  from affectjax.data import sources
  from affectjax.data.example import EMOTIONS
  from affectjax.data.synthetic.generate import draw, neutral_renders, synthesize
  opts = sources.synthetic_options(data, seed, "full")
  size = opts.pop("image_size")
  params = draw(**opts)
  n = len(params["identity"])
  idx = np.sort(np.random.default_rng(seed).permutation(n)[:min(num_images, n)])
  p = _subset(params, idx)
  x, _, _, _ = synthesize(p["ids"], p["identity"], p["mix"], p["intensity"], p["pose"],
                          p["light"], size, p["jitter"])
  x0 = neutral_renders(p, size, keep_nuisance=True)
  x00 = neutral_renders(p, size, keep_nuisance=False)
  x, x0, x00 = (a.astype(np.float64) / 255.0 for a in (x, x0, x00))
  total = np.sum(x ** 2, axis=(1, 2, 3))
  expr = np.sum((x - x0) ** 2, axis=(1, 2, 3)) / total
  nuis = np.sum((x0 - x00) ** 2, axis=(1, 2, 3)) / total
  changed = (np.abs(x - x0).max(-1) > 0.1).mean(axis=(1, 2))
  total_pm1 = np.sum((2 * x - 1) ** 2, axis=(1, 2, 3))  # the models' input scale, [-1, 1]
  expr_pm1 = 4 * np.sum((x - x0) ** 2, axis=(1, 2, 3)) / total_pm1
  nuis_pm1 = 4 * np.sum((x0 - x00) ** 2, axis=(1, 2, 3)) / total_pm1
  per_class = {e: float(expr[p["clean"] == c].mean()) for c, e in enumerate(EMOTIONS)
               if np.any(p["clean"] == c)}
  return {"expression_energy": per_class, "expression_energy_mean": float(expr.mean()),
          "expression_energy_median": float(np.median(expr)),
          "nuisance_energy": float(nuis.mean()), "nuisance_energy_median": float(np.median(nuis)),
          "expression_energy_mean_pm1": float(expr_pm1.mean()),
          "nuisance_energy_pm1": float(nuis_pm1.mean()),
          "pixels_changed_gt_0.1": float(changed.mean()),
          "pixels_changed_gt_0.1_count": float(changed.mean() * size * size),
          "energy_images": int(len(idx)), "indices": idx}


def probe_accuracy(train_x, train_y, test_x, test_y) -> float:
  """Held-out accuracy of a multinomial logistic regression on standardised features."""
  from sklearn.linear_model import LogisticRegression
  mu, sd = train_x.mean(0), train_x.std(0) + 1e-6
  clf = LogisticRegression(max_iter=2000)
  clf.fit((train_x - mu) / sd, train_y)
  return float(np.mean(clf.predict((test_x - mu) / sd) == test_y))


def cnn_accuracy(images, labels, train_idx, val_idx, test_idx, num_classes: int, seed: int, *,
                 max_steps: int, eval_every: int, patience: int, batch_size: int) -> dict:
  """affectjax.evaluate.cnn_ceiling's CNN with one emotion head, trained on train_idx and
  early-stopped on val_idx (validation cross-entropy); its accuracies at the best step."""
  from affectjax.evaluate import cnn_ceiling
  heads = {"emotion": cnn_ceiling.Classes(np.asarray(labels)[:, None], num_classes)}
  net = cnn_ceiling.fit(images, heads, train_idx, val_idx, seed=seed, max_steps=max_steps,
                        eval_every=eval_every, patience=patience, batch_size=batch_size,
                        log=lambda m: print(f"calibrate_faces: {m}", file=sys.stderr, flush=True))

  def accuracy(idx):
    pred = cnn_ceiling.outputs(net, images, idx)["emotion"][:, 0].argmax(-1)
    return float(np.mean(pred == labels[idx]))

  return {"cnn_heldout_accuracy": accuracy(test_idx), "cnn_val_accuracy": accuracy(val_idx),
          "cnn_train_accuracy": accuracy(train_idx[:2048]), "cnn_steps": net.steps,
          "cnn_best_step": net.best_step}


def measure(config, *, quick: bool = False, max_steps: int = 3000, eval_every: int = 100,
            patience: int = 4, energy_images: int = 1024, batch_size: int = 64) -> dict:
  """Every number of the tool's JSON line for config (see the module docstring)."""
  from affectjax.data import sources
  from affectjax.data.example import EMOTIONS
  from affectjax.data.synthetic import FACTOR_NAMES, presets
  from affectjax.evaluate import cnn_ceiling
  config = config.copy_and_resolve_references()
  data, seed = config.data, config.seed
  expect = config_lib.expect
  expect(data.name == "synthetic_faces",
         f"config.data.name={data.name!r}: the calibration tool measures 'synthetic_faces'")
  sources.validate(config)
  if quick:
    max_steps, eval_every, patience, energy_images = min(max_steps, 60), 20, 2, 32
  t0 = time.perf_counter()
  arrays = sources.synthetic_arrays(data, seed, "full")
  t_gen = time.perf_counter() - t0
  identity, labels = arrays["identity"], arrays["label"]
  train_idx, test_idx = sources.split_by_identity(identity, data.test_fraction, seed)
  fit_idx, val_idx = cnn_ceiling.validation_split(identity, train_idx, seed)
  col = {n: i for i, n in enumerate(FACTOR_NAMES)}
  intensity = arrays["factors"][:, col["intensity"]]
  majority = np.bincount(labels[train_idx], minlength=len(EMOTIONS)).argmax()
  out = {"preset": data.preset, "options": presets.options(data),
         "image_size": data.image_size, "seed": seed,
         # cnn_validation: training identities the CNN holds out for early stopping
         "identities": {"train": int(len(np.unique(identity[train_idx]))),
                        "test": int(len(np.unique(identity[test_idx]))),
                        "cnn_validation": int(len(np.unique(identity[val_idx])))},
         "images": {"train": int(len(train_idx)), "test": int(len(test_idx)),
                    "cnn_validation": int(len(val_idx))},
         "intensity_below_0.3": float(np.mean(intensity < 0.3)),
         "chance_majority": float(np.mean(labels[test_idx] == majority))}
  t1 = time.perf_counter()
  e = energies(data, seed, energy_images)
  e.pop("indices")
  out.update(e)
  aus = arrays["factors"][:, :17]
  disp = (arrays["landmarks"] - arrays["neutral_landmarks"])[..., :2].reshape(len(labels), -1)
  out["probe_au_accuracy"] = probe_accuracy(aus[train_idx], labels[train_idx], aus[test_idx],
                                            labels[test_idx])
  out["probe_landmarks_accuracy"] = probe_accuracy(disp[train_idx], labels[train_idx],
                                                   disp[test_idx], labels[test_idx])
  t2 = time.perf_counter()
  out.update(cnn_accuracy(arrays["image"], labels, fit_idx, val_idx, test_idx, len(EMOTIONS),
                          seed, max_steps=max_steps, eval_every=eval_every, patience=patience,
                          batch_size=batch_size))
  t3 = time.perf_counter()
  out["seconds"] = {"generate_or_read": round(t_gen, 1), "energies_probes": round(t2 - t1, 1),
                    "cnn": round(t3 - t2, 1), "total": round(t3 - t0, 1)}
  return out


def main():
  """Flags are defined here, not at import, so that tests can import measure()."""
  from absl import app, flags
  from ml_collections import config_flags
  config = config_flags.DEFINE_config_dict("config", config_lib.base_config())
  quick = flags.DEFINE_bool("quick", False, "Few energy images and CNN steps (tests, smoke runs).")
  max_steps = flags.DEFINE_integer("max_steps", 3000, "Upper bound on the CNN's steps.")
  eval_every = flags.DEFINE_integer("eval_every", 100, "CNN steps between validation evaluations.")
  patience = flags.DEFINE_integer("patience", 4, "Evaluations without improvement before stopping.")
  energy_images = flags.DEFINE_integer("energy_images", 1024, "Images for the energy statistics.")
  batch = flags.DEFINE_integer("batch_size", 64, "CNN batch size.")

  def run(argv):
    del argv
    print(json.dumps(measure(config.value, quick=quick.value, max_steps=max_steps.value,
                             eval_every=eval_every.value, patience=patience.value,
                             energy_images=energy_images.value, batch_size=batch.value)))
  app.run(run)


if __name__ == "__main__":
  main()
