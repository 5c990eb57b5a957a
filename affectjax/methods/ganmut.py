"""GANmut (ganmut.md): linear (polar) GANmut, Gaussian GGANmut and the StarGAN baseline.

config.model.space picks the variant: 'linear' (Sec. 4.1, Eqs. 1-8), 'gaussian' (Sec. 4.2, Eqs.
9-10) or 'stargan' (one-hot conditions). One jitted step per iteration: a D step every iteration
and a G step every optim.n_critic iterations under lax.cond (both branches compiled once).
The conditional space is one affectjax.affect.conditional.Space (pure functions per kind), chosen
once from the config by `space_of`. Evaluation (the classifier, FED, smoothness, ERE, accuracy,
figures) is in ganmut_eval.py, which receives this module's `generate` and D probabilities.
"""
from __future__ import annotations

import functools

import flax
import jax
import jax.numpy as jnp
import optax

from affectjax import losses, optim
from affectjax.affect import conditional as cs
from affectjax.config import ConfigError, check_choices, expect
from affectjax.methods import ganmut_eval
from affectjax.methods.base import Method, data_stream, resolve
from affectjax.nn import stargan

SPACES = cs.KINDS
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


@flax.struct.dataclass
class GanState:
  step: jax.Array
  g_params: dict  # {'net': generator, 'space': conditional-space parameters}
  d_params: dict
  g_opt: optax.OptState
  d_opt: optax.OptState


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


# ---------------------------------------------------------------- losses

def sample_conditions(key, space, labels, config):
  """Target codes for a batch: (code [N, k], target [N], rho [N], in_sc [N]); `space` holds the
  conditional space's parameters."""
  return space_of(config).sample(key, space, labels)


def d_loss_fn(d_params, fake, code, x, labels, key, disc, config):
  """L_D = -L_adv + lambda_cls L_cls^r + lambda_info_D L_info (Eq. 1); GP from Eq. 3."""
  l = config.loss
  apply = lambda im: disc.apply({"params": d_params}, im)
  both = apply(jnp.concatenate([x, fake]))  # one D call for real and fake
  n = x.shape[0]
  src_r, cls_r = both[0][:n], both[1][:n]
  src_f = both[0][n:]
  adv = losses.wgan_critic_loss(src_r, src_f)  # -L_adv without the GP term (Eq. 3)
  gp = losses.gradient_penalty(lambda im: apply(im)[0], x, fake, key)  # Eq. 3
  cls = cs.masked_ce(cls_r, labels)  # Eq. 5
  total = adv + l.lambda_gp * gp + l.lambda_cls_real * cls
  info = jnp.zeros(())
  if space_of(config).coord_dim:  # D regresses the code of a learned space
    info = cs.info_loss(both[2][n:], code, l.get("info_reduction", "sum"))  # Eq. 6
    total = total + l.lambda_info_d * info
  acc = cs.masked_mean(jnp.argmax(cls_r, -1) == labels, labels >= 0)
  return total, {"d_loss": total, "d_adv": adv, "d_gp": gp, "d_cls": cls, "d_info": info,
                 "d_acc_real": acc, "d_wdist": -adv}


def g_loss_fn(g_params, d_params, x, labels, key, gen, disc, config):
  """L_G (Eq. 2 for GANmut; Sec. 4.2 for GGANmut; StarGAN's objective for the baseline)."""
  l, space = config.loss, space_of(config)
  params = g_params["space"]
  code, target, rho, in_sc = space.sample(key, params, labels)
  g = lambda im, z: gen.apply({"params": g_params["net"]}, im, z)
  d = lambda im: disc.apply({"params": d_params}, im)
  fake = g(x, code)
  src_f, cls_f, coord_f = d(fake)
  adv = losses.wgan_generator_loss(src_f)  # Eq. 3
  m = {"g_adv": adv, **space.g_terms(params, code, target, rho, in_sc, cls_f, coord_f)}
  # cycle back to the input's own condition (Eq. 8); D is fixed in the G step; fold_in keeps
  # `key`'s own draws (the codes above) whatever the cycle samples
  _, cls_r, coord_r = jax.lax.stop_gradient(d(x))
  back = space.back_code(params, labels, cls_r, coord_r, jax.random.fold_in(key, 1))
  m["g_rec"] = jnp.mean(jnp.abs(x - g(fake, back)))  # Eq. 8
  total = adv + l.lambda_rec * m["g_rec"] + l.lambda_cls_fake * m["g_cls"]
  for term, weight in space.g_weights:  # Eq. 2 (linear), Eq. 9's lambda_div (Gaussian)
    total = total + l[weight] * m[term]
  m["g_loss"] = total
  return total, m


eq1_d_loss, eq2_g_loss = d_loss_fn, g_loss_fn  # the defaults (make_method's arguments shadow them)


# ---------------------------------------------------------------- the method

def g_step_gating(config):
  """How the G step runs every n_critic iterations inside the one jitted step.

  'cond' (lax.cond: G is computed only when due) is the fast choice on GPU/TPU. XLA:CPU runs the
  backward convolutions inside a conditional 5-30x slower than at top level, so on CPU 'masked'
  (compute the G update every iteration, keep it every n_critic-th) is faster; 'auto' picks by
  backend. Both give the same updates.
  """
  mode = config.optim.get("g_step", "auto")
  if mode == "auto":
    return "masked" if jax.default_backend() == "cpu" else "cond"
  return mode

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
  for name in ("d_fn", "g_fn"):
    try:
      resolve(l[name], d_loss_fn)
    except (ImportError, ValueError) as e:
      raise ConfigError(f"config.loss.{name}={l[name]!r}: {e}") from None


