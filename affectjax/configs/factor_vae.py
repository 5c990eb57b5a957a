"""FactorVAE (Kim and Mnih, "Disentangling by Factorising", ICML 2018) beside Rb-VAE's Table 1.

--config=configs/factor_vae.py[:ARGS], ARGS a comma-separated list of faces, and small or tiny,
as configs/rbvae.py: Rb-VAE's config for its plain VAE (the same data, networks, Laplace
likelihood, optimiser, batch, epochs and evaluation) plus FactorVAE's gamma and discriminator.
"""
import ml_collections

from affectjax.configs import rbvae

ARGS = ("faces", "small", "tiny")


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  args = set(a for a in arg.split(",") if a)
  if args - set(ARGS) or {"small", "tiny"} <= args:
    raise ValueError(f"configs/factor_vae.py: bad argument {arg!r}; use faces and/or one of small, tiny")
  c = rbvae.get_config(",".join(sorted(args | {"vae"})))
  c.method = "factor_vae"
  c.variant = ""  # no variants; Rb-VAE's evaluation names the row after config.method
  # gamma, the weight of the total correlation: the paper's value on 3D Shapes, the closest of its
  # datasets (coloured images whose factors include colours and scale, as style digits' R, G, B,
  # scale); it sweeps larger values (10-100) on the binary 2D Shapes (dSprites).
  c.loss.gamma = 6.4
  # D (the paper's appendix): 6 dense layers of 1000 units, leaky ReLU 0.2, Adam(1e-4, 0.5, 0.9)
  c.model.disc_hidden = 1000
  c.model.disc_layers = 6
  c.disc_optim = ml_collections.ConfigDict({"lr": 1e-4, "b1": 0.5, "b2": 0.9})
  if "tiny" in args:
    c.model.disc_hidden, c.model.disc_layers = 16, 2
  elif "small" in args:
    c.model.disc_hidden = 256
  return c
