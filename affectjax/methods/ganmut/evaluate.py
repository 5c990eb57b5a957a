"""GANmut evaluation (ganmut.md Sec. 5): the evaluator classifier and FED, smoothness, ERE, accuracy.

The original repository has no evaluation code; the paper's Section 5 text is the specification.
Choices the text leaves open are named where they are made (ASSUMPTION). Every kind-specific
condition (paths, class codes, random codes, ERE grids, directions) comes from the run's
affectjax.affect.conditional.Space; G and D come in as the method's pure `generate(state, batch,
key)` and `d_probs(state, images)`, so this module does not import method.py. The evaluator
classifier is read from its directory (classifier.load), where the loop trained it first.
"""
from __future__ import annotations

import json
import os

import jax
import numpy as np

from affectjax.evaluate import frechet, gan_metrics as gm
from affectjax.evaluate.inference import batched
from affectjax.methods.ganmut import classifier as clf
from affectjax.methods.ganmut.objective import G

ERE_BATCH = 16  # the paper divides the test set into batches of 16 (Sec. 5.3)
PATH_STEPS = np.linspace(0, 1, 11)  # rho_j = 0.1 j, j = 0..10 (Sec. 5.2)


# ---------------------------------------------------------------- generation on the host

def host_functions(state, generate, d_probs, batch_size, key=None):
  """(gen(x, z) -> images, dprobs(images) -> D_cls softmax) over whole arrays, as numpy, through
  the one batched-inference helper (one compile each, the last batch padded)."""
  state = jax.device_put(state)
  key = jax.random.key(0) if key is None else key
  g = jax.jit(lambda s, b: generate(s, b, key))
  p = jax.jit(d_probs)

  def gen(x, z):
    return batched(lambda b: g(state, b), {"image": np.asarray(x, np.float32),
                                           "code": np.asarray(z, np.float32)}, batch_size)

  def dprobs(images):
    return batched(lambda b: p(state, b), np.asarray(images, np.float32), batch_size)

  return gen, dprobs


# ---------------------------------------------------------------- hooks

def _test_set(data, config, limit=None):
  n = len(data.test) if limit is None else min(len(data.test), limit)
  t = data.test.gather(np.arange(n))
  keep = (t["label"] >= 0) & (t["label"] < config.data.num_classes)
  return t["image"][keep].astype(np.float32), t["label"][keep].astype(np.int32)


def evaluate(state, data, workdir, *, config, space, generate, d_probs):
  """Cheap checks during training: D_cls accuracy on held-out real faces, learned directions."""
  del workdir
  _, dprobs = host_functions(state, generate, d_probs, 128)
  x, y = _test_set(data, config, 512)
  out = {"d_acc_real_test": float(np.mean(dprobs(x).argmax(-1) == y))}
  learned = space.directions(state.params[G]["space"])
  if learned is not None:
    for i, th in enumerate(np.asarray(learned)):
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


def au_prototypes(num_classes):
  """The synthetic faces' AU prototype of each non-neutral emotion ([C-1, 17]; REFERENCE.md's EMFACS
  table, affectjax/data/synthetic/aus.py)."""
  from affectjax.data.synthetic.aus import PROTOTYPES
  return np.asarray(PROTOTYPES["default"], np.float64)[1:num_classes]


def _chance_angle_error(true, key, draws=500):
  """Mean angular error (deg) of uniformly random directions against `true`, aligned alike."""
  rnd = np.asarray(jax.random.uniform(key, (draws, len(true)), maxval=2 * np.pi))
  return float(np.mean([gm.angular_agreement(r, true)[0] for r in rnd]))


