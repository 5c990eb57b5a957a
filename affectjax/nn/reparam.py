"""The reparameterisation trick (Kingma and Welling, 2014), written once for every VAE here."""
from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp


def sample(key, mu: jax.Array, logvar: jax.Array, leading: Sequence[int] = ()) -> jax.Array:
  """z = mu + exp(logvar / 2) * eps, eps ~ N(0, I); `leading` prepends sample axes
  (e.g. (M,) draws M samples per row: [M, *mu.shape])."""
  eps = jax.random.normal(key, tuple(leading) + mu.shape, mu.dtype)
  return mu + jnp.exp(0.5 * logvar) * eps
