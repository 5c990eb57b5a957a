"""FactorVAE (Kim and Mnih, "Disentangling by Factorising", ICML 2018), a baseline beside Rb-VAE's
Table 1 and the worked example of docs/adding_a_method.md: method.py (validation, D's network, the
method on Rb-VAE's data, networks and evaluation), objective.py (-ELBO + gamma TC, D's loss)."""
from affectjax.methods.factor_vae.method import NEEDS, TCDiscriminator, make_method, streams, validate  # noqa: F401
from affectjax.methods.factor_vae.objective import (  # noqa: F401
    DISC, VAE, Context, discriminator_loss, objective, permute_dims, tc_estimate)
