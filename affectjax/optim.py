"""Optimisers for every method: one optax player per set of parameters, built from config.optim.

A player is one optax transformation (clip -> Adam/SGD moments -> weight decay -> per-subtree
learning-rate scales) plus a learning-rate schedule in units of training steps. Methods with
several players (GAN G/D; Rb-VAE's encoder, generator and two discriminators) build one each and
keep every player's optimiser state in their state pytree. The rate is applied with the training
step passed in, so a player updated every k-th step (GANmut's G, n_critic = k) follows the same
schedule in steps as one updated every step.

Every config.optim field is honoured here: name, lr, b1, b2, eps, weight_decay, schedule,
warmup_steps, decay_start (a fraction of train.num_steps), final_lr_fraction, grad_clip, and for
schedule 'step_decay' decay_every (steps) and decay_factor.
"""
from __future__ import annotations

import dataclasses
import types
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import optax


def schedule(optim, num_steps: int) -> optax.Schedule:
  """The learning rate at a training step: warm-up, then constant | cosine | linear_decay."""
  lr, warm = optim.lr, optim.warmup_steps
  if optim.schedule == "constant":
    main = optax.constant_schedule(lr)
  elif optim.schedule == "cosine":
    main = optax.cosine_decay_schedule(lr, max(1, num_steps - warm))
  elif optim.schedule == "linear_decay":  # StarGAN: constant, then linear to final_lr_fraction * lr
    start = int(optim.decay_start * num_steps)
    n = max(1, num_steps - start)
    final = 1.0 - optim.final_lr_fraction

    def main(step):  # the GANmut/StarGAN factor 1 - (1 - f) * clip((step - start) / n, 0, 1)
      frac = jnp.clip((step - start) / n, 0.0, 1.0)
      return lr * (1.0 - final * frac)
  elif optim.schedule == "step_decay":  # x decay_factor every decay_every steps (dual-domain fusion)
    main = optax.exponential_decay(lr, max(1, int(optim.decay_every)), optim.decay_factor,
                                   staircase=True)
  else:
    raise ValueError(f"unknown schedule {optim.schedule!r}")
  if warm:
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), main], [warm])
  return main


@dataclasses.dataclass(frozen=True)
class Player:
  """One optimiser: `tx` (optax, without the learning rate) and `lr(step)`."""
  tx: optax.GradientTransformation
  lr: optax.Schedule

  def init(self, params):
    return self.tx.init(params)

  def update(self, grads, opt_state, params, step):
    """(new params, new optimiser state) after one step at the rate of training step `step`."""
    updates, opt_state = self.tx.update(grads, opt_state, params)
    rate = self.lr(step)
    return jax.tree.map(lambda p, u: p - rate * u, params, updates), opt_state


def _label_tree(params, scales: Mapping[str, float]):
  return {k: (k if k in scales else "_default") for k in params}


def make_player(optim, num_steps: int, lr_scales: Optional[Mapping[str, float]] = None,
                **overrides: Any) -> Player:
  """A player from config.optim; `overrides` replace optim fields (e.g. a discriminator's lr).

  lr_scales: {top-level key of the params dict: multiplier of the learning rate} (optax
  multi_transform), e.g. GANmut's conditional space {'space': 25.0}.
  """
  o = types.SimpleNamespace(**{**dict(optim.items()), **overrides})
  parts = []
  if o.grad_clip:
    parts.append(optax.clip_by_global_norm(o.grad_clip))
  if o.name == "adam":
    parts.append(optax.scale_by_adam(o.b1, o.b2, o.eps))
    if o.weight_decay:  # AdamW: decoupled decay, scaled by the learning rate below
      parts.append(optax.add_decayed_weights(o.weight_decay))
  elif o.name == "sgd":
    if o.weight_decay:
      parts.append(optax.add_decayed_weights(o.weight_decay))
    if o.b1:
      parts.append(optax.trace(decay=o.b1))
  else:
    raise ValueError(f"config.optim.name={o.name!r}: expected one of 'adam', 'sgd'")
  if lr_scales:
    scales = dict(lr_scales)
    transforms = {k: optax.scale(v) for k, v in scales.items()}
    transforms["_default"] = optax.identity()
    parts.append(optax.multi_transform(transforms, lambda p: _label_tree(p, scales)))
  return Player(optax.chain(*parts) if parts else optax.identity(), schedule(o, num_steps))  # plain SGD: no transform

