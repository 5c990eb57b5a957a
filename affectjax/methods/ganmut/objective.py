"""GANmut's two objectives (ganmut.md Eqs. 1-10) in affectjax.objective's contract.

params = {'g': {'net': generator, 'space': conditional-space parameters}, 'd': discriminator};
batch['data'] holds 'image' as the networks take it (`prep`: float32, BGR where config.data.bgr)
and 'label'. Both phases of a step receive the same key and split it alike, (k_code, k_gp, k_g): D takes
the first two, G the third, so D's fakes and G's codes are independent draws.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from affectjax import losses
from affectjax.affect import conditional as cs
from affectjax.objective import Out

G, D = "g", "d"  # the players


@dataclasses.dataclass(frozen=True)
class Context:
  """What the objectives read besides their arguments: the networks, the conditional space
  (affectjax.affect.conditional.Space) and the config."""
  gen: Any
  disc: Any
  space: cs.Space
  config: Any


def prep(images, config):
  """Images as the networks train on them: float32, BGR where config.data.bgr (the original code)."""
  x = jnp.asarray(images, jnp.float32)
  return x[..., ::-1] if config.data.get("bgr", False) else x


def _inputs(batch, key):
  """(x, labels, (k_code, k_gp, k_g)) of a step."""
  b = batch["data"]
  return b["image"], jnp.asarray(b["label"], jnp.int32), jax.random.split(key, 3)


def d_objective(params, aux, batch, key, step, ctx: Context) -> Out:
  """L_D = -L_adv + lambda_cls L_cls^r + lambda_info_D L_info (Eq. 1); GP from Eq. 3. The codes
  and fakes are constants for D."""
  del aux, step
  l, space, disc = ctx.config.loss, ctx.space, ctx.disc
  x, labels, (k_code, k_gp, _) = _inputs(batch, key)
  code = jax.lax.stop_gradient(space.sample(k_code, params[G]["space"], labels)[0])
  fake = jax.lax.stop_gradient(ctx.gen.apply({"params": params[G]["net"]}, x, code))
  apply = lambda im: disc.apply({"params": params[D]}, im)
  both = apply(jnp.concatenate([x, fake]))  # one D call for real and fake
  n = x.shape[0]
  src_r, cls_r = both[0][:n], both[1][:n]
  src_f = both[0][n:]
  adv = losses.wgan_critic_loss(src_r, src_f)  # -L_adv without the GP term (Eq. 3)
  gp = losses.gradient_penalty(lambda im: apply(im)[0], x, fake, k_gp)  # Eq. 3
  cls = cs.masked_ce(cls_r, labels)  # Eq. 5
  total = adv + l.lambda_gp * gp + l.lambda_cls_real * cls
  info = jnp.zeros(())
  if space.coord_dim:  # D regresses the code of a learned space
    info = cs.info_loss(both[2][n:], code, l.get("info_reduction", "sum"))  # Eq. 6
    total = total + l.lambda_info_d * info
  acc = cs.masked_mean(jnp.argmax(cls_r, -1) == labels, labels >= 0)
  return Out({D: total}, {"d_loss": total, "d_adv": adv, "d_gp": gp, "d_cls": cls, "d_info": info,
                          "d_acc_real": acc, "d_wdist": -adv})


def g_objective(params, aux, batch, key, step, ctx: Context) -> Out:
  """L_G (Eq. 2 for GANmut; Sec. 4.2, Eqs. 9-10 for GGANmut; StarGAN's objective for the
  baseline) against D as the D phase left it; D is fixed here."""
  del aux, step
  l, space = ctx.config.loss, ctx.space
  x, labels, (_, _, key) = _inputs(batch, key)
  sp = params[G]["space"]
  code, target, rho, in_sc = space.sample(key, sp, labels)
  g = lambda im, z: ctx.gen.apply({"params": params[G]["net"]}, im, z)
  d = lambda im: ctx.disc.apply({"params": params[D]}, im)
  fake = g(x, code)
  src_f, cls_f, coord_f = d(fake)
  adv = losses.wgan_generator_loss(src_f)  # Eq. 3
  m = {"g_adv": adv, **space.g_terms(sp, code, target, rho, in_sc, cls_f, coord_f)}
  # cycle back to the input's own condition (Eq. 8); fold_in keeps `key`'s own draws (the codes
  # above) whatever the cycle samples
  _, cls_r, coord_r = jax.lax.stop_gradient(d(x))
  back = space.back_code(sp, labels, cls_r, coord_r, jax.random.fold_in(key, 1))
  m["g_rec"] = jnp.mean(jnp.abs(x - g(fake, back)))  # Eq. 8
  total = adv + l.lambda_rec * m["g_rec"] + l.lambda_cls_fake * m["g_cls"]
  for term, weight in space.g_weights:  # Eq. 2 (linear), Eq. 9's lambda_div (Gaussian)
    total = total + l[weight] * m[term]
  m["g_loss"] = total
  return Out({G: total}, {k: m[k] for k in space.g_metrics})
