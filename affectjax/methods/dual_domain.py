"""Dual-domain affect fusion (../shared/papers/dual_domain_fusion.md) and the image classifier
that GANmut's evaluator is (methods/ganmut_classifier.py: this method with one-hot labels, a VGG
backbone and no VA head).

Built from the training split (make_method): labels with `train.label_noise` of them flipped to
another class (Sec. 5.1; the clean labels are kept for evaluation), class statistics pi_k, mu_k,
Sigma_k (Eq. 1) and class weights W_k (Eq. 5) of those labels, and the VA labels p(y | x)_VA
(GMM Eq. 2 | Euclid Eq. 3) of every training row. A VA-only dataset (Aff-Wild) borrows AffectNet's
pi_k, mu_k, Sigma_k instead and takes its class labels (train and test) from their GMM (Sec. 4.1). Each step augments the images (colour jitter,
horizontal flip, random affine: a pure function of a key), fuses the labels (Eq. 4), and minimises
Eq. 9 = weighted L2 on VA (Eq. 8) + weighted soft CE (Eq. 6) + weighted cosine loss (Eq. 7) with
Adam and a step decay x0.5 every 30 epochs; SWA averages the weights over the last epochs, and
evaluation uses the SWA weights with BatchNorm statistics recomputed for them.

Switches that mimic the public code (../shared/REFERENCE.md): labels.euclid_distance='plain',
labels.within_std (the code and the paper's Sec. 4.2 both use the 1-std box), train.noise_mode=
'original' (drawn with replacement, may keep the class), swa.enabled=False and optim.schedule=
'constant' (the code has neither), optim.weight_decay=1e-5, eval.ccc_batch=256 (CCC averaged
over batches).
"""
from __future__ import annotations

import functools
import json
import math
import os
from typing import Any, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from affectjax import losses, optim, swa as swa_lib
from affectjax.affect import mixed_labels as ml
from affectjax.config import ConfigError, check_choices, expect
from affectjax.data import source as source_lib
from affectjax.data.source import ArraySource, WithFields
from affectjax.data.sources import Splits
from affectjax.evaluate import affect_metrics as am
from affectjax.evaluate.inference import batched
from affectjax.methods.base import Method, Stream, resolve
from affectjax.nn.classifier import VGGClassifier
from affectjax.nn.resnet import ResNet18, load_torchvision_npz

CHOICES = {
    "model.backbone": ("resnet18", "vgg"),
    "model.dtype": ("float32", "bfloat16"),
    "model.stem": ("auto", "imagenet", "small"),
    "labels.kind": ("onehot", "euclid", "gmm"),
    "labels.euclid_distance": ("squared", "plain"),
    "labels.stats_from": ("noisy", "clean"),
    "labels.va_only_stats": ("affectnet", "refit"),
    "train.noise_mode": ("paper", "original"),
}


@flax.struct.dataclass
class TrainState:
  step: jax.Array
  params: Any
  opt_state: Any
  batch_stats: Any  # None for the VGG backbone (no BatchNorm)
  swa: Any  # swa.SWAState (running mean of params) or None when config.swa.enabled is False


# ---------------------------------------------------------------- networks

class VGGNet(nn.Module):
  """The VGG-style evaluator family (nn/classifier.py) with ResNet18's interface and an optional
  tanh VA head on the penultimate features."""
  num_classes: int
  widths: tuple
  va_head: bool = True
  feature_dim: int = 256

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no BatchNorm or dropout
    logits, feats = VGGClassifier(self.num_classes, self.widths, self.feature_dim, name="vgg")(x)
    va = jnp.tanh(nn.Dense(2, name="va_head")(feats)) if self.va_head else None
    return logits, va, feats


def build_model(config):
  """ResNet-18 (Sec. 4.2) or the VGG evaluator family: x -> (logits, va or None, features)."""
  m = config.model
  if m.backbone == "vgg":
    return VGGNet(config.data.num_classes, tuple(m.widths), m.va_head, m.feature_dim)
  small = m.stem == "small" or (m.stem == "auto" and config.data.image_size < 112)
  return ResNet18(config.data.num_classes, widths=tuple(m.widths), small_input=small,
                  va_head=m.va_head, dtype=jnp.dtype(m.dtype))


def _variables(params, batch_stats):
  return {"params": params} if batch_stats is None else {"params": params, "batch_stats": batch_stats}


