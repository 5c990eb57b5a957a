"""Rb-VAE's objectives (rbvae.md Eq. 3; Eqs. 8-10 and Algorithm 1) and its baselines' (VAE,
beta-VAE, DIP-VAE-I/II, sVAE) in affectjax.objective's contract.

Every variant trains in one phase. Its players: 'encoders' (psi, with q(e|x) for Rb-VAE/sRb-VAE),
'generator' (theta, with the learned reference vector e_r) and, for sVAE/sRb-VAE, the density-ratio
discriminators 'd_xi' (x, z, e) and 'd_gamma' (x, z). Algorithm 1, line 20 moves theta along
+g_theta, psi along -g_psi and xi, gamma along +g_xi, +g_gamma, each g the gradient of that player's
own objective (l.7, 14, 16, 18): the encoders descend E_q[d] - NLL terms and the generator ascends
E_p[d] - NLL terms, which is descending the one model objective M = Eq. 8 + Eq. 10 for both, and
the discriminators ascend Eq. 9, i.e. descend disc = -Eq. 9. So Out.losses gives M to the encoders
and the generator (one backward pass) and disc to the discriminators (a second one).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp

from affectjax import losses
from affectjax.nn import rbvae as nets
from affectjax.nn.reparam import sample
from affectjax.objective import Out

MODEL_PLAYERS = ("encoders", "generator")


@dataclasses.dataclass(frozen=True)
class Context:
  """What the objectives read besides their arguments: the networks {player: module} and the config."""
  nets: Mapping[str, Any]
  config: Any


# ---------------------------------------------------------------- network glue

def encode(nets_, params, x, which="z"):
  """(mu, logvar) of q(z|x) (which='z') or, for the Rb-VAE encoders, of q(e|x) (which='e')."""
  enc = nets_["encoders"]
  if isinstance(enc, nets.RbEncoder):
    method = enc.z_posterior if which == "z" else enc.e_posterior
    return enc.apply({"params": params["encoders"]}, x, method=method)
  return enc.apply({"params": params["encoders"]}, x)


def generate(nets_, params, z, e=None):
  """G(z, e): the mean of p(x | z, e) (e=None for the baselines' G(z))."""
  return nets_["generator"].apply({"params": params["generator"]["net"]}, z, e)


def discriminate(nets_, params, name, x, z, e, key):
  """The logits of discriminator `name` on (x, z, e) pairs (dropout drawn with `key`)."""
  return nets_[name].apply({"params": params[name]}, x, z, e, train=True, rngs={"dropout": key})


def sample_x(key, mean, scale, noise: bool):
  """x ~ Laplace(G(z, e), lambda) by the reparameterisation mean + lambda * Laplace(0, 1)."""
  return mean + scale * jax.random.laplace(key, mean.shape, mean.dtype) if noise else mean


def inputs(batch):
  """The unlabelled and the reference images of a batch {stream: examples}."""
  x = jnp.asarray(batch["unlabelled"]["image"], jnp.float32)
  x_r = jnp.asarray(batch["reference"]["image"], jnp.float32)
  return x, x_r


def _model_out(m, metrics, disc=None, discriminators=()) -> Out:
  """M for the encoders and the generator, disc for the discriminators (Algorithm 1 l.20)."""
  lossmap = {name: m for name in MODEL_PLAYERS}
  metrics = dict(metrics, model_objective=m, loss=m)
  if discriminators:
    lossmap.update({name: disc for name in discriminators})
    metrics["disc_objective"] = -disc  # Eq. 9, the value the discriminators ascend
  return Out(lossmap, metrics)


# ---------------------------------------------------------------- the VAE family (any encoder)

def negative_elbo(encode_fn: Callable, decode_fn: Callable, x, key, *, laplace_scale, beta=1.0,
                  dip: str = "", dip_lambda=10.0, dip_lambda_d=None):
  """The VAE / beta-VAE / DIP-VAE objective of any encoder and decoder (losses.vae_objective):
  encode_fn(x) -> (mu, logvar) of q(z|x), decode_fn(z) -> the mean of the Laplace p(x|z) with
  scale laplace_scale; z drawn with `key`. Returns (scalar, metrics, (mu, logvar, z))."""
  mu, lv = encode_fn(x)
  z = sample(key, mu, lv)
  nll = losses.laplace_nll(x, decode_fn(z), laplace_scale)
  m, metrics = losses.vae_objective(nll, mu, lv, beta=beta, dip=dip, dip_lambda=dip_lambda,
                                    dip_lambda_d=dip_lambda_d)
  return m, metrics, (mu, lv, z)


def vae_settings(config) -> dict:
  """negative_elbo's regulariser for config.variant: beta (beta_vae) or the DIP penalty."""
  l = config.loss
  return {"beta": l.beta if config.variant == "beta_vae" else 1.0,
          "dip": {"dip_vae_i": "i", "dip_vae_ii": "ii"}.get(config.variant, ""),
          "dip_lambda": l.dip_lambda, "dip_lambda_d": l.dip_lambda_d or None}


def vae(params, aux, batch, key, step, ctx: Context) -> Out:
  """VAE, beta-VAE, DIP-VAE-I/II: Laplace NLL + beta KL (+ the DIP penalty), batch mean, on the
  unlabelled and the reference images together (the baselines are unsupervised)."""
  x = jnp.concatenate(inputs(batch))
  m, metrics, _ = negative_elbo(lambda a: encode(ctx.nets, params, a),
                                lambda z: generate(ctx.nets, params, z), x, key,
                                laplace_scale=ctx.config.loss.laplace_scale, **vae_settings(ctx.config))
  return _model_out(m, metrics)


# ---------------------------------------------------------------- Rb-VAE (Eq. 3)

def eq3(params, aux, batch, key, step, ctx: Context) -> Out:
  """Eq. 3: unlabelled and reference negative ELBOs (Laplace NLL, analytic Gaussian KLs)."""
  nets_, lam = ctx.nets, ctx.config.loss.laplace_scale
  x, x_r = inputs(batch)
  k_z, k_e, k_zr = jax.random.split(key, 3)
  mu_z, lv_z = encode(nets_, params, jnp.concatenate([x, x_r]), "z")
  mu_e, lv_e = encode(nets_, params, x, "e")
  z = sample(k_z, mu_z, lv_z)
  b = x.shape[0]
  e = sample(k_e, mu_e, lv_e)
  e_r = jnp.broadcast_to(params["generator"]["e_r"], (x_r.shape[0], e.shape[-1]))
  x_hat = generate(nets_, params, z, jnp.concatenate([e, e_r]))
  nll = losses.laplace_nll(jnp.concatenate([x, x_r]), x_hat, lam)
  kl_z = losses.gaussian_kl(mu_z, lv_z)
  kl_e = losses.gaussian_kl(mu_e, lv_e)
  unl = jnp.mean(kl_z[:b] + kl_e + nll[:b])  # Eq. 3, first line
  ref = jnp.mean(kl_z[b:] + nll[b:])  # Eq. 3, second line (e = e_r, no inference over e)
  m = unl + ref
  return _model_out(m, {"nll_u": nll[:b].mean(), "nll_r": nll[b:].mean(),
                        "kl_z": kl_z.mean(), "kl_e": kl_e.mean()})


# ---------------------------------------------------------------- sRb-VAE (Eqs. 8-10)

def srbvae(params, aux, batch, key, step, ctx: Context) -> Out:
  """Eqs. 8-10 on one batch (Algorithm 1, lines 2-18), every sample drawn once.

  M = Eq. 8 + recon_weight * Eq. 10 (negated log-likelihoods) for the encoders and the generator;
  disc = -Eq. 9 for d_xi and d_gamma (Eq. 9: log sigma(d) on encoder pairs, log(1 - sigma(d)) on
  generator pairs: d estimates log q/p, Eq. 7).
  """
  nets_, config = ctx.nets, ctx.config
  l = config.loss
  x, x_r = inputs(batch)
  b, br = x.shape[0], x_r.shape[0]
  zd, ed = config.model.z_dim, config.model.e_dim
  ks = jax.random.split(key, 9)
  e_r = params["generator"]["e_r"]
  # Alg. 1 l.9-13: prior latents and generated images
  z_p, e_p, zr_p = (jax.random.normal(ks[0], (b, zd)), jax.random.normal(ks[1], (b, ed)),
                    jax.random.normal(ks[2], (br, zd)))
  g_p = generate(nets_, params, jnp.concatenate([z_p, zr_p]),
                 jnp.concatenate([e_p, jnp.broadcast_to(e_r, (br, ed))]))
  x_p_all = sample_x(ks[3], g_p, l.laplace_scale, l.sample_x)
  x_p, xr_p = x_p_all[:b], x_p_all[b:]
  # Alg. 1 l.4-6: encoder latents of real images, and of the generated ones (Eq. 10)
  mu_z, lv_z = encode(nets_, params, jnp.concatenate([x, x_r, x_p, xr_p]), "z")
  mu_e, lv_e = encode(nets_, params, jnp.concatenate([x, x_p]), "e")
  z_q = sample(ks[4], mu_z[:b + br], lv_z[:b + br])
  e_q = sample(ks[5], mu_e[:b], lv_e[:b])
  z, zr = z_q[:b], z_q[b:]
  # Eq. 8 through the two discriminators: encoder pairs (q) and generator pairs (p)
  xi = discriminate(nets_, params, "d_xi", jnp.concatenate([x, x_p]), jnp.concatenate([z, z_p]),
                    jnp.concatenate([e_q, e_p]), ks[6])
  gamma = discriminate(nets_, params, "d_gamma", jnp.concatenate([x_r, xr_p]),
                       jnp.concatenate([zr, zr_p]), None, ks[7])
  xi_q, xi_p, gamma_q, gamma_p = xi[:b], xi[b:], gamma[:br], gamma[br:]
  adv = losses.srbvae_adversarial_loss(xi_q, xi_p, gamma_q, gamma_p)  # Eq. 8
  # Eq. 10: reconstructions of real images (from the sampled z, e / z_r, e_r) and of prior latents
  rec = generate(nets_, params, z_q, jnp.concatenate([e_q, jnp.broadcast_to(e_r, (br, ed))]))
  x_nll = losses.laplace_nll(jnp.concatenate([x, x_r]), rec, l.laplace_scale)
  z_nll = losses.gaussian_nll(jnp.concatenate([z_p, zr_p]), mu_z[b + br:], lv_z[b + br:])
  e_nll = losses.gaussian_nll(e_p, mu_e[b:], lv_e[b:])
  recon = losses.srbvae_reconstruction_loss(x_nll[:b], x_nll[b:], z_nll[:b], e_nll, z_nll[b:])
  m = adv + l.recon_weight * recon  # Sec. 4.3: Eq. 10 minimised together with Eq. 8
  disc = losses.srbvae_discriminator_loss(xi_q, xi_p, gamma_q, gamma_p)  # -Eq. 9
  metrics = {"adv": adv, "recon": recon, "nll_u": x_nll[:b].mean(), "nll_r": x_nll[b:].mean(),
             "z_nll": z_nll.mean(), "e_nll": e_nll.mean(), "disc": disc,
             "skl_xi": losses.symmetric_kl_estimate(xi_q, xi_p),
             "skl_gamma": losses.symmetric_kl_estimate(gamma_q, gamma_p),
             "d_q": jnp.mean(xi_q) + jnp.mean(gamma_q),  # Alg. 1 l.7's mean (psi descends it)
             "d_p": jnp.mean(xi_p) + jnp.mean(gamma_p)}  # Alg. 1 l.14's mean (theta ascends it)
  return _model_out(m, metrics, disc, ("d_xi", "d_gamma"))


def svae(params, aux, batch, key, step, ctx: Context) -> Out:
  """sVAE (Pu et al. 2018): Eqs. 8-10 without e and without a reference set, on all images; its
  one discriminator d(x, z) is the player d_gamma."""
  nets_, config = ctx.nets, ctx.config
  l = config.loss
  x = jnp.concatenate(inputs(batch))
  b, zd = x.shape[0], config.model.z_dim
  ks = jax.random.split(key, 4)
  z_p = jax.random.normal(ks[0], (b, zd))
  x_p = sample_x(ks[1], generate(nets_, params, z_p), l.laplace_scale, l.sample_x)
  mu, lv = encode(nets_, params, jnp.concatenate([x, x_p]))
  z = sample(ks[2], mu[:b], lv[:b])
  d = discriminate(nets_, params, "d_gamma", jnp.concatenate([x, x_p]), jnp.concatenate([z, z_p]),
                   None, ks[3])
  x_nll = losses.laplace_nll(x, generate(nets_, params, z), l.laplace_scale)
  z_nll = losses.gaussian_nll(z_p, mu[b:], lv[b:])
  adv = losses.symmetric_kl_estimate(d[:b], d[b:])
  m = adv + l.recon_weight * (jnp.mean(x_nll) + jnp.mean(z_nll))  # svae_loss with recon_weight
  disc = losses.svae_discriminator_loss(d[:b], d[b:])
  return _model_out(m, {"adv": adv, "nll": x_nll.mean(), "z_nll": z_nll.mean(), "disc": disc},
                    disc, ("d_gamma",))


DEFAULTS = {"vae": vae, "beta_vae": vae, "dip_vae_i": vae, "dip_vae_ii": vae, "svae": svae,
            "rbvae": eq3, "srbvae": srbvae}
