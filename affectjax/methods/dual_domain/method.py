"""Dual-domain affect fusion (../shared/papers/dual_domain_fusion.md) and the image classifier
that GANmut's evaluator is (methods/ganmut/classifier.py: this method with one-hot labels, a VGG
backbone and no VA head).

Built from the training split (make_method, labels.prepare): labels with `train.label_noise` of
them flipped to another class (Sec. 5.1; the clean labels are kept for evaluation), class
statistics pi_k, mu_k, Sigma_k (Eq. 1) and class weights W_k (Eq. 5) of those labels, and the VA
labels p(y | x)_VA (GMM Eq. 2 | Euclid Eq. 3) of every training row. A VA-only dataset (Aff-Wild)
borrows AffectNet's pi_k, mu_k, Sigma_k instead and takes its class labels (train and test) from
their GMM (Sec. 4.1). Each step augments the images (data/augment.py: colour jitter, horizontal
flip, random affine, a pure function of a key), fuses the labels (Eq. 4), and minimises Eq. 9 =
weighted L2 on VA (Eq. 8) + weighted soft CE (Eq. 6) + weighted cosine loss (Eq. 7)
(objective.eq9) with Adam and a step decay x0.5 every 30 epochs; SWA averages the weights over
the last epochs (the post-step), and evaluation uses the SWA weights with BatchNorm statistics
recomputed for them (evaluate.py).

Switches that mimic the public code (../shared/REFERENCE.md): labels.euclid_distance='plain',
labels.within_std (the code and the paper's Sec. 4.2 both use the 1-std box), train.noise_mode=
'original' (drawn with replacement, may keep the class), swa.enabled=False and optim.schedule=
'constant' (the code has neither), optim.weight_decay=1e-5, eval.ccc_batch=256 (CCC averaged
over batches).
"""
from __future__ import annotations

import functools
import os
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from affectjax import objective as objective_lib
from affectjax import optim, swa as swa_lib
from affectjax.config import check_choices, expect
from affectjax.data import augment as augment_lib
from affectjax.data.sources import Splits
from affectjax.methods.base import Method, Stream
from affectjax.methods.dual_domain import evaluate as dd_eval
from affectjax.methods.dual_domain.labels import prepare
from affectjax.methods.dual_domain.objective import (PLAYER, Context, TrainState, eq9, targets_of,
                                                     variables)
from affectjax.nn.resnet import ResNet18, load_torchvision_npz
from affectjax.nn.vgg import VGGNet

NEEDS = ("has_images",)  # labels or VA: labels.prepare says which it found
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


def build_model(config):
  """ResNet-18 (Sec. 4.2) or the VGG evaluator family: x -> (logits, va or None, features)."""
  m = config.model
  if m.backbone == "vgg":
    return VGGNet(config.data.num_classes, tuple(m.widths), m.va_head, m.feature_dim)
  small = m.stem == "small" or (m.stem == "auto" and config.data.image_size < 112)
  return ResNet18(config.data.num_classes, widths=tuple(m.widths), small_input=small,
                  va_head=m.va_head, dtype=jnp.dtype(m.dtype))


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
  objective_lib.check_config(config, ("main",))


def make_method(config, data: Splits, *, objective=None, objectives=None,
                splits: Optional[Splits] = None) -> Method:
  """Dual-domain fusion from its config and the loaded splits; `objective` replaces Eq. 9
  (objective.eq9's signature, affectjax.objective's contract; config.loss.fn names one from the
  command line). `splits`, when given, replaces the loaded data (a caller's own splits, e.g.
  GANmut's evaluator on its data)."""
  data, info = prepare(config, data if splits is None else splits)
  model = build_model(config)
  num_steps, spe = config.train.num_steps, info["steps_per_epoch"]
  o = config.optim
  decay_every = (max(1, int(round(o.decay_every_epochs * spe))) if o.decay_every_epochs
                 else o.get("decay_every", 1))
  player = optim.make_player(o, num_steps, decay_every=decay_every)  # Adam, x0.5 every 30 epochs
  players = {PLAYER: player}
  phases = objective_lib.inject([objective_lib.Phase("main", eq9, (PLAYER,))], config,
                                objective, objectives)
  ctx = Context(model, config, jnp.asarray(info["class_weights"], jnp.float32))
  step = objective_lib.make_step(phases, players, ctx)
  aug = augment_lib.from_config(config.aug)
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
    v = model.init({"params": key}, image[:1], train=False)
    if pretrained is not None:  # backbone from the user's ImageNet weights; new heads stay random
      fresh = {"va_head"} | ({"fc"} if "fc.weight" in info["init_skipped"] else set())
      if "conv1.weight" in info["init_skipped"]:  # a small-input stem: its own conv1 and bn1
        fresh |= {"conv1", "bn1"}
      v = {col: {k: (x if k in fresh else pretrained[col][k]) for k, x in tree.items()}
           for col, tree in v.items()}
    params = {PLAYER: v["params"]}
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=objective_lib.init_opt_state(players, params),
                      aux=v.get("batch_stats"),
                      swa=swa_lib.swa_init(params[PLAYER]) if swa_on else None)

  def train_step(state, batch, key):
    # the batch the objective sees: augmented images and fused targets; k_aug, k_loss as before
    k_aug, k_loss = jax.random.split(key)
    b = dict(batch["data"])
    b["image"] = aug(k_aug, b["image"])
    b["target"] = targets_of(config, b["label"], b["p_va"])  # Eq. 4
    new, metrics = step(state, {**batch, "data": b}, k_loss)
    if swa_on:  # SWA (Sec. 4.2): running mean of the weights every swa_every steps from swa_start
      active = (new.step >= max(swa_start, 1)) & ((new.step - swa_start) % swa_every == 0)
      new = new.replace(swa=swa_lib.swa_update(state.swa, new.params[PLAYER], active))
    metrics["lr"] = player.lr(state.step)
    return new, metrics

  cache = {"predict": dd_eval.predict_fn(model)}  # one compile of inference; SWA BatchNorm per state

  def represent(state, batch):
    """{'features': the penultimate features} (the 512-d pooled ResNet features, or the VGG
    dense layer), of the last weights."""
    return {"features": model.apply(variables(state), jnp.asarray(batch["image"]), train=False)[2]}

  return Method(init=init, train_step=train_step,
                streams={"data": Stream(data.train, config.train.batch_size,
                                        ("image", "label", "va", "p_va"))},
                evaluate=functools.partial(dd_eval.evaluate, model=model, config=config, info=info,
                                           cache=cache),
                report=functools.partial(dd_eval.report, model=model, config=config, info=info,
                                         cache=cache),
                represent=represent, data=data, phases=phases)
