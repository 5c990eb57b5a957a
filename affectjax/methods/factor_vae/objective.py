"""FactorVAE's objective (Kim and Mnih, "Disentangling by Factorising", ICML 2018, Sec. 3) in
affectjax.objective's contract: one phase, two players.

- 'vae' (encoder q(z|x) and decoder p(x|z)) minimises -ELBO + gamma * TC(z): the paper's
  objective, with the total correlation KL(q(z) || prod_j q(z_j)) estimated by the density-ratio
  trick, TC ~= E_q(z)[log D(z) / (1 - D(z))], i.e. the mean logit of D;
- 'disc' (D) minimises its cross-entropy between samples of q(z) and samples of prod_j q(z_j)
  drawn by permuting every latent dimension across a batch (the paper's permute_dims).
The library step applies each player's gradient of its own loss to its own parameters only, so
gamma * TC never moves D; D's loss reads z through stop_gradient, so it never moves the VAE.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from affectjax.methods.rbvae.objective import encode, generate, inputs, negative_elbo
from affectjax.objective import Out

VAE, DISC = "vae", "disc"  # the players: {'encoders', 'generator'} (Rb-VAE's layout), and D


@dataclasses.dataclass(frozen=True)
class Context:
  nets: Any  # {'encoders', 'generator'} (methods.rbvae.networks) and 'disc': Flax modules
  config: Any


def permute_dims(key, z: jax.Array) -> jax.Array:
  """Samples of prod_j q(z_j) from samples z [B, d] of q(z) (the paper's permute_dims): each
  column (latent dimension) reordered by its own random permutation of the batch, so every
  marginal keeps its values while the dimensions' dependence is broken."""
  perms = jax.vmap(lambda k: jax.random.permutation(k, z.shape[0]))(jax.random.split(key, z.shape[1]))
  return jnp.take_along_axis(z, perms.T, axis=0)


def tc_estimate(logits: jax.Array) -> jax.Array:
  """TC(z) ~= E_q(z)[log D(z) / (1 - D(z))] with D(z) = sigmoid(logit): the mean logit."""
  return jnp.mean(logits)


def discriminator_loss(q_logits: jax.Array, perm_logits: jax.Array) -> jax.Array:
  """D's cross-entropy: -1/2 (E_q(z)[log D(z)] + E_prod q(z_j)[log(1 - D(z))]), with
  log D = -softplus(-logit) and log(1 - D) = -softplus(logit)."""
  return 0.5 * (jnp.mean(jax.nn.softplus(-q_logits)) + jnp.mean(jax.nn.softplus(perm_logits)))


def objective(params, aux, batch, key, step, ctx: Context) -> Out:
  """Batch means of -ELBO + gamma TC (the VAE) and of D's cross-entropy (D).

  x is the unlabelled and the reference batch together (as Rb-VAE's unsupervised baselines);
  p(x|z) is Rb-VAE's Laplace with scale lambda. The paper draws a second batch for D's permuted
  samples; here one batch is split in halves: its even rows are D's samples of q(z), its odd rows,
  permuted, those of prod_j q(z_j) (interleaved, so both halves mix the two streams). The TC term
  averages D's logit over every row."""
  nets, l = ctx.nets, ctx.config.loss
  x = jnp.concatenate(inputs(batch))
  k_z, k_perm = jax.random.split(key)
  neg_elbo, metrics, (_, _, z) = negative_elbo(  # mean(-log p(x|z) + KL(q(z|x) || N(0, I)))
      lambda a: encode(nets, params[VAE], a), lambda s: generate(nets, params[VAE], s), x, k_z,
      laplace_scale=l.laplace_scale)
  fixed = jax.lax.stop_gradient(z)  # D's samples: its loss must not reach the encoder
  q_half, perm_half = fixed[0::2], permute_dims(k_perm, fixed[1::2])
  logits = nets["disc"].apply({"params": params[DISC]}, jnp.concatenate([z, q_half, perm_half]))
  n, h = z.shape[0], q_half.shape[0]
  tc = tc_estimate(logits[:n])
  vae_loss = neg_elbo + l.gamma * tc  # -(ELBO - gamma TC)
  q_logits, perm_logits = logits[n:n + h], logits[n + h:]
  d_loss = discriminator_loss(q_logits, perm_logits)
  metrics = {**metrics, "loss": vae_loss, "tc": tc, "disc_loss": d_loss,
             "disc_accuracy": 0.5 * (jnp.mean(q_logits > 0) + jnp.mean(perm_logits < 0))}
  return Out({VAE: vae_loss, DISC: d_loss}, metrics)