# ---------------------------------------------------------------- validation

def validate(config):
  """The method's own fields; one ConfigError line each (before any data is generated or read)."""
  check_choices(config, CHOICES)
  m, l, t, a, s = config.model, config.labels, config.train, config.aug, config.swa
  expect(len(m.widths) >= 1 and all(int(w) > 0 for w in m.widths),
         f"config.model.widths={tuple(m.widths)}: expected positive channel counts")
  expect(m.backbone == "vgg" or len(m.widths) == 4,
         f"config.model.widths={tuple(m.widths)}: ResNet-18 has four stages")
  expect(not (m.backbone == "vgg" and m.init_npz),
         f"config.model.init_npz={m.init_npz!r}: ImageNet weights exist for resnet18 only")
  expect(not m.init_npz or os.path.isfile(m.init_npz),
         f"config.model.init_npz={m.init_npz!r}: no such file (torchvision ResNet-18 weights as "
         ".npz, see nn/resnet.py load_torchvision_npz)")
  expect(0.0 <= l.alpha <= 1.0, f"config.labels.alpha={l.alpha} must be in [0, 1]")
  expect(not l.affectnet_stats or os.path.exists(l.affectnet_stats),
         f"config.labels.affectnet_stats={l.affectnet_stats!r}: no such file or directory (an "
         "AffectNet manual_dir, or a .npz with priors, means, covs; '' for the published statistics)")
  expect(m.va_head or not config.loss.l2_weight,
         f"config.loss.l2_weight={config.loss.l2_weight}: needs config.model.va_head=True")
  for name in ("ce_weight", "cos_weight", "l2_weight"):
    expect(config.loss[name] >= 0, f"config.loss.{name}={config.loss[name]} must be >= 0")
  expect(0.0 <= t.label_noise < 1.0, f"config.train.label_noise={t.label_noise} must be in [0, 1)")
  for name in ("flip_prob",):
    expect(0.0 <= a[name] <= 1.0, f"config.aug.{name}={a[name]} must be in [0, 1]")
  for name in ("brightness", "contrast", "saturation", "translate", "scale"):
    expect(0.0 <= a[name] < 1.0, f"config.aug.{name}={a[name]} must be in [0, 1)")
  expect(0.0 <= a.degrees <= 180.0, f"config.aug.degrees={a.degrees} must be in [0, 180]")
  expect(0.0 <= s.start <= 1.0, f"config.swa.start={s.start} must be in [0, 1] (a fraction of train.num_steps)")
  expect(isinstance(s.every, int) and s.every >= 0,
         f"config.swa.every={s.every!r} must be an integer >= 0 (0: once per epoch)")
  expect(config.optim.decay_every_epochs >= 0,
         f"config.optim.decay_every_epochs={config.optim.decay_every_epochs} must be >= 0")
  expect(config.eval.batch_size > 0, f"config.eval.batch_size={config.eval.batch_size} must be > 0")
  expect(config.eval.bn_batches > 0, f"config.eval.bn_batches={config.eval.bn_batches} must be > 0")
  try:
    resolve(config.loss.fn, eq9_loss)
  except (ImportError, ValueError) as e:
    raise ConfigError(f"config.loss.fn={config.loss.fn!r}: {e}") from None


# ---------------------------------------------------------------- augmentation

def _bilinear(image, ys, xs, fill):
  """image [H, W, C] sampled at float pixel coordinates ys, xs [H, W]; outside -> fill."""
  h, w = image.shape[:2]
  y0, x0 = jnp.floor(ys), jnp.floor(xs)
  wy, wx = (ys - y0)[..., None], (xs - x0)[..., None]
  out = 0.0
  for dy, fy in ((0, 1.0 - wy), (1, wy)):
    for dx, fx in ((0, 1.0 - wx), (1, wx)):
      yi, xi = (y0 + dy).astype(jnp.int32), (x0 + dx).astype(jnp.int32)
      inside = ((yi >= 0) & (yi < h) & (xi >= 0) & (xi < w))[..., None]
      v = image[jnp.clip(yi, 0, h - 1), jnp.clip(xi, 0, w - 1)]
      out = out + fy * fx * jnp.where(inside, v, fill)
  return out


@functools.partial(jax.jit, static_argnames=("flip_prob", "brightness", "contrast", "saturation",
                                             "degrees", "translate", "scale", "fill"))
