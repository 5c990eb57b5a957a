"""Evaluation and report of the triplet VAE (../shared/papers/triplet_vae.md Sec. V-B, Tables II-III).

On held-out people (the test part): linear SVM accuracy (one-vs-rest, scikit-learn) trained on the
training part's representation (on the features as they are, the paper's "SVM with linear kernel";
config.eval.svm_standardize=True standardises them first; C chosen on a quarter of the training
people); the
satisfied-triplet fraction of Eq. 12 on the test triplets (per reliability level 5/3/1 for crowd
triplets); the baselines raw features and PCA to the latent dimension. Because the synthetic
truth is known, also the ridge R^2 of the true AU intensities (BU-3DFE: expression intensity;
BP4D: AU occurrences) and identity leakage on the test people (probes.identity_leakage, the same
probe Rb-VAE's evaluation uses).
"""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from affectjax.affect import triplets as trip_lib
from affectjax.evaluate import probes
from affectjax.evaluate.inference import batched
from affectjax.methods.triplet_vae.objective import PLAYER
from affectjax.nn.landmark_mlp import LandmarkVAE

ROWS = ("raw", "pca")


def scores(z_train, z_test, prep, config) -> dict:
  """Every metric of one representation (train part -> fit, test part -> score), with the probes
  every method shares (affectjax.evaluate.probes): the paper's linear SVM (C chosen on a quarter of
  the training part's people, as the scored people are new), ridge R^2 of the factors (penalty
  chosen the same way), identity leakage on the test people, and the satisfied triplets of
  Eq. 12."""
  tr, te = prep.train, prep.test
  svm = probes.linear_classifier((z_train, tr.label), (z_test, te.label), people=tr.identity,
                                 kind="svm", standardize=bool(config.eval.svm_standardize),
                                 grid=_svm_grid(config), seed=config.seed)
  leak = probes.identity_leakage(z_test, te.identity, seed=config.seed)
  out = {"dim": float(z_test.shape[1]),
         "accuracy": svm["accuracy"], "svm_C": svm["C"],
         "factor_r2": probes.ridge_r2((z_train, tr.factors), (z_test, te.factors),
                                      people=tr.identity)["mean"],
         "identity_accuracy": leak["accuracy"], "identity_chance": leak["chance"]}
  if "artificial" in te.triplets:
    out["triplets_artificial"] = trip_lib.satisfied_fraction(z_test, te.triplets["artificial"][0])
  if "crowd" in te.triplets:
    t, w = te.triplets["crowd"]
    out["triplets_crowd"] = trip_lib.satisfied_fraction(z_test, t)
    for level, frac in trip_lib.satisfied_by_reliability(z_test, t, w, config.triplets.votes).items():
      out[f"triplets_crowd_{level}"] = frac
  return out


def _svm_grid(config):
  """config.eval.svm_c: 0 chooses C from probes.C_GRID on the selection rows, a number fixes it."""
  return probes.C_GRID if not config.eval.svm_c else (float(config.eval.svm_c),)


def _encode(state, part, represent, batch_size):
  """The representation z (represent's 'z': mu under the selected parameters) of a part."""
  fn = jax.jit(lambda b: represent(state, b))
  return np.asarray(batched(fn, part.arrays(), batch_size)["z"], np.float64)


def evaluate(state, data, workdir, *, model, config, represent) -> dict:
  """The selected model's metrics on the test people (Tables II-III's row); data: the method's
  PreparedSplits."""
  del workdir, model
  prep = data.prepared
  z_train = _encode(state, prep.train, represent, config.eval.batch_size)
  z_test = _encode(state, prep.test, represent, config.eval.batch_size)
  out = scores(z_train, z_test, prep, config)
  out["best_val_elbo"] = float(np.asarray(state.best_elbo))
  out["best_step"] = float(np.asarray(state.best_step))
  return out


def baselines(prep, dim: int, config) -> dict:
  """{'raw': scores, 'pca': scores}: the original features and PCA to `dim` (fit on train)."""
  from sklearn.decomposition import PCA
  x_train = prep.train.landmarks.reshape(len(prep.train.landmarks), -1).astype(np.float64)
  x_test = prep.test.landmarks.reshape(len(prep.test.landmarks), -1).astype(np.float64)
  pca = PCA(n_components=min(dim, x_train.shape[1], len(x_train)), random_state=0).fit(x_train)
  return {"raw": scores(x_train, x_test, prep, config),
          "pca": scores(pca.transform(x_train), pca.transform(x_test), prep, config)}


