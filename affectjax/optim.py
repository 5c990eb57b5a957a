"""Optimisers and learning-rate schedules from config.optim (optax)."""
import optax


def schedule(optim, num_steps: int) -> optax.Schedule:
  lr = optim.lr
  if optim.schedule == "constant":
    main = optax.constant_schedule(lr)
  elif optim.schedule == "cosine":
    main = optax.cosine_decay_schedule(lr, max(1, num_steps - optim.warmup_steps))
  elif optim.schedule == "linear_decay":  # StarGAN-style: constant, then linear to zero
    start = optim.get("decay_start", num_steps // 2)
    main = optax.join_schedules(
        [optax.constant_schedule(lr), optax.linear_schedule(lr, 0.0, max(1, num_steps - start))], [start])
  else:
    raise ValueError(f"unknown schedule {optim.schedule!r}")
  if optim.warmup_steps:
    return optax.join_schedules([optax.linear_schedule(0.0, lr, optim.warmup_steps), main],
                                [optim.warmup_steps])
  return main


def make_optimizer(optim, num_steps: int) -> optax.GradientTransformation:
  """Adam/AdamW (weight_decay > 0) with optional global-norm clipping."""
  lr = schedule(optim, num_steps)
  if optim.name == "adam":
    tx = (optax.adamw(lr, optim.b1, optim.b2, weight_decay=optim.weight_decay)
          if optim.weight_decay else optax.adam(lr, optim.b1, optim.b2))
  elif optim.name == "sgd":
    tx = optax.sgd(lr, momentum=optim.b1 or None)
  else:
    raise ValueError(f"config.optim.name={optim.name!r} is unknown; expected adam or sgd")
  if optim.grad_clip:
    tx = optax.chain(optax.clip_by_global_norm(optim.grad_clip), tx)
  return tx
