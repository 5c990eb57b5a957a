"""GANmut evaluation (ganmut.md Sec. 5): the evaluator classifier and FED, smoothness, ERE, accuracy.

The original repository has no evaluation code; the paper's Section 5 text is the specification.
Choices the text leaves open are named where they are made (ASSUMPTION).
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np

from affectjax.affect import conditional as cs
from affectjax.evaluate import frechet, gan_metrics as gm
from affectjax.methods import ganmut_classifier as clf


# ---------------------------------------------------------------- generation

def _gen_apply(config):
  from affectjax.methods import ganmut
  gen, disc = ganmut.networks(config)
  bgr = bool(config.data.get("bgr", False))

  @jax.jit
  def generate(g_net, x, code):  # RGB in, RGB out, whatever the training channel order
    x = x[..., ::-1] if bgr else x
    y = gen.apply({"params": g_net}, x, code)
    return y[..., ::-1] if bgr else y

  @jax.jit
  def d_probs(d_params, x):
    x = x[..., ::-1] if bgr else x
    return jax.nn.softmax(disc.apply({"params": d_params}, x)[1], -1)

  return generate, d_probs


def _batched(fn, x, code, bs):
  out = [np.asarray(fn(x[i:i + bs], code[i:i + bs])) for i in range(0, len(x), bs)]
  return np.concatenate(out) if out else np.zeros((0,) + x.shape[1:], np.float32)


def emotion_code(space, config, c, strength):
  """The condition that expresses emotion c at `strength` in [0, 1]: (theta_c, strength) for GANmut,
  mu_0 + strength (mu_c - mu_0) for GGANmut (ASSUMPTION: the path from the neutral mode),
  (1 - strength) onehot(neutral) + strength onehot(c) for StarGAN (Sec. 5.2). [len(strength), k]."""
  s = np.asarray(strength, np.float32)
  kind, nc = config.model.space, config.data.num_classes
  if kind == "linear":
    th = float(np.asarray(space["theta"])[c - 1]) if c > 0 else 0.0
    return np.stack([s * np.cos(th), s * np.sin(th)], -1) * (c > 0)
  if kind == "gaussian":
    mus = np.asarray(cs.mode_means(space["w"]))
    return mus[0] + s[:, None] * (mus[c] - mus[0])
  eye = np.eye(nc, dtype=np.float32)
  return (1 - s)[:, None] * eye[0] + s[:, None] * eye[c]


def class_codes(space, config, labels, key):
  """Table 3 / FED conditions for given labels: (theta_c, 1), mu_c, onehot(c)."""
  kind, nc = config.model.space, config.data.num_classes
  labels = np.asarray(labels)
  if kind == "linear":
    th = np.r_[0.0, np.asarray(space["theta"])][labels]
    return np.stack([np.cos(th), np.sin(th)], -1) * (labels > 0)[:, None]
  if kind == "gaussian":
    return np.asarray(cs.mode_means(space["w"]))[labels]
  return np.eye(nc, dtype=np.float32)[labels]


def fed_codes(space, config, test_labels, key):
  """Conditions of the generated set for FED (Sec. 5): GANmut uniform over its space; StarGAN the
  test label distribution; GGANmut the modes of those labels plus noise (ASSUMPTION: N(0, 0.1^2))."""
  n, kind = len(test_labels), config.model.space
  k1, k2, k3 = jax.random.split(key, 3)
  labels = np.asarray(test_labels)[np.asarray(jax.random.permutation(k1, n))]
  if kind == "linear":
    th = np.asarray(jax.random.uniform(k2, (n,), maxval=2 * np.pi))
    r = np.sqrt(np.asarray(jax.random.uniform(k3, (n,))))
    return np.stack([r * np.cos(th), r * np.sin(th)], -1)
  codes = class_codes(space, config, labels, key)
  if kind == "gaussian":
    codes = codes + 0.1 * np.asarray(jax.random.normal(k2, codes.shape))
  return codes


def ere_grid(config):
  """Sec. 5.3 grids: GANmut radius step 0.05 x angle step 2 pi / 21; GGANmut step 0.1 over
  [-1, 1]^2; StarGAN the C categorical emotions."""
  e, kind = config.eval, config.model.space
  if kind == "linear":
    radii = np.arange(1, int(round(1 / e.ere_radius_step)) + 1) * e.ere_radius_step
    ang = np.arange(e.ere_angle_steps) * 2 * np.pi / e.ere_angle_steps
    r, a = np.meshgrid(radii, ang)
    return np.concatenate([np.zeros((1, 2)), np.stack([r.ravel() * np.cos(a.ravel()),
                                                       r.ravel() * np.sin(a.ravel())], -1)])
  if kind == "gaussian":
    t = np.arange(-1, 1 + 1e-6, e.ere_square_step)
    u, v = np.meshgrid(t, t)
    return np.stack([u.ravel(), v.ravel()], -1)
  return np.eye(config.data.num_classes, dtype=np.float32)


# ---------------------------------------------------------------- hooks

def _test_set(data, config):
  n = min(len(data.test), config.eval.max_test)
  t = data.test.gather(np.arange(n))
  keep = (t["label"] >= 0) & (t["label"] < config.data.num_classes)
  return t["image"][keep].astype(np.float32), t["label"][keep].astype(np.int32)


def evaluate(state, data, workdir, *, config):
  """Cheap checks during training: D_cls accuracy on held-out real faces, learned directions."""
  _, d_probs = _gen_apply(config)
  x, y = _test_set(data, config)
  x, y = x[:512], y[:512]
  p = np.concatenate([np.asarray(d_probs(state.d_params, x[i:i + 128])) for i in range(0, len(x), 128)])
  out = {"d_acc_real_test": float(np.mean(p.argmax(-1) == y))}
  if config.model.space == "linear":
    for i, th in enumerate(np.asarray(state.g_params["space"]["theta"])):
      out[f"theta_deg_{i + 1}"] = float(np.degrees(th) % 360)
  return out


def true_directions(data, config):
  """Per-emotion direction of the class mean valence-arousal from the neutral mean (train split)."""
  t = data.train.gather(np.arange(min(len(data.train), 20000)))
  va, lab = t["va"], t["label"]
  ok = np.all(np.isfinite(va), -1)
  means = np.array([va[ok & (lab == c)].mean(0) if np.any(ok & (lab == c)) else [np.nan] * 2
                    for c in range(config.data.num_classes)])
  d = means[1:] - means[0]
  return np.arctan2(d[:, 1], d[:, 0])


def learned_directions(space, config):
  if config.model.space == "linear":
    return np.asarray(space["theta"])
  if config.model.space == "gaussian":
    mus = np.asarray(cs.mode_means(space["w"]))
    d = mus[1:] - mus[0]
    return np.arctan2(d[:, 1], d[:, 0])
  return None


def report(state, data, workdir, *, config):
  """Everything Section 5 reports for this run: writes ganmut_metrics.json, tables and figures."""
  e, kind, nc = config.eval, config.model.space, config.data.num_classes
  cls_params, cls_model = clf.load_or_train(data, config, workdir)
  classify = clf.classify_fn(cls_model)
  probs_of = lambda imgs: clf.run(classify, cls_params, imgs, e.batch_size)
  generate, d_probs = _gen_apply(config)
  g_net, space = state.g_params["net"], state.g_params["space"]
  gen = lambda x, z: _batched(lambda a, b: generate(g_net, a, b), x, np.asarray(z, np.float32),
                              e.batch_size)
  key = jax.random.key(config.seed + 7)
  x, y = _test_set(data, config)
  p_real, f_real = probs_of(x)
  out = {"evaluator_acc_test": float(np.mean(p_real.argmax(-1) == y))}

  # FED (Sec. 5): evaluator penultimate features, real test set vs generated from it
  z = fed_codes(space, config, y, jax.random.fold_in(key, 1))
  p_fake, f_fake = probs_of(gen(x, z))
  out["fed"] = frechet.frechet_distance(f_real, f_fake)
  half = len(x) // 2
  out["fed_real"] = frechet.frechet_distance(f_real[:half], f_real[half:2 * half])

  # Table 3: evaluator accuracy on generated images of each emotion, and on real ones
  acc_gen = np.zeros(nc)
  for c in range(nc):
    zc = class_codes(space, config, np.full(len(x), c), key)
    acc_gen[c] = 100 * np.mean(probs_of(gen(x, zc))[0].argmax(-1) == c)
  acc_real = gm.per_class_accuracy(p_real.argmax(-1), y, nc)
  out.update({f"acc_gen_{c}": float(acc_gen[c]) for c in range(nc)})
  out.update({f"acc_real_{c}": float(acc_real[c]) for c in range(nc)})

  # Table 1: smoothness of neutral -> emotion in 10 steps (Sec. 5.2)
  xs = x[: e.smooth_images]
  steps = np.linspace(0, 1, 11)
  for c in range(1, nc):
    path = emotion_code(space, config, c, steps)  # [11, k]
    imgs = gen(np.repeat(xs, 11, 0), np.tile(path, (len(xs), 1)))
    s = probs_of(imgs)[0][:, c].reshape(len(xs), 11)
    out[f"smooth_{c}"] = float(np.mean(gm.smoothness_score(s)))

  # Table 2: ERE (Sec. 5.3); the source face is the next image of the batch (ASSUMPTION)
  grid = ere_grid(config)
  for setting, k in (("ere_1", 3), ("ere_2", 2)):
    nb = min(e.ere_batches, len(x) // 16)
    targets = gm.ambiguous_targets(p_real[: nb * 16], k)
    errs = []
    for t in targets:
      src = x[(t + 1) % 16 + (t // 16) * 16]
      cand = probs_of(gen(np.repeat(src[None], len(grid), 0), grid))[0]
      errs.append(gm.reconstruction_error(cand, p_real[t])[0])
    out[setting] = float(np.mean(errs)) if errs else float("nan")

  # learned directions vs the synthetic truth (valence-arousal angles)
  learned = learned_directions(space, config)
  if learned is not None:
    true = true_directions(data, config)
    if np.all(np.isfinite(true)):
      err, order = gm.angular_agreement(learned, true)
      out["angle_err_deg"], out["angle_order_match"] = err, float(order)
    out.update({f"theta_deg_{i + 1}": float(np.degrees(v) % 360) for i, v in enumerate(learned)})

  with open(os.path.join(workdir, "ganmut_metrics.json"), "w") as f:
    json.dump({"variant": config.variant, "space": kind, "lambda_rho": config.loss.lambda_rho,
               **{k: float(v) for k, v in out.items()}}, f, indent=1)
  if e.figures:
    from affectjax.methods import ganmut_figures
    ganmut_figures.all_figures(state, x, y, config, workdir, generate, d_probs)
  return out