def augment(key, images, *, flip_prob: float = 0.0, brightness: float = 0.0,
            contrast: float = 0.0, saturation: float = 0.0, degrees: float = 0.0,
            translate: float = 0.0, scale: float = 0.0, fill: float = -1.0):
  """The paper's augmentation (Sec. 4.2) as a pure function of (key, images [N, H, W, C] in [-1, 1]).

  Colour jitter as torchvision's ColorJitter (brightness, contrast, saturation factors uniform in
  [1 - s, 1 + s], in that order), a horizontal flip with probability flip_prob, and a random
  affine map about the centre (rotation uniform in +-degrees, shift uniform in +-translate x size,
  zoom uniform in [1 - scale, 1 + scale]), bilinear, `fill` outside (black). Strengths are static
  Python floats; a zero strength skips its operation, so all zeros return the images unchanged.
  """
  images = jnp.asarray(images)
  n, h, w, c = images.shape
  k_b, k_c, k_s, k_f, k_rot, k_t, k_z = jax.random.split(key, 7)
  x = images
  factor = lambda k, s: jax.random.uniform(k, (n, 1, 1, 1), x.dtype, 1.0 - s, 1.0 + s)
  if brightness or contrast or saturation:
    x = (x + 1.0) * 0.5
    gray = lambda v: (jnp.sum(v * jnp.asarray([0.299, 0.587, 0.114], v.dtype), -1, keepdims=True)
                      if c == 3 else jnp.mean(v, -1, keepdims=True))
    if brightness:
      x = jnp.clip(x * factor(k_b, brightness), 0.0, 1.0)
    if contrast:
      mean = jnp.mean(gray(x), axis=(1, 2, 3), keepdims=True)
      x = jnp.clip((x - mean) * factor(k_c, contrast) + mean, 0.0, 1.0)
    if saturation:
      g = gray(x)
      x = jnp.clip((x - g) * factor(k_s, saturation) + g, 0.0, 1.0)
    x = x * 2.0 - 1.0
  if flip_prob:
    flip = jax.random.uniform(k_f, (n, 1, 1, 1)) < flip_prob
    x = jnp.where(flip, x[:, :, ::-1], x)
  if degrees or translate or scale:
    angle = jnp.deg2rad(jax.random.uniform(k_rot, (n,), minval=-degrees, maxval=degrees))
    shift = jax.random.uniform(k_t, (n, 2), minval=-translate, maxval=translate) * jnp.asarray([h, w])
    zoom = jax.random.uniform(k_z, (n,), minval=1.0 - scale, maxval=1.0 + scale)
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    yy, xx = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32), jnp.arange(w, dtype=jnp.float32),
                          indexing="ij")

    def one(img, a, t, z):  # inverse map: output pixel -> source pixel
      py, px = yy - cy - t[0], xx - cx - t[1]
      cos, sin = jnp.cos(a), jnp.sin(a)
      sy = (cos * py - sin * px) / z + cy
      sx = (sin * py + cos * px) / z + cx
      return _bilinear(img, sy, sx, fill).astype(img.dtype)

    x = jax.vmap(one)(x, angle, shift, zoom)
  return x


def augment_fn(config):
  a = config.aug
  return functools.partial(augment, flip_prob=a.flip_prob, brightness=a.brightness,
                           contrast=a.contrast, saturation=a.saturation, degrees=a.degrees,
                           translate=a.translate, scale=a.scale)


# ---------------------------------------------------------------- labels (host, training split)

def _read(split, key):
  if isinstance(split, ArraySource):
    return np.asarray(split.arrays[key])
  if isinstance(split, WithFields) and key in split.fields:  # without reading the images
    return np.asarray(split.fields[key])
  return source_lib.read_field(split, key)


