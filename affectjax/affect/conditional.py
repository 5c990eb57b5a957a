"""GANmut's learned conditional spaces (ganmut.md Sections 3, 4.1, 4.2): pure math, no networks.

Linear (polar) space: each non-neutral emotion c has a learned direction theta_c; a code is
z = rho (cos theta, sin theta) in the unit disc. Gaussian space: each emotion c has a mode
mu_c = tanh(w_c) with covariance R(angle_c) diag(exp(log_eigs_c)) R(angle_c)^T in [-1, 1]^2.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["polar_to_xy", "sample_codes", "sample_square", "mode_means", "mode_covariances",
           "mahalanobis_sq", "label_distribution", "rho_hat"]


def polar_to_xy(theta, rho):
  """(theta, rho) -> z = rho (cos theta, sin theta), shape [..., 2] (Section 3, Approach I)."""
  return jnp.stack([rho * jnp.cos(theta), rho * jnp.sin(theta)], axis=-1)


def sample_codes(key, thetas, targets, num_random, *, tau=0.2, noise=0.0, random_rho="disc"):
  """The GANmut sub-batch sampler (Section 4.1): rows [0, num_random) are S_r, the rest S_c.

  thetas: [C-1] learned directions of the non-neutral emotions (class c uses thetas[c-1]).
  targets: [N] int target emotions c (0 = neutral); used only for the S_c rows.
  S_c: z = (theta_c, rho) with rho ~ U[tau, 1] for emotions and rho ~ U[0, tau) for neutral, the
  neutral rows on a uniformly random angle (every direction is neutral below tau).
  S_r: random_rho='disc' samples uniformly over the area of the disc (rho = sqrt(u)); 'polar' is
  the paper's literal rho ~ U[0, 1] (Sec. 3), denser near the centre; 'original' reuses the row's
  S_c strength (the original code: U[tau, 1], or U[0, tau) for a neutral target).
  noise: std of the Gaussian added to the S_c codes (0.075 in the original code; 0 in the paper).
  Returns (z [N, 2], rho [N], in_sc [N] bool); rho is the nominal strength before noise.
  """
  n = targets.shape[0]
  k_rho, k_ang, k_noise, k_rr, k_ra = jax.random.split(key, 5)
  u = jax.random.uniform(k_rho, (n,))
  neutral = targets == 0
  rho_c = jnp.where(neutral, tau * u, tau + (1.0 - tau) * u)
  theta_dir = thetas[jnp.clip(targets - 1, 0, thetas.shape[0] - 1)]
  theta_c = jnp.where(neutral, jax.random.uniform(k_ang, (n,), maxval=2 * jnp.pi), theta_dir)
  z_c = polar_to_xy(theta_c, rho_c) + noise * jax.random.normal(k_noise, (n, 2))
  ur = jax.random.uniform(k_rr, (n,))
  rho_r = {"disc": jnp.sqrt(ur), "polar": ur, "original": rho_c}[random_rho]
  z_r = polar_to_xy(jax.random.uniform(k_ra, (n,), maxval=2 * jnp.pi), rho_r)
  in_sc = jnp.arange(n) >= num_random
  z = jnp.where(in_sc[:, None], z_c, z_r)
  return z, jnp.where(in_sc, rho_c, rho_r), in_sc


def sample_square(key, n):
  """z ~ U([-1, 1]^2) (Section 4.2, the S_r split of GGANmut)."""
  return jax.random.uniform(key, (n, 2), minval=-1.0, maxval=1.0)


def mode_means(w):
  """mu_c = tanh(w_c) (Section 4.2), w: [C, 2]."""
  return jnp.tanh(w)


def mode_covariances(log_eigs, angles):
  """Sigma_c = R(angle_c) diag(exp(log_eigs_c)) R(angle_c)^T: [C, 2] and [C] -> [C, 2, 2].

  Eigenvalues sigma_1^2, sigma_2^2 = exp(log_eigs) and eigenvector orientation angle (Sec. 4.2);
  the log parameterisation keeps every Sigma_c positive definite for any parameter value.
  """
  c, s = jnp.cos(angles), jnp.sin(angles)
  rot = jnp.stack([jnp.stack([c, -s], -1), jnp.stack([s, c], -1)], -2)  # [C, 2, 2]
  eig = jnp.exp(log_eigs)
  return jnp.einsum("cij,cj,ckj->cik", rot, eig, rot)


def mahalanobis_sq(z, mus, covs):
  """d^2_{c,z} = (z - mu_c)^T Sigma_c^{-1} (z - mu_c) (Section 4.2): [N, 2] -> [N, C]."""
  diff = z[:, None, :] - mus[None]  # [N, C, 2]
  a, b, d = covs[:, 0, 0], covs[:, 0, 1], covs[:, 1, 1]
  det = a * d - b * b
  inv = jnp.stack([jnp.stack([d, -b], -1), jnp.stack([-b, a], -1)], -2) / det[:, None, None]
  return jnp.einsum("nci,cij,ncj->nc", diff, inv, diff)


def label_distribution(z, mus, covs):
  """p_z(c) = exp(-d^2_c) / sum_j exp(-d^2_j) (Section 4.2): [N, 2] -> [N, C]."""
  return jax.nn.softmax(-mahalanobis_sq(z, mus, covs), axis=-1)


def rho_hat(logits):
  """rho_hat(x) = max_c D_cls(c | x), the max softmax score (Eq. 7): [N, C] -> [N]."""
  return jnp.max(jax.nn.softmax(logits, axis=-1), axis=-1)