def players(config):
  """(G, D) optimisers: Adam at the same schedule (in iterations); G is updated every n_critic-th
  iteration and its conditional space at optim.space_lr_scale times the rate."""
  n = config.train.num_steps
  return (optim.make_player(config.optim, n, lr_scales=g_lr_scales(config)),
          optim.make_player(config.optim, n))


def make_method(config, data, *, d_loss_fn=None, g_loss_fn=None) -> Method:
  """GANmut from its config and splits; d_loss_fn / g_loss_fn replace Eq. 1 / Eq. 2 (same
  signatures as d_loss_fn / g_loss_fn above; config.loss.d_fn / g_fn name them from the CLI)."""
  gen, disc = networks(config)
  o = config.optim
  g_player, d_player = players(config)
  d_loss = d_loss_fn or resolve(config.loss.d_fn, eq1_d_loss)
  g_loss = g_loss_fn or resolve(config.loss.g_fn, eq2_g_loss)
  n_critic = int(o.n_critic)
  space = space_of(config)
  bgr = bool(config.data.get("bgr", False))
  gating = g_step_gating(config)

  def prep(images):
    x = jnp.asarray(images, jnp.float32)
    return x[..., ::-1] if bgr else x  # the original code trains on BGR images

  def init(key, batch):
    x = prep(batch["data"]["image"][:1])
    k_g, k_d, k_s = jax.random.split(key, 3)
    g_net = gen.init(k_g, x, jnp.zeros((1, code_dim(config))))["params"]
    d_net = disc.init(k_d, x)["params"]
    g_params = {"net": g_net, "space": space.init(k_s)}
    return GanState(jnp.zeros((), jnp.int32), g_params, d_net, g_player.init(g_params),
                    d_player.init(d_net))

  def train_step(state, batch, key):
    batch = batch["data"]
    x, labels = prep(batch["image"]), jnp.asarray(batch["label"], jnp.int32)
    k_code, k_gp, k_g = jax.random.split(key, 3)
    lr = d_player.lr(state.step)
    # D step (Eq. 1): codes and fakes are constants for D
    code, _, _, _ = space.sample(k_code, state.g_params["space"], labels)
    code = jax.lax.stop_gradient(code)
    fake = jax.lax.stop_gradient(gen.apply({"params": state.g_params["net"]}, x, code))
    (d_total, dm), d_grads = jax.value_and_grad(d_loss, has_aux=True)(
        state.d_params, fake, code, x, labels, k_gp, disc, config)
    d_params, d_opt = d_player.update(d_grads, state.d_opt, state.d_params, state.step)

    # G step every n_critic iterations (Eq. 2), against the updated D
    def g_update(args):
      g_params, g_opt = args
      (_, gm), grads = jax.value_and_grad(g_loss, has_aux=True)(
          g_params, d_params, x, labels, k_g, gen, disc, config)
      g_params, g_opt = g_player.update(grads, g_opt, g_params, state.step)
      return g_params, g_opt, {k: gm[k] for k in space.g_metrics}

    def g_skip(args):
      return args[0], args[1], {k: jnp.zeros(()) for k in space.g_metrics}

    do_g = (state.step + 1) % n_critic == 0
    if gating == "cond":
      g_params, g_opt, gm = jax.lax.cond(do_g, g_update, g_skip, (state.g_params, state.g_opt))
    else:  # 'masked': same updates, G computed every iteration and kept every n_critic-th
      new = g_update((state.g_params, state.g_opt))
      old = g_skip((state.g_params, state.g_opt))
      g_params, g_opt, gm = jax.tree.map(lambda a, b: jnp.where(do_g, a, b), new, old)
    metrics = {**dm, **gm, "g_step": do_g.astype(jnp.float32), "lr": lr,
               "loss": d_total + gm["g_loss"]}
    metrics.update(space.log(g_params["space"]))  # e.g. the mean direction (linear)
    return GanState(state.step + 1, g_params, d_params, g_opt, d_opt), metrics

  def generate(state, batch, key):
    """G(x, z) for RGB images batch['image'] [N, H, W, 3] (RGB out, whatever the training channel
    order). batch['code'] [N, k] gives the conditions; without it, random codes of the space as
    for FED (Sec. 5), drawn with `key` (from batch['label'] where the space needs labels)."""
    x = prep(batch["image"])
    if "code" in batch:
      code = jnp.asarray(batch["code"], jnp.float32)
    else:
      labels = jnp.asarray(batch.get("label", jnp.zeros(x.shape[0], jnp.int32)), jnp.int32)
      code = space.random_codes(key, state.g_params["space"], labels)
    y = gen.apply({"params": state.g_params["net"]}, x, code)
    return y[..., ::-1] if bgr else y

  def d_probs(state, images):
    """D_cls's softmax over the emotions for RGB images [N, H, W, 3]."""
    return jax.nn.softmax(disc.apply({"params": state.d_params}, prep(images))[1], -1)

  hooks = dict(config=config, space=space, generate=generate, d_probs=d_probs)
  return Method(init=init, train_step=train_step,
                streams=data_stream(data, config, keys=("image", "label")),
                evaluate=functools.partial(ganmut_eval.evaluate, **hooks),
                report=functools.partial(ganmut_eval.report, **hooks), generate=generate)