def _read_fields(split, keys, batch_size: int = 1024) -> dict:
  """Several fields of every example in one pass (a TFDS split decodes each image once)."""
  out = {k: _read(split, k) for k in keys
         if isinstance(split, ArraySource) or (isinstance(split, WithFields) and k in split.fields)}
  rest, n = [k for k in keys if k not in out], len(split)
  if rest:
    parts = [split.gather(np.arange(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    out.update({k: np.concatenate([p[k] for p in parts]) if parts else np.zeros((0,)) for k in rest})
  return out


def affectnet_gmm(config):
  """(priors, means, covs, source): AffectNet's training-set pi_k, mu_k, Sigma_k (Eq. 1), which
  Sec. 4.1 borrows for Aff-Wild. From the user's AffectNet when config.labels.affectnet_stats
  names it (its manual_dir: the builder's statistics; or a .npz), else the published ones
  (affect/affectnet_stats.py: REFERENCE.md's means and stds, diagonal covariances, priors from
  the training-set class counts)."""
  from affectjax.affect import affectnet_stats as an
  c, path = config.data.num_classes, config.labels.affectnet_stats
  if path:
    return (*an.load_gmm(path, c, config.data), path)
  return (*an.published_gmm(c), "published")


def clean_label_index(metadata) -> Optional[int]:
  names = tuple(metadata.get("factor_names", ()))
  return names.index("clean_label") if "clean_label" in names else None


def prepare(config, data: Splits) -> tuple[Splits, dict]:
  """The training split with noisy labels and VA labels, and the statistics of Eqs. 1 and 5.

  Returns (splits, info): train gets fields label (noisy), label_given (before the injected
  noise) and p_va [N, C] (NaN rows where VA is unknown); info holds priors, means, covs,
  class_weights, steps_per_epoch and the number of flipped labels.
  A training split without class labels (Aff-Wild, VA only; Sec. 4.1, 5.1) borrows AffectNet's
  pi_k, mu_k, Sigma_k (affectnet_gmm): every VA annotation gets p(y | x)_GMM (Eq. 2) and the label
  its argmax, in the training split and, where it has no labels, the test split; the borrowed
  parameters also give p_va (config.labels.va_only_stats='refit': refit on the derived labels).
  """
  c, l = config.data.num_classes, config.labels
  fields = _read_fields(data.train, ("label", "va"))
  labels, va = fields["label"].astype(np.int32), fields["va"].astype(np.float32)
  labels = np.where(labels < c, labels, -1)  # e.g. AffectNet's 'none' etc. never reach here
  info = {"va_only": False, "statistics": "training split"}
  test, borrowed = data.test, None
  if not np.any(labels >= 0):  # a VA-only dataset (Aff-Wild, Sec. 4.1): labels from AffectNet's GMM
    if not np.any(np.all(np.isfinite(va), -1)):
      raise ValueError(f"the training split of {config.data.name!r} has neither labels nor VA")
    *borrowed, source = affectnet_gmm(config)
    labels = np.asarray(ml.va_only_labels(va, *borrowed)[0])  # Sec. 5.1: argmax p(y | x)_GMM
    # The test split's labels the same way (its own where it has them), so F1, accuracy and ECE
    # are defined; noise is injected into the training labels only.
    t = _read_fields(data.test, ("label", "va"))
    test_given = t["label"].astype(np.int32)
    test_derived = np.asarray(ml.va_only_labels(t["va"].astype(np.float32), *borrowed)[0])
    test = WithFields(data.test, {"label": np.where((test_given >= 0) & (test_given < c), test_given,
                                                   test_derived).astype(np.int32)})
    info.update(va_only=True, statistics=f"AffectNet ({source})")
  given = labels.copy()
  key = jax.random.fold_in(jax.random.key(config.seed), 0x401)  # the label-noise key
  noisy, picked = ml.flip_labels(key, labels, float(config.train.label_noise), c,
                                 original=config.train.noise_mode == "original", return_mask=True)
  noisy = np.asarray(noisy)
  stats_labels = noisy if l.stats_from == "noisy" else given
  if borrowed is not None and l.va_only_stats == "affectnet":
    priors, means, covs = borrowed  # Sec. 4.1: AffectNet's parameters, not refit on this dataset
  else:  # Eq. 1 on this training split (a VA-only one under va_only_stats='refit')
    priors, means, covs = ml.class_statistics(stats_labels, va, c, within_std=l.within_std)
    if borrowed is not None:
      info["statistics"] = "refit on the AffectNet-derived labels"
  if l.kind == "gmm":
    p_va = np.asarray(ml.gmm_labels(va, priors, means, covs))  # Eq. 2
  elif l.kind == "euclid":
    p_va = np.asarray(ml.euclid_labels(va, means, squared=l.euclid_distance == "squared"))  # Eq. 3
  else:
    p_va = np.full((len(va), c), np.nan, np.float32)  # one-hot: no VA side
  weights = (np.asarray(losses.class_weights(noisy, c)) if config.loss.class_weighting
             else np.ones(c, np.float32))  # Eq. 5
  info.update(priors=priors, means=means, covs=covs, class_weights=weights,
              num_flipped=int(np.sum(np.asarray(picked) & (noisy != given))),
              steps_per_epoch=max(1, math.ceil(len(labels) / config.train.batch_size)))
  train = WithFields(data.train, {"label": noisy, "label_given": given,
                                  "p_va": p_va.astype(np.float32)})
  return Splits(train, test, dict(data.metadata)), info


# ---------------------------------------------------------------- loss (Eq. 9)

def loss_fn(params, batch_stats, batch, key, *, model, config, class_weights, train: bool = True):
  """Eq. 9 averaged over the batch; batch has image, target [N, C] (fused, Eq. 4), va, label.
  Returns (loss, (metrics, new batch_stats))."""
  del key
  l = config.loss
  variables = _variables(params, batch_stats)
  if batch_stats is not None and train:
    (logits, va_pred, _), upd = model.apply(variables, batch["image"], train=True,
                                            mutable=["batch_stats"])
    new_stats = upd["batch_stats"]
  else:
    (logits, va_pred, _), new_stats = model.apply(variables, batch["image"], train=train), batch_stats
  va = batch["va"]
  if va_pred is None:  # no VA head (the evaluator): Eq. 8 has no prediction to score
    va_pred, va = jnp.zeros_like(va), jnp.full_like(va, jnp.nan)
  weights = class_weights if l.weighted_l2 else jnp.ones_like(class_weights)
  total, parts = losses.dual_domain_loss(logits, va_pred, batch["target"], va, class_weights,
                                         batch["label"], ce_weight=l.ce_weight,
                                         cos_weight=l.cos_weight, l2_weight=0.0)
  l2 = jnp.sum(losses.weighted_l2(va_pred, va, weights, batch["label"]))  # Eq. 8 (or plain L2)
  l2 = l2 / jnp.maximum(jnp.sum(jnp.all(jnp.isfinite(va), -1)), 1)
  total = total + l.l2_weight * l2  # Eq. 9
  acc = jnp.sum((jnp.argmax(logits, -1) == batch["label"]) & (batch["label"] >= 0)) / jnp.maximum(
      jnp.sum(batch["label"] >= 0), 1)
  return total, ({"loss": total, "ce": parts["ce"], "cos": parts["cos"], "l2": l2,
                  "train_acc": acc}, new_stats)


eq9_loss = loss_fn  # the default (make_method's loss_fn argument shadows the name)


def targets_of(config, label, p_va):
  """Eq. 4: alpha one-hot + (1 - alpha) p_VA (one-hot labels alone for labels.kind='onehot')."""
  c = config.data.num_classes
  if config.labels.kind == "onehot":
    return jax.nn.one_hot(label, c, dtype=jnp.float32)
  return ml.fuse(label, p_va, config.labels.alpha, num_classes=c)


# ---------------------------------------------------------------- the method

def make_method(config, data: Splits, *, loss_fn=None, splits: Optional[Splits] = None) -> Method:
  """Dual-domain fusion from its config and the loaded splits; `loss_fn` replaces Eq. 9 (same
  signature as `loss_fn` above; config.loss.fn names one from the command line). `splits`, when
  given, replaces the loaded data (a caller's own splits, e.g. GANmut's evaluator on its data)."""
  data, info = prepare(config, data if splits is None else splits)
  model = build_model(config)
  num_steps, spe = config.train.num_steps, info["steps_per_epoch"]
  o = config.optim
  decay_every = (max(1, int(round(o.decay_every_epochs * spe))) if o.decay_every_epochs
                 else o.get("decay_every", 1))
  player = optim.make_player(o, num_steps, decay_every=decay_every)  # Adam, x0.5 every 30 epochs
  weights = jnp.asarray(info["class_weights"], jnp.float32)
  compute_loss = functools.partial(loss_fn or resolve(config.loss.fn, eq9_loss), model=model,
                                   config=config, class_weights=weights)
  aug = augment_fn(config)
  swa_on = bool(config.swa.enabled)
  swa_start = int(round(config.swa.start * num_steps))
  swa_every = config.swa.every or spe
  pretrained = None
  if config.model.init_npz:
    template = jax.eval_shape(lambda k: model.init(k, jnp.zeros((1, config.data.image_size,
                                                                   config.data.image_size, 3)),
                                                   train=False), jax.random.key(0))
    zeros = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), template)
    pretrained, skipped = load_torchvision_npz(config.model.init_npz, zeros)
    info["init_skipped"] = skipped

  def init(key, batch):
    image = jnp.asarray(batch["data"]["image"])
    variables = model.init({"params": key}, image[:1], train=False)
    if pretrained is not None:  # backbone from the user's ImageNet weights; new heads stay random
      fresh = {"va_head"} | ({"fc"} if "fc.weight" in info["init_skipped"] else set())
      if "conv1.weight" in info["init_skipped"]:  # a small-input stem: its own conv1 and bn1
        fresh |= {"conv1", "bn1"}
      variables = {col: {k: (v if k in fresh else pretrained[col][k]) for k, v in tree.items()}
                   for col, tree in variables.items()}
    params = variables["params"]
    return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=player.init(params),
                      batch_stats=variables.get("batch_stats"),
                      swa=swa_lib.swa_init(params) if swa_on else None)

  def train_step(state, batch, key):
    b = dict(batch["data"])
    k_aug, k_loss = jax.random.split(key)
    b["image"] = aug(k_aug, b["image"])
    b["target"] = targets_of(config, b["label"], b["p_va"])  # Eq. 4
    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)
    (_, (metrics, stats)), grads = grad_fn(state.params, state.batch_stats, b, k_loss)
    params, opt_state = player.update(grads, state.opt_state, state.params, state.step)
    step = state.step + 1
    new = state.replace(step=step, params=params, opt_state=opt_state, batch_stats=stats)
    if swa_on:  # SWA (Sec. 4.2): running mean of the weights every swa_every steps from swa_start
      active = (step >= max(swa_start, 1)) & ((step - swa_start) % swa_every == 0)
      new = new.replace(swa=swa_lib.swa_update(state.swa, params, active))
    metrics["lr"] = player.lr(state.step)
    return new, metrics

  cache = {"predict": predict_fn(model)}  # one compile of inference; SWA BatchNorm per state

  def represent(state, batch):
    """Penultimate features (the 512-d pooled ResNet features, or the VGG dense layer)."""
    return model.apply(_variables(state.params, state.batch_stats), jnp.asarray(batch["image"]),
                       train=False)[2]

  return Method(init=init, train_step=train_step,
                streams={"data": Stream(data.train, config.train.batch_size,
                                        ("image", "label", "va", "p_va"))},
                evaluate=functools.partial(evaluate, model=model, config=config, info=info,
                                           cache=cache),
                report=functools.partial(report, model=model, config=config, info=info, cache=cache),
                represent=represent, data=data)


