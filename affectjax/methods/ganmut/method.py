"""GANmut (ganmut.md): linear (polar) GANmut, Gaussian GGANmut and the StarGAN baseline.

config.model.space picks the variant: 'linear' (Sec. 4.1, Eqs. 1-8), 'gaussian' (Sec. 4.2, Eqs.
9-10) or 'stargan' (one-hot conditions). Training is two affectjax.objective phases in one jitted
step: 'd' (objective.d_objective, Eq. 1) every iteration, then 'g' (objective.g_objective, Eq. 2)
every optim.n_critic iterations against the updated D. The conditional space is one
affectjax.affect.conditional.Space (pure functions per kind), chosen once from the config by
`space_of`. Evaluation (FED, smoothness, ERE, accuracy, figures) is in evaluate.py, which receives
this module's `generate` and D probabilities; its evaluator classifier (classifier.py) is a
prerequisite run the loop trains before this one.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from affectjax import objective as objective_lib
from affectjax import optim
from affectjax.affect import conditional as cs
from affectjax.config import check_choices, expect
from affectjax.methods.base import Method, data_stream
from affectjax.methods.ganmut import classifier, evaluate as ganmut_eval
from affectjax.methods.ganmut.objective import D, G, Context, d_objective, g_objective, prep
from affectjax.nn import stargan

SPACES = cs.KINDS
NEEDS = ("has_images", "has_labels")  # methods.validate checks it against sources.dataset_info
CHOICES = {
    "model.space": SPACES,
    "model.direction_param": cs.DIRECTION_PARAMS,
    "model.dtype": ("float32", "bfloat16"),
    "model.upsample": ("transpose", "subpixel"),
    "loss.random_rho": cs.RANDOM_RHO,
    "loss.cycle": ("eq8", "approximate"),
    "loss.cycle_codes": cs.CYCLE_CODES,
    "loss.neutral_code": cs.NEUTRAL_CODES,
    "loss.info_reduction": cs.INFO_REDUCTIONS,
    "optim.g_step": ("auto", "cond", "masked"),
}


# ---------------------------------------------------------------- networks and codes

def space_of(config) -> cs.Space:
  """The run's conditional space (config.model.space), chosen once: every kind-specific step below
  goes through it."""
  m, l, e = config.model, config.loss, config.get("eval", {})
  return cs.space_of(
      m.space, config.data.num_classes, tau=l.tau, num_random=l.num_random,
      code_noise=l.code_noise, random_rho=l.random_rho, cycle=l.cycle,
      direction_param=m.get("direction_param", "angle"), div_on_all_rows=l.div_on_all_rows,
      neutral_code=l.get("neutral_code", "disc"), info_reduction=l.get("info_reduction", "sum"),
      cycle_codes=l.get("cycle_codes", "exact"),
      ere_radius_step=e.get("ere_radius_step", 0.05), ere_angle_steps=e.get("ere_angle_steps", 21),
      ere_square_step=e.get("ere_square_step", 0.1))


def code_dim(config):
  return space_of(config).code_dim


def networks(config):
  m = config.model
  dtype = jnp.bfloat16 if m.dtype == "bfloat16" else jnp.float32
  gen = stargan.Generator(m.g_conv_dim, m.g_repeat_num, dtype, m.get("upsample", "transpose"))
  disc = stargan.Discriminator(config.data.image_size, m.d_conv_dim, m.d_repeat_num,
                               config.data.num_classes, space_of(config).coord_dim, dtype)
  return gen, disc


def init_space(key, config):
  """Learned conditional-space parameters, randomly initialised (Sec. 5, implementation details)."""
  return space_of(config).init(key)


def g_lr_scales(config):
  """The conditional space's lr multiplier (optim.space_lr_scale; the paper: 1, one Adam lr).

  Under Adam a parameter moves by at most about lr per step, so at the paper's lr (1e-4) a
  direction theta_c turns by at most ~0.1 rad per 1,000 steps: enough over the paper's 1M
  iterations, frozen near its random start in a 1,500-step CPU run."""
  return {"space": config.optim.space_lr_scale}


def validate(config):
  """GANmut's own fields; one ConfigError line each (before any data is generated or read)."""
  check_choices(config, CHOICES)
  m, l, o = config.model, config.loss, config.optim
  expect(isinstance(o.n_critic, int) and o.n_critic >= 1,
         f"config.optim.n_critic={o.n_critic!r} must be a positive integer")
  expect(o.space_lr_scale > 0, f"config.optim.space_lr_scale={o.space_lr_scale} must be > 0")
  for name in ("g_conv_dim", "g_repeat_num", "d_conv_dim", "d_repeat_num"):
    expect(isinstance(m[name], int) and m[name] > 0, f"config.model.{name}={m[name]!r} must be a positive integer")
  expect(config.data.image_size % 2 ** m.d_repeat_num == 0,
         f"config.model.d_repeat_num={m.d_repeat_num}: data.image_size={config.data.image_size} "
         f"must be divisible by 2^{m.d_repeat_num}")
  for name in ("lambda_gp", "lambda_rec", "lambda_cls_real", "lambda_cls_fake", "lambda_info_d",
               "lambda_info_g", "lambda_rho", "lambda_div", "code_noise"):
    expect(l[name] >= 0, f"config.loss.{name}={l[name]} must be >= 0")
  expect(0.0 <= l.tau < 1.0, f"config.loss.tau={l.tau} must be in [0, 1)")
  expect(0 <= l.num_random <= config.train.batch_size,
         f"config.loss.num_random={l.num_random} must be in [0, train.batch_size]")
  sampled_cycle = l.get("cycle_codes", "exact") == "sampled"
  expect(not sampled_cycle or (m.space == "linear" and l.cycle == "approximate"),
         f"config.loss.cycle_codes={l.get('cycle_codes')!r} needs model.space='linear' and "
         f"loss.cycle='approximate' (only that cycle samples its code)")
  e = config.eval
  for name in ("fed_faces", "ere_batches"):
    expect(isinstance(e.get(name, 0), int) and e.get(name, 0) >= 0,
           f"config.eval.{name}={e.get(name, 0)!r} must be a non-negative integer (0: all)")
  objective_lib.check_config(config, PHASES)


