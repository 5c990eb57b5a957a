"""FactorVAE (Kim and Mnih, ICML 2018) as a baseline beside Rb-VAE's Table 1: Rb-VAE's style
digits, streams, encoder and generator networks, Laplace likelihood and evaluation
(affectjax.methods.rbvae), with the total-correlation discriminator D of objective.py.

D (the paper's appendix): an MLP of 6 layers of 1000 units with leaky ReLU (0.2), trained by
Adam(1e-4, 0.5, 0.9) (config.disc_optim); the VAE trains as Rb-VAE's baselines do (config.optim).
Both players update in the same step from the same parameters (the paper updates the VAE, then D).
"""
from __future__ import annotations

import copy

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from affectjax import objective as objective_lib
from affectjax import optim
from affectjax.config import expect
from affectjax.data.source import subset
from affectjax.methods import rbvae
from affectjax.methods.base import Method, Stream
from affectjax.methods.factor_vae.objective import DISC, VAE, Context, objective as default_objective
from affectjax.methods.rbvae.evaluate import read
from affectjax.methods.rbvae.objective import encode, generate

SLOPE = 0.2  # D's leaky ReLU slope (the paper's appendix)


class TCDiscriminator(nn.Module):
  """D(z) -> the logit of 'z was drawn from q(z)' (not from prod_j q(z_j)). The paper's D ends in
  two softmax units; their logit difference is this one linear unit (the same functions)."""
  hidden: int = 1000
  layers: int = 6

  @nn.compact
  def __call__(self, z):
    h = z
    for _ in range(self.layers):
      h = nn.leaky_relu(nn.Dense(self.hidden)(h), SLOPE)
    return nn.Dense(1)(h)[:, 0]


NEEDS = ("has_images",)


def validate(config):
  """Rb-VAE's checks of the shared networks, likelihood and data (as its plain VAE), then
  FactorVAE's own fields; one ConfigError line each."""
  as_vae = copy.deepcopy(config)
  as_vae.variant = "vae"
  rbvae.validate(as_vae)
  expect(config.loss.gamma >= 0, f"config.loss.gamma={config.loss.gamma} must be >= 0")
  for name in ("disc_hidden", "disc_layers"):
    value = config.model[name]
    expect(isinstance(value, int) and value > 0, f"config.model.{name}={value!r} must be a positive integer")
  d = config.disc_optim
  expect(d.lr > 0, f"config.disc_optim.lr={d.lr} must be > 0")
  for name in ("b1", "b2"):
    expect(0.0 <= d[name] <= 1.0, f"config.disc_optim.{name}={d[name]} must be in [0, 1]")
  objective_lib.check_config(config, ("main",))


def streams(config, data) -> dict:
  """Rb-VAE's 'unlabelled' and 'reference' streams over prepared data; with config.train.epochs
  > 0, config.train.num_steps is set from the unlabelled set loaded (rbvae.resolve_num_steps)."""
  mask = read(data.train, "is_reference").astype(bool)
  config.train.num_steps = rbvae.resolve_num_steps(config, int((~mask).sum()))
  bs = config.train.batch_size
  return {"unlabelled": Stream(subset(data.train, np.flatnonzero(~mask)), bs, ("image",), 0),
          "reference": Stream(subset(data.train, np.flatnonzero(mask)), bs, ("image",), 7919)}


def make_method(config, data, *, objective=None, objectives=None) -> Method:
  """FactorVAE from its config and the loaded splits (Rb-VAE's preparation: reference set, probe
  splits, train.epochs -> train.num_steps); `objective` replaces objective.objective."""
  data = rbvae.prepare_data(config, data)
  streams_ = streams(config, data)  # before the players: their schedules read train.num_steps
  nets = dict(rbvae.networks(config),
              disc=TCDiscriminator(config.model.disc_hidden, config.model.disc_layers))
  n = config.train.num_steps
  players = {VAE: optim.make_player(config.optim, n),
             DISC: optim.make_player(config.optim, n, **dict(config.disc_optim))}
  # one phase: both players move from the same parameters (their order is immaterial)
  phases = objective_lib.inject([objective_lib.Phase("main", default_objective, (DISC, VAE))],
                                config, objective, objectives)
  train_step = objective_lib.make_step(phases, players, Context(nets, config))

  def init(key, batch):
    x = jnp.asarray(batch["unlabelled"]["image"][:2], jnp.float32)
    z = jnp.zeros((x.shape[0], config.model.z_dim))
    ks = jax.random.split(key, 3)
    params = {VAE: {"encoders": nets["encoders"].init(ks[0], x)["params"],
                    "generator": {"net": nets["generator"].init(ks[1], z)["params"]}},
              DISC: nets["disc"].init(ks[2], z)["params"]}
    return objective_lib.State(step=jnp.zeros((), jnp.int32), params=params,
                               opt_state=objective_lib.init_opt_state(players, params))

  def represent(state, batch):
    """{'z': mean of q(z|x)} (Table 1 probes it as the baselines' z)."""
    return {"z": encode(nets, state.params[VAE], jnp.asarray(batch["image"], jnp.float32))[0]}

  def generate_(state, batch, key=None):
    """The decoder's mean image G(z) for batch {'z'}."""
    return generate(nets, state.params[VAE], jnp.asarray(batch["z"], jnp.float32))

  evaluate, report = rbvae.evaluation(config, represent, generate_)
  return Method(init=init, train_step=train_step, streams=streams_, evaluate=evaluate,
                report=report, represent=represent, generate=generate_, data=data, phases=phases)