# ---------------------------------------------------------------- evaluation

def eval_variables(state, data, *, model, config, cache=None):
  """(variables, used_swa): the SWA weights with BatchNorm statistics recomputed over
  eval.bn_batches un-augmented training batches when SWA has averaged anything, else the last
  weights. `cache` (a dict) keeps the last result, so evaluate and report share one pass."""
  if state.swa is None or int(state.swa.count) == 0:
    return _variables(state.params, state.batch_stats), False
  key = (int(state.step), int(state.swa.count))
  if cache is not None and cache.get("swa_key") == key:
    return cache["swa_variables"], True
  params = state.swa.params
  stats = state.batch_stats
  if stats is not None:
    bs, n = config.eval.batch_size, len(data.train)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(n)
    batches = ({"image": jnp.asarray(data.train.gather(np.sort(order[i:i + bs]))["image"])}
               for i in range(0, min(n, bs * config.eval.bn_batches) - bs + 1, bs)) if n >= bs else iter(
                   [{"image": jnp.asarray(data.train.gather(np.arange(n))["image"])}])
    apply = lambda v, b: model.apply(v, b["image"], train=True, mutable=["batch_stats"])
    stats = swa_lib.recompute_batch_stats(apply, params, stats, batches)
  if cache is not None:
    cache.update(swa_key=key, swa_variables=_variables(params, stats))
  return _variables(params, stats), True