def players(config) -> dict:
  """{'g': G's optimiser, 'd': D's}: Adam at the same schedule (in iterations); G's conditional
  space at optim.space_lr_scale times the rate."""
  n = config.train.num_steps
  return {G: optim.make_player(config.optim, n, lr_scales=g_lr_scales(config)),
          D: optim.make_player(config.optim, n)}


PHASES = ("d", "g")  # config.loss.fn names the D objective, config.loss.g_fn the G objective


def phases(config) -> list:
  """D every iteration (Eq. 1), then G every optim.n_critic-th (Eq. 2) against the updated D."""
  return [objective_lib.Phase("d", d_objective, (D,)),
          objective_lib.Phase("g", g_objective, (G,), every=int(config.optim.n_critic))]


def make_method(config, data, *, objective=None, objectives=None) -> Method:
  """GANmut from its config and splits. objectives={'d': fn, 'g': fn} replace Eq. 1 / Eq. 2
  (objective.d_objective / g_objective's signature, affectjax.objective's contract;
  config.loss.fn / config.loss.g_fn name them from the command line)."""
  gen, disc = networks(config)
  space = space_of(config)
  n_critic = int(config.optim.n_critic)
  bgr = bool(config.data.get("bgr", False))
  ps = players(config)
  trained = objective_lib.inject(phases(config), config, objective, objectives)
  step = objective_lib.make_step(trained, ps, Context(gen, disc, space, config),
                                 gating=config.optim.get("g_step", "auto"))

  def init(key, batch):
    x = prep(batch["data"]["image"][:1], config)
    k_g, k_d, k_s = jax.random.split(key, 3)
    g_net = gen.init(k_g, x, jnp.zeros((1, space.code_dim)))["params"]
    params = {G: {"net": g_net, "space": space.init(k_s)}, D: disc.init(k_d, x)["params"]}
    return objective_lib.State(step=jnp.zeros((), jnp.int32), params=params,
                               opt_state=objective_lib.init_opt_state(ps, params))

  def train_step(state, batch, key):
    data = batch["data"]
    new, m = step(state, {**batch, "data": {**data, "image": prep(data["image"], config)}}, key)
    due = (state.step + 1) % n_critic == 0  # the G phase ran (its metrics are zeros otherwise)
    metrics = {**m, "g_step": due.astype(jnp.float32), "lr": ps[D].lr(state.step),
               "loss": m["d_loss"] + m["g_loss"]}
    metrics.update(space.log(new.params[G]["space"]))  # e.g. the mean direction (linear)
    return new, metrics

  def generate(state, batch, key):
    """G(x, z) for RGB images batch['image'] [N, H, W, 3] (RGB out, whatever the training channel
    order). batch['code'] [N, k] gives the conditions; without it, random codes of the space as
    for FED (Sec. 5), drawn with `key` (from batch['label'] where the space needs labels)."""
    x = prep(batch["image"], config)
    if "code" in batch:
      code = jnp.asarray(batch["code"], jnp.float32)
    else:
      labels = jnp.asarray(batch.get("label", jnp.zeros(x.shape[0], jnp.int32)), jnp.int32)
      code = space.random_codes(key, state.params[G]["space"], labels)
    y = gen.apply({"params": state.params[G]["net"]}, x, code)
    return y[..., ::-1] if bgr else y

  def d_probs(state, images):
    """D_cls's softmax over the emotions for RGB images [N, H, W, 3]."""
    return jax.nn.softmax(disc.apply({"params": state.params[D]}, prep(images, config))[1], -1)

  hooks = dict(config=config, space=space, generate=generate, d_probs=d_probs)
  return Method(init=init, train_step=train_step,
                streams=data_stream(data, config, keys=("image", "label")),
                evaluate=functools.partial(ganmut_eval.evaluate, **hooks),
                report=functools.partial(ganmut_eval.report, **hooks), generate=generate,
                prerequisites=(classifier.prerequisite(config, data),), phases=trained)