def table(rows: dict, crowd: bool) -> str:
  """Table II (posed: dim, accuracy, triplets) or III (spontaneous: accuracy, triplets 5/3/1)."""
  def f(v):
    return "—" if v is None or not np.isfinite(v) else f"{v:.3f}"
  if crowd:
    head = "| representation | dim | accuracy | triplets 5 | triplets 3 | triplets 1 | AU R^2 | identity acc |"
    keys = ("accuracy", "triplets_crowd_5", "triplets_crowd_3", "triplets_crowd_1")
  else:
    head = "| representation | dim | accuracy | triplets | AU R^2 | identity acc |"
    keys = ("accuracy", "triplets_artificial")
  lines = [head, "|" + "---|" * (head.count("|") - 1)]
  for name, s in rows.items():
    cells = [f(s.get(k)) for k in keys + ("factor_r2", "identity_accuracy")]
    lines.append(f"| {name} | {int(s['dim'])} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def pca_figure(path, reps: dict, labels, class_names=None, title=""):
  """Figures 4-5: each representation projected on its first 3 principal components, by class."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from sklearn.decomposition import PCA
  fig = plt.figure(figsize=(4.2 * len(reps), 4.2))
  known = labels >= 0
  classes = np.unique(labels[known])
  cmap = plt.get_cmap("tab10")
  for i, (name, z) in enumerate(reps.items()):
    ax = fig.add_subplot(1, len(reps), i + 1, projection="3d")
    p = PCA(n_components=3, random_state=0).fit_transform(z[known])
    for j, c in enumerate(classes):
      m = labels[known] == c
      lab = class_names[c] if class_names is not None and c < len(class_names) else str(c)
      ax.scatter(p[m, 0], p[m, 1], p[m, 2], s=6, color=cmap(j % 10), label=lab)
    ax.set_title(name)
    ax.set_xticklabels([]), ax.set_yticklabels([]), ax.set_zticklabels([])
  fig.axes[0].legend(loc="upper left", fontsize=7, markerscale=2)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def traversal_figure(path, state, prep, model, config, num_dims: int = 4, num_values: int = 5):
  """Latent traversals: z = 0 except one active dimension in [-2.5, 2.5], decoded with a test
  person's neutral face (M1/M2) and drawn as landmark plots (x, y; the mean face added back)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  test = prep.test
  x = jnp.asarray(test.landmarks.reshape(len(test.landmarks), -1))
  y = jnp.asarray(test.neutral.reshape(len(test.neutral), -1))
  params = state.best_params[PLAYER]
  enc = jax.jit(lambda a, b: model.apply({"params": params}, a, b, method=LandmarkVAE.encode))
  mu, logvar = enc(x[:2000], y[:2000])
  kl = np.asarray(0.5 * jnp.mean(jnp.square(mu) + jnp.exp(logvar) - logvar - 1.0, 0))
  dims = np.argsort(-kl)[:num_dims]  # the most active latent dimensions
  values = np.linspace(-2.5, 2.5, num_values)
  z = np.zeros((num_dims, num_values, model.latent_dim), np.float32)
  for i, d in enumerate(dims):
    z[i, :, d] = values
  z = jnp.asarray(z.reshape(-1, model.latent_dim))
  neutral = jnp.broadcast_to(y[:1], (z.shape[0], y.shape[1]))
  faces = np.asarray(model.apply({"params": params}, z, neutral, method=LandmarkVAE.decode))
  faces = faces.reshape(num_dims, num_values, -1, 3) + prep.mean
  y_down = prep.info.rendered  # image coordinates; scanners' y points up
  fig, axes = plt.subplots(num_dims, num_values, figsize=(1.9 * num_values, 1.9 * num_dims))
  axes = np.atleast_2d(axes)
  for i in range(num_dims):
    for j in range(num_values):
      ax = axes[i, j]
      f = faces[i, j]
      ax.scatter(f[:, 0], -f[:, 1] if y_down else f[:, 1], s=4, color="k")
      ax.set_aspect("equal")
      ax.set_xticks([]), ax.set_yticks([])
      if i == 0:
        ax.set_title(f"{values[j]:+.1f}", fontsize=8)
      if j == 0:
        ax.set_ylabel(f"z{dims[i]} (KL {kl[dims[i]]:.2f})", fontsize=8)
  fig.suptitle(f"{config.variant}: latent traversals decoded to landmarks")
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def report(state, data, workdir, *, model, config, represent) -> dict:
  """Writes triplet_vae_table.md (this model beside raw and PCA), the PCA figure, the traversal
  figure and the test representations (representations.npz); returns the rows' metrics."""
  prep = data.prepared
  z_train = _encode(state, prep.train, represent, config.eval.batch_size)
  z_test = _encode(state, prep.test, represent, config.eval.batch_size)
  rows = baselines(prep, z_test.shape[1], config)
  rows[config.variant] = scores(z_train, z_test, prep, config)
  crowd = config.triplets.kind == "crowd"
  with open(os.path.join(workdir, "triplet_vae_table.md"), "w") as f:
    f.write(table(rows, crowd) + "\n")
  x_test = prep.test.landmarks.reshape(len(prep.test.landmarks), -1)
  np.savez(os.path.join(workdir, "representations.npz"), z_test=z_test, raw_test=x_test,
           label=prep.test.label, identity=prep.test.identity)
  from affectjax.data.example import EMOTIONS
  names = ("negative", "positive") if config.eval.task == "valence_sign" else EMOTIONS
  if np.sum(prep.test.label >= 0) >= 3:
    pca_figure(os.path.join(workdir, "pca_3d.png"), {"original": x_test, config.variant: z_test},
               prep.test.label, names)
  traversal_figure(os.path.join(workdir, "traversals.png"), state, prep, model, config)
  out = {f"{name}_{k}": v for name, s in rows.items() for k, v in s.items()}
  with open(os.path.join(workdir, "triplet_vae_report.json"), "w") as f:
    json.dump({k: (None if not np.isfinite(v) else v) for k, v in out.items()}, f, indent=1)
  return out