def ere(probs_of, gen, x, p_real, grid, num_batches):
  """Table 2's ERE (Sec. 5.3) over the first `num_batches` test batches of 16 (every test sample
  takes part in choosing its batch's target): Setting 1 targets have 3 high softmax values, Setting
  2 have 2. The source face is the next image of the target's batch (ASSUMPTION: the paper does not
  say which face is edited; never the target itself). Candidates: G(source, every grid code).

  Returns {ere_1, ere_2, ere_uniform_1/2 (predicting the uniform distribution: chance),
  ere_real_1/2 (the best other real test face's softmax as the candidate: a real-face reference),
  ere_targets (targets per setting)}.
  """
  cache = {}
  out = {}
  others = np.arange(len(p_real))
  for setting, k in (("1", 3), ("2", 2)):
    targets = gm.ambiguous_targets(p_real[: num_batches * ERE_BATCH], k, ERE_BATCH)
    errs, uni, real = [], [], []
    for t in targets:
      src = int((t + 1) % ERE_BATCH + (t // ERE_BATCH) * ERE_BATCH)
      if src not in cache:
        cache[src] = probs_of(gen(np.repeat(x[src][None], len(grid), 0), grid))[0]
      errs.append(gm.reconstruction_error(cache[src], p_real[t])[0])
      uni.append(gm.reconstruction_error(np.full((1, p_real.shape[1]), 1 / p_real.shape[1]),
                                         p_real[t])[0])
      real.append(gm.reconstruction_error(p_real[others != t], p_real[t])[0])
    out[f"ere_{setting}"] = float(np.mean(errs)) if errs else float("nan")
    out[f"ere_uniform_{setting}"] = float(np.mean(uni)) if uni else float("nan")
    out[f"ere_real_{setting}"] = float(np.mean(real)) if real else float("nan")
    out["ere_targets"] = float(len(targets))
  return out


def report(state, data, workdir, *, config, space, generate, d_probs):
  """Everything Section 5 reports for this run: writes ganmut_metrics.json, tables and figures."""
  e, nc = config.eval, config.data.num_classes
  cls_params, cls_model = clf.load(config, workdir, data)
  classify = clf.classify_fn(cls_model)
  probs_of = lambda imgs: clf.run(classify, cls_params, imgs, e.batch_size)
  key = jax.random.key(config.seed + 7)
  gen, dprobs = host_functions(state, generate, d_probs, e.batch_size, jax.random.fold_in(key, 9))
  params = state.params[G]["space"]
  x, y = _test_set(data, config, e.max_test)
  p_real, f_real = probs_of(x)
  out = {"evaluator_acc_test": float(np.mean(p_real.argmax(-1) == y)), "test_faces": len(x)}

  # FED (Sec. 5) at equal sample sizes: real half A against real half B ("Real") and against
  # G(half B, random codes of the space) (the generator); the halves are a random split
  n_fed = min(len(x), e.fed_faces) if e.get("fed_faces", 0) else len(x)
  perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, 2), len(x)))[:n_fed]
  half = n_fed // 2
  a, b = perm[:half], perm[half:2 * half]
  z = np.asarray(space.random_codes(jax.random.fold_in(key, 1), params, y[b]))
  _, f_fake = probs_of(gen(x[b], z))
  out["fed"] = frechet.frechet_distance(f_real[a], f_fake)
  out["fed_real"] = frechet.frechet_distance(f_real[a], f_real[b])
  out["fed_n"] = float(half)

  # identity preservation: mean per-pixel L1 between G(x, neutral code) and x (held-out faces),
  # beside the L1 between x and another test face (a different person or expression)
  neutral = np.asarray(space.class_codes(params, np.zeros(len(x), np.int32)))
  out["id_l1_neutral"] = float(np.mean(np.abs(gen(x, neutral) - x)))
  other = np.asarray(jax.random.permutation(jax.random.fold_in(key, 3), len(x)))
  out["id_l1_other_face"] = float(np.mean(np.abs(x[other] - x)))

  # Table 3: evaluator accuracy on generated images of each emotion, and on real ones
  acc_gen = np.zeros(nc)
  for c in range(nc):
    zc = np.asarray(space.class_codes(params, np.full(len(x), c, np.int32)))
    acc_gen[c] = 100 * np.mean(probs_of(gen(x, zc))[0].argmax(-1) == c)
  acc_real = gm.per_class_accuracy(p_real.argmax(-1), y, nc)
  out.update({f"acc_gen_{c}": float(acc_gen[c]) for c in range(nc)})
  out.update({f"acc_real_{c}": float(acc_real[c]) for c in range(nc)})
  counts = np.bincount(y, minlength=nc)
  out["acc_majority"] = float(100 * counts.max() / max(1, counts.sum()))

  # Table 1: smoothness of neutral -> emotion in 10 steps (Sec. 5.2) and the monotone fraction
  xs = x[: e.smooth_images]
  j = len(PATH_STEPS)
  for c in range(1, nc):
    path = np.asarray(space.emotion_code(params, c, PATH_STEPS))  # [11, k]
    imgs = gen(np.repeat(xs, j, 0), np.tile(path, (len(xs), 1)))
    s = probs_of(imgs)[0][:, c].reshape(len(xs), j)
    out[f"smooth_{c}"] = float(np.mean(gm.smoothness_score(s)))
    out[f"monotone_{c}"] = float(np.mean(gm.is_monotone(s)))

  # Table 2: ERE (Sec. 5.3) over every test batch of 16 unless eval.ere_batches caps it
  nb = len(x) // ERE_BATCH
  nb = min(nb, e.ere_batches) if e.ere_batches > 0 else nb
  out.update(ere(probs_of, gen, x, p_real, np.asarray(space.ere_grid(), np.float32), nb))

  # learned directions vs the synthetic truth: valence-arousal angles and AU-prototype similarity
  learned = space.directions(params)
  if learned is not None:
    learned = np.asarray(learned, np.float64)
    true = true_directions(data, config)
    if np.all(np.isfinite(true)):
      err, order = gm.angular_agreement(learned, true)
      out["angle_err_deg"], out["angle_order_match"] = err, float(order)
      out["angle_err_chance_deg"] = _chance_angle_error(true, jax.random.fold_in(key, 4))
    protos = au_prototypes(nc)
    out["au_sim_r"] = gm.similarity_agreement(learned, protos)
    if np.all(np.isfinite(true)):
      out["au_sim_r_true_va"] = gm.similarity_agreement(true, protos)
    out.update({f"theta_deg_{i + 1}": float(np.degrees(v) % 360) for i, v in enumerate(learned)})

  with open(os.path.join(workdir, "ganmut_metrics.json"), "w") as f:
    json.dump({"variant": config.variant, "space": space.kind, "lambda_rho": config.loss.lambda_rho,
               "seed": config.seed, **{k: float(v) for k, v in out.items()}}, f, indent=1)
  if e.figures:
    from affectjax.methods.ganmut import figures
    figures.all_figures(params, x, y, config, space, workdir, gen, dprobs)
  return out