def predict_fn(model):
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
  res["label"] = _read(split, "label")[:n].astype(np.int32)
  res["va"] = _read(split, "va")[:n].astype(np.float32)
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
  clean = np.rint(_read(data.test, "factors")[:, idx]).astype(np.int32)
  return np.where(clean < config.data.num_classes, clean, -1)


def evaluate(state, data, workdir, *, model, config, info, cache=None):
  """Test-split metrics of the evaluated model (SWA when active) and, with SWA, of the last weights."""
  del workdir
  cache = {} if cache is None else cache
  variables, used = eval_variables(state, data, model=model, config=config, cache=cache)
  clean = _clean_test_labels(data, config)
  out = metrics_of(predictions(variables, data.test, model=model, config=config,
                               limit=config.eval.max_test or None, predict=cache.get("predict")),
                   config,
                   None if clean is None else clean[:config.eval.max_test or None])
  out["swa_models"] = float(int(state.swa.count)) if state.swa is not None else 0.0
  if used:
    last = metrics_of(predictions(_variables(state.params, state.batch_stats), data.test,
                                  model=model, config=config, limit=config.eval.max_test or None,
                                  predict=cache.get("predict")),
                      config)
    out.update({f"last_{k}": v for k, v in last.items() if k in ("accuracy", "f1", "ece")})
  out["labels_flipped"] = float(info["num_flipped"])
  return out


