"""Dual-domain fusion's objective (dual_domain_fusion.md Eqs. 4-9) in affectjax.objective's contract."""
from __future__ import annotations

import dataclasses
from typing import Any

import flax
import jax
import jax.numpy as jnp

from affectjax import losses
from affectjax.affect import mixed_labels as ml
from affectjax.objective import Out

PLAYER = "net"  # the one player: the backbone, the classifier and the VA head


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: it holds an array (identity is equality)
class Context:
  """What the objective reads besides its arguments: the network, the config and W_k (Eq. 5,
  computed once from the training split's noisy labels)."""
  model: Any
  config: Any
  class_weights: jax.Array  # [C] float32


@flax.struct.dataclass
class TrainState:
  """objective.State's four fields and SWA's running mean (the method's post-step)."""
  step: jax.Array
  params: Any  # {'net': the network's parameters}
  opt_state: Any  # {'net': its optimiser state}
  aux: Any  # the BatchNorm statistics; None for the VGG backbone (no BatchNorm)
  swa: Any  # swa.SWAState (running mean of params['net']) or None when config.swa.enabled is False


def net_variables(params, batch_stats) -> dict:
  """Flax variables of the network (BatchNorm statistics only for ResNet-18; the VGG has none)."""
  return {"params": params} if batch_stats is None else {"params": params, "batch_stats": batch_stats}


def variables(state) -> dict:
  """The flax variables {'params'[, 'batch_stats']} of a state's last weights (not SWA's:
  evaluate.eval_variables gives the evaluated model)."""
  return net_variables(state.params[PLAYER], state.aux)


def targets_of(config, label, p_va):
  """Eq. 4: alpha one-hot + (1 - alpha) p_VA (one-hot labels alone for labels.kind='onehot')."""
  c = config.data.num_classes
  if config.labels.kind == "onehot":
    return jax.nn.one_hot(label, c, dtype=jnp.float32)
  return ml.fuse(label, p_va, config.labels.alpha, num_classes=c)


def eq9(params, aux, batch, key, step, ctx: Context) -> Out:
  """Eq. 9 averaged over the batch: weighted L2 on VA (Eq. 8) + weighted soft CE (Eq. 6) +
  weighted cosine loss (Eq. 7), in training mode.

  params {'net': ...}; aux: the BatchNorm statistics (None for the VGG backbone); batch['data']
  holds the augmented image, target [N, C] (the fused labels, Eq. 4), va (NaN where unknown) and
  label (the noisy class, -1 where unknown). The key is unused (no stochastic layers)."""
  del key, step
  config, model, class_weights = ctx.config, ctx.model, ctx.class_weights
  l, b = config.loss, batch["data"]
  v = net_variables(params[PLAYER], aux)
  if aux is not None:
    (logits, va_pred, _), upd = model.apply(v, b["image"], train=True, mutable=["batch_stats"])
    new_stats = upd["batch_stats"]
  else:
    (logits, va_pred, _), new_stats = model.apply(v, b["image"], train=True), None
  va = b["va"]
  if va_pred is None:  # no VA head (the evaluator): Eq. 8 has no prediction to score
    va_pred, va = jnp.zeros_like(va), jnp.full_like(va, jnp.nan)
  weights = class_weights if l.weighted_l2 else jnp.ones_like(class_weights)
  total, parts = losses.dual_domain_loss(logits, va_pred, b["target"], va, class_weights,
                                         b["label"], ce_weight=l.ce_weight,
                                         cos_weight=l.cos_weight, l2_weight=0.0)
  l2 = jnp.sum(losses.weighted_l2(va_pred, va, weights, b["label"]))  # Eq. 8 (or plain L2)
  l2 = l2 / jnp.maximum(jnp.sum(jnp.all(jnp.isfinite(va), -1)), 1)
  total = total + l.l2_weight * l2  # Eq. 9
  acc = jnp.sum((jnp.argmax(logits, -1) == b["label"]) & (b["label"] >= 0)) / jnp.maximum(
      jnp.sum(b["label"] >= 0), 1)
  metrics = {"loss": total, "ce": parts["ce"], "cos": parts["cos"], "l2": l2, "train_acc": acc}
  return Out({PLAYER: total}, metrics, new_stats)