def report(state, data, workdir, *, model, config, info, cache=None):
  """Writes dual_domain_metrics.json, predictions.npz (test probabilities, VA predictions and
  targets: Figure 5), class_statistics.npz (Figure 3), reliability.png and gradcam.png (Figure 6)."""
  cache = {} if cache is None else cache
  variables, used = eval_variables(state, data, model=model, config=config, cache=cache)
  pred = predictions(variables, data.test, model=model, config=config,
                     limit=config.eval.max_test or None, predict=cache.get("predict"))
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
    if config.model.backbone == "resnet18":
      n = min(config.eval.gradcam_images, len(pred["label"]))
      images = data.test.gather(np.arange(n))["image"]
      cams = gradcam(model, variables, images, pred["probs"][:n].argmax(-1))
      gradcam_figure(os.path.join(workdir, "gradcam.png"), images, cams, pred["label"][:n],
                     pred["probs"][:n].argmax(-1))
  return out


# ---------------------------------------------------------------- Grad-CAM (Figure 6)

def gradcam(model, variables, images, classes):
  """Grad-CAM (Selvaraju et al.) on ResNet-18's last convolutional block, [N, h, w] in [0, 1].

  The head is global average pooling + a linear layer, so d logit_c / d A_k averaged over the map
  is w_{k,c} / (h w) exactly, and Grad-CAM = ReLU(sum_k w_{k,c} A_k) / (h w), normalised per image.
  """
  last = f"layer{len(model.stage_sizes)}_{model.stage_sizes[-1] - 1}"
  _, inter = model.apply(variables, jnp.asarray(images), train=False,
                         capture_intermediates=lambda mdl, name: mdl.name == last and name == "__call__",
                         mutable=["intermediates"])
  fmap = np.asarray(inter["intermediates"][last]["__call__"][0], np.float32)  # [N, h, w, K]
  w = np.asarray(variables["params"]["fc"]["kernel"], np.float32)[:, np.asarray(classes)]  # [K, N]
  cam = np.maximum(np.einsum("nhwk,kn->nhw", fmap, w), 0.0)
  return cam / np.maximum(cam.max(axis=(1, 2), keepdims=True), 1e-12)


def gradcam_figure(path, images, cams, labels, preds):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from affectjax.data.example import EMOTIONS
  n = len(images)
  fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
  for i in range(n):
    img = np.clip((np.asarray(images[i]) + 1) / 2, 0, 1)
    h, w = img.shape[:2]
    cam = np.kron(cams[i], np.ones((h // cams[i].shape[0], w // cams[i].shape[1])))
    axes[0, i].imshow(img)
    axes[1, i].imshow(img)
    axes[1, i].imshow(cam, cmap="jet", alpha=0.45, extent=(0, w, h, 0))
    axes[0, i].set_title(f"{EMOTIONS[labels[i]][:4] if labels[i] >= 0 else '?'}->"
                         f"{EMOTIONS[preds[i]][:4]}", fontsize=7)
    for a in axes[:, i]:
      a.axis("off")
  fig.suptitle("Grad-CAM (true -> predicted)", fontsize=9)
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)
