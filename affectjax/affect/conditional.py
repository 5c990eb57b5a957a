"""GANmut's learned conditional spaces (ganmut.md Sections 3, 4.1, 4.2): pure math, no networks.

Linear (polar) space: each non-neutral emotion c has a learned direction theta_c; a code is
z = rho (cos theta, sin theta) in the unit disc. Gaussian space: each emotion c has a mode
mu_c = tanh(w_c) with covariance R(angle_c) diag(exp(log_eigs_c)) R(angle_c)^T in [-1, 1]^2.
One-hot space: StarGAN's fixed conditions (the baseline).

`space_of(kind, num_classes, **options)` picks one `Space`: a bundle of pure functions (init, the
batch sampler, the code of emotion c at strength s, the cycle code, the kind's G-loss terms, random
codes, the ERE grid, directions/modes/label distribution). Methods choose it once and never switch
on the kind's name again.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from affectjax import losses

__all__ = ["polar_to_xy", "code_draws", "sample_codes", "train_mode_codes", "info_loss",
           "sample_square", "mode_means", "mode_covariances",
           "mahalanobis_sq", "label_distribution", "rho_hat", "Space", "space_of", "KINDS",
           "DIRECTION_PARAMS", "RANDOM_RHO"]

KINDS = ("linear", "gaussian", "stargan")
DIRECTION_PARAMS = ("angle", "vector")
RANDOM_RHO = ("polar", "disc", "original")
NEUTRAL_CODES = ("disc", "origin")
INFO_REDUCTIONS = ("sum", "mean")
CYCLE_CODES = ("exact", "sampled")


def polar_to_xy(theta, rho):
  """(theta, rho) -> z = rho (cos theta, sin theta), shape [..., 2] (Section 3, Approach I)."""
  return jnp.stack([rho * jnp.cos(theta), rho * jnp.sin(theta)], axis=-1)


def code_draws(key, n):
  """The random numbers of one batch of GANmut codes, by name (a transcription can reuse them):
  u, u_random ~ U[0, 1), neutral_angle, random_angle ~ U[0, 2 pi), noise ~ N(0, I_2)."""
  k_rho, k_ang, k_noise, k_rr, k_ra = jax.random.split(key, 5)
  return {"u": jax.random.uniform(k_rho, (n,)),
          "neutral_angle": jax.random.uniform(k_ang, (n,), maxval=2 * jnp.pi),
          "noise": jax.random.normal(k_noise, (n, 2)),
          "u_random": jax.random.uniform(k_rr, (n,)),
          "random_angle": jax.random.uniform(k_ra, (n,), maxval=2 * jnp.pi)}


def sample_codes(key, thetas, targets, num_random, *, tau=0.2, noise=0.0, random_rho="polar",
                 neutral_code="disc"):
  """The GANmut sub-batch sampler (Section 4.1): rows [0, num_random) are S_r, the rest S_c.

  thetas: [C-1] learned directions of the non-neutral emotions (class c uses thetas[c-1]).
  targets: [N] int target emotions c (0 = neutral); used only for the S_c rows.
  S_c: z = (theta_c, rho) with rho ~ U[tau, 1] for emotions and rho ~ U[0, tau) for neutral.
  neutral_code: 'disc' puts a neutral row at that rho on a uniformly random angle (Sec. 4.1: every
  direction is neutral below tau); 'origin' puts it at z = 0 (the original code: the neutral
  one-hot selects no direction, models/model_linear_2d.py), so only the noise moves it.
  S_r: random_rho='polar' is the paper's rho ~ U[0, 1] (Sec. 3), denser near the centre; 'disc'
  samples uniformly over the area of the disc (rho = sqrt(u)); 'original' reuses the row's S_c
  strength (the original code: U[tau, 1], or U[0, tau) for a neutral target).
  noise: std of the Gaussian added to the S_c codes (0.075 in the original code; 0 in the paper).
  Returns (z [N, 2], rho [N], in_sc [N] bool); rho is the nominal strength before noise.
  """
  n = targets.shape[0]
  d = code_draws(key, n)
  neutral = targets == 0
  rho_c = jnp.where(neutral, tau * d["u"], tau + (1.0 - tau) * d["u"])
  theta_dir = thetas[jnp.clip(targets - 1, 0, thetas.shape[0] - 1)]
  theta_c = jnp.where(neutral, d["neutral_angle"], theta_dir)
  z_c = polar_to_xy(theta_c, rho_c)
  if neutral_code == "origin":
    z_c = jnp.where(neutral[:, None], 0.0, z_c)
  z_c = z_c + noise * d["noise"]
  ur = d["u_random"]
  rho_r = {"disc": jnp.sqrt(ur), "polar": ur, "original": rho_c}[random_rho]
  z_r = polar_to_xy(d["random_angle"], rho_r)
  in_sc = jnp.arange(n) >= num_random
  z = jnp.where(in_sc[:, None], z_c, z_r)
  return z, jnp.where(in_sc, rho_c, rho_r), in_sc


def train_mode_codes(key, z, rho, num_random, noise):
  """z as the original code's G sees it in training mode (models/model_linear_2d.py, mode
  'train'): N(0, noise^2) added to every row, then rows [0, num_random) replaced by codes on
  uniformly random angles at the row's strength rho. Draws: code_draws(key, n)'s noise and
  random_angle."""
  n = z.shape[0]
  d = code_draws(key, n)
  z_r = polar_to_xy(d["random_angle"], rho)
  return jnp.where((jnp.arange(n) < num_random)[:, None], z_r, z + noise * d["noise"])


def info_loss(coord, code, reduction="sum"):
  """L_info (Eq. 6) over a batch: the squared error summed over the code's coordinates ('sum', the
  squared norm of Eq. 6) or averaged over them ('mean', F.mse_loss in the original solver.py)."""
  sq = jnp.square(coord - code)
  return jnp.mean(jnp.sum(sq, -1)) if reduction == "sum" else jnp.mean(sq)


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


# ---------------------------------------------------------------- one bundle per kind

@dataclasses.dataclass(frozen=True)
class Space:
  """One conditional space as pure functions (params: the space's learned parameters, a dict).

  init(key) -> params; sample(key, params, labels) -> (code [N, k], target [N], rho [N], in_sc [N]);
  emotion_code(params, c, strength [S]) -> [S, k], emotion c at each strength (0: neutral, 1: full);
  class_codes(params, labels [N]) -> [N, k], each label at full strength (Table 3);
  back_code(params, labels, cls_logits_real, coord_real, key=None) -> [N, k], the cycle's code
  (Eq. 8); key draws the original's training-mode noise where the space samples it (else unused);
  g_terms(params, code, target, rho, in_sc, cls_logits_fake, coord_fake) -> {name: scalar}: the
  kind's G-loss terms (g_cls and its own), added to L_G with the weights named in g_weights;
  random_codes(key, params, labels) -> [N, k], codes of a generated set (FED, Sec. 5);
  ere_grid() -> [K, k], the ERE search grid (Sec. 5.3); directions(params) -> [C-1] angles or None;
  modes(params) -> (mu [C, 2], Sigma [C, 2, 2]) or None; label_distribution(params, z) -> [N, C]
  or None; log(params) -> {name: scalar} for the training log.
  """
  kind: str
  num_classes: int
  code_dim: int
  coord_dim: int  # outputs of D_coord (Eq. 6): 2 for a learned space, 0 for one-hot conditions
  neutral_radius: Optional[float]  # codes closer to the origin are neutral (linear: tau)
  in_disc: bool  # codes live in the unit disc (linear) rather than the square / simplex
  g_metrics: tuple
  g_weights: tuple  # ((term, config.loss weight name), ...) beyond L_adv, L_rec and L_cls^f
  init: Callable
  sample: Callable
  emotion_code: Callable
  class_codes: Callable
  back_code: Callable
  g_terms: Callable
  random_codes: Callable
  ere_grid: Callable
  directions: Callable
  modes: Callable
  label_distribution: Optional[Callable]
  log: Callable


def masked_mean(x, mask):
  mask = mask.astype(jnp.float32)
  return jnp.sum(x * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def masked_ce(logits, labels, mask=None):
  """Mean softmax cross-entropy over rows with a valid label (and mask) (Eqs. 4, 5, 10)."""
  num_classes = logits.shape[-1]
  valid = (labels >= 0) & (labels < num_classes)
  if mask is not None:
    valid = valid & mask
  return masked_mean(losses.softmax_cross_entropy(logits, jnp.clip(labels, 0, num_classes - 1)),
                     valid)


def _targets(key, labels, num_classes):
  """c with the law of c' (Eqs. 4-5): the batch's labels permuted, unknown ones drawn uniformly."""
  n = labels.shape[0]
  k_perm, k_fill, k_code = jax.random.split(key, 3)
  target = jax.random.permutation(k_perm, labels)
  target = jnp.where(target >= 0, target, jax.random.randint(k_fill, (n,), 0, num_classes))
  return target, k_code


def _none(params):
  del params
  return None


def _linear(num_classes, *, tau, num_random, code_noise, random_rho, cycle, direction_param,
            neutral_code, info_reduction, cycle_codes, ere_radius_step, ere_angle_steps, **_):
  """GANmut's polar space (Sec. 3 Approach I, Sec. 4.1)."""
  c = num_classes

  def init(key):
    if direction_param == "vector":  # original code: a normalised Linear(2, C-1) weight x 1e-4
      b = 1e-4 / np.sqrt(2.0)
      return {"v": jax.random.uniform(key, (c - 1, 2), minval=-b, maxval=b)}
    return {"theta": jax.random.uniform(key, (c - 1,), maxval=2 * jnp.pi)}  # theta_c (Sec. 3)

  if direction_param == "vector":
    def thetas(params):  # v / |v| = (cos theta, sin theta) with theta = atan2(v_y, v_x)
      return jnp.arctan2(params["v"][:, 1], params["v"][:, 0])
  else:
    def thetas(params):
      return params["theta"]

  def codes(params, labels, rho):
    """z = (theta_c, rho) for emotions c, and 0 for neutral (c = 0) whatever rho (Sec. 4.1)."""
    theta = thetas(params)[jnp.clip(labels - 1, 0, None)]
    return jnp.where((labels > 0)[:, None], polar_to_xy(theta, rho), 0.0)

  def sample(key, params, labels):
    target, k_code = _targets(key, labels, c)
    z, rho, in_sc = sample_codes(k_code, thetas(params), target, num_random, tau=tau,
                                 noise=code_noise, random_rho=random_rho,
                                 neutral_code=neutral_code)
    return z, target, rho, in_sc

  def emotion_code(params, cls, strength):
    s = jnp.asarray(strength, jnp.float32)
    return codes(params, jnp.full(s.shape, cls, jnp.int32), s)

  def class_codes(params, labels):
    labels = jnp.asarray(labels, jnp.int32)
    return codes(params, labels, jnp.ones(labels.shape))

  def back_code(params, labels, cls_r, coord_r, key=None):
    if cycle == "eq8":
      return coord_r  # D_coord(x) (Eq. 8)
    rho = rho_hat(cls_r)
    z = codes(params, labels, rho)  # original code: (theta_c', rho_hat(x))
    if cycle_codes == "sampled":  # ... through G in training mode (models/model_linear_2d.py)
      z = train_mode_codes(key, z, rho, num_random, code_noise)
    return z

  def g_terms(params, code, target, rho, in_sc, cls_f, coord_f):
    return {"g_cls": masked_ce(cls_f, target, in_sc),  # Eq. 4 on S_c
            "g_rho": masked_mean(jnp.square(rho_hat(cls_f) - rho), rho > tau),  # Eq. 7
            "g_info": info_loss(coord_f, code, info_reduction)}  # Eq. 6

  def random_codes(key, params, labels):
    """Uniform angle, rho by random_rho (the paper's U[0, 1]; 'original' too: no FED in the code)."""
    n = labels.shape[0]
    _, k2, k3 = jax.random.split(key, 3)
    th = jax.random.uniform(k2, (n,), maxval=2 * jnp.pi)
    u = jax.random.uniform(k3, (n,))
    return polar_to_xy(th, jnp.sqrt(u) if random_rho == "disc" else u)

  def ere_grid():
    """Sec. 5.3: the origin plus radii in steps of 0.05 x angles in steps of 2 pi / 21."""
    radii = np.arange(1, int(round(1 / ere_radius_step)) + 1) * ere_radius_step
    ang = np.arange(ere_angle_steps) * 2 * np.pi / ere_angle_steps
    r, a = np.meshgrid(radii, ang)
    return np.concatenate([np.zeros((1, 2)), np.stack([r.ravel() * np.cos(a.ravel()),
                                                       r.ravel() * np.sin(a.ravel())], -1)])

  return Space(
      kind="linear", num_classes=c, code_dim=2, coord_dim=2, neutral_radius=tau, in_disc=True,
      g_metrics=("g_adv", "g_cls", "g_rho", "g_info", "g_rec", "g_loss"),
      g_weights=(("g_info", "lambda_info_g"), ("g_rho", "lambda_rho")),  # Eq. 2
      init=init, sample=sample, emotion_code=emotion_code, class_codes=class_codes,
      back_code=back_code, g_terms=g_terms, random_codes=random_codes, ere_grid=ere_grid,
      directions=thetas, modes=_none, label_distribution=None,
      log=lambda params: {"theta_mean": jnp.mean(thetas(params))})


def _gaussian(num_classes, *, num_random, div_on_all_rows, ere_square_step, fed_noise=0.1,
              **_):
  """GGANmut's mixture of Gaussians over [-1, 1]^2 (Sec. 3 Approach II, Sec. 4.2)."""
  c = num_classes

  def init(key):  # mu_c = tanh(w_c), Sigma_c from log-eigenvalues and angle (identity at start)
    return {"w": 0.5 * jax.random.normal(key, (c, 2)), "log_eigs": jnp.zeros((c, 2)),
            "angle": jnp.zeros((c,))}

  def modes(params):
    return mode_means(params["w"]), mode_covariances(params["log_eigs"], params["angle"])

  def sample(key, params, labels):
    target, k_code = _targets(key, labels, c)
    n = labels.shape[0]
    in_sc = jnp.arange(n) >= num_random
    mode_target = (jnp.arange(n) - num_random) % c  # S_c rows cover every mode in turn
    target = jnp.where(in_sc, mode_target, target)
    mus, _ = modes(params)
    z = jnp.where(in_sc[:, None], mus[mode_target], sample_square(k_code, n))
    return z, target, jnp.zeros(n), in_sc

  def emotion_code(params, cls, strength):
    """mu_0 + s (mu_c - mu_0) (ASSUMPTION: the path from the neutral mode)."""
    s = jnp.asarray(strength, jnp.float32)
    mus = mode_means(params["w"])
    return mus[0] + s[:, None] * (mus[cls] - mus[0])

  def class_codes(params, labels):
    return mode_means(params["w"])[jnp.asarray(labels, jnp.int32)]

  def back_code(params, labels, cls_r, coord_r, key=None):
    return coord_r  # D_coord(x) (Eq. 8)

  def g_terms(params, code, target, rho, in_sc, cls_f, coord_f):
    neg_d2 = -mahalanobis_sq(code, *modes(params))  # the logits of p_z (Sec. 4.2)
    div_rows = jnp.ones_like(in_sc) if div_on_all_rows else ~in_sc
    # Eq. 9 in log space: log(p + eps) would cap the term once a narrow mode's p_z underflows
    return {"g_div": masked_mean(losses.symmetric_kl_logits(neg_d2, cls_f), div_rows),
            "g_cls": masked_ce(cls_f, target, in_sc)}  # Eq. 10

  def random_codes(key, params, labels):
    """The modes of the (permuted) labels plus N(0, fed_noise^2) (ASSUMPTION: the paper's "some
    noise" is 0.1)."""
    k1, k2, _ = jax.random.split(key, 3)
    labels = jax.random.permutation(k1, jnp.asarray(labels, jnp.int32))
    codes = class_codes(params, labels)
    return codes + fed_noise * jax.random.normal(k2, codes.shape)

  def ere_grid():
    """Sec. 5.3: steps of 0.1 over [-1, 1]^2."""
    t = np.arange(-1, 1 + 1e-6, ere_square_step)
    u, v = np.meshgrid(t, t)
    return np.stack([u.ravel(), v.ravel()], -1)

  def directions(params):  # the direction of each mode from the neutral mode
    mus = mode_means(params["w"])
    d = mus[1:] - mus[0]
    return jnp.arctan2(d[:, 1], d[:, 0])

  return Space(
      kind="gaussian", num_classes=c, code_dim=2, coord_dim=2, neutral_radius=None, in_disc=False,
      g_metrics=("g_adv", "g_div", "g_cls", "g_rec", "g_loss"),
      g_weights=(("g_div", "lambda_div"),),
      init=init, sample=sample, emotion_code=emotion_code, class_codes=class_codes,
      back_code=back_code, g_terms=g_terms, random_codes=random_codes, ere_grid=ere_grid,
      directions=directions, modes=modes,
      label_distribution=lambda params, z: label_distribution(z, *modes(params)),
      log=lambda params: {})


def _onehot(num_classes, **_):
  """StarGAN's fixed one-hot conditions (the baseline of Sec. 5)."""
  c = num_classes
  eye = lambda: jnp.eye(c, dtype=jnp.float32)

  def sample(key, params, labels):
    target, _ = _targets(key, labels, c)
    n = labels.shape[0]
    return jax.nn.one_hot(target, c), target, jnp.ones(n), jnp.ones(n, bool)

  def emotion_code(params, cls, strength):
    """(1 - s) onehot(neutral) + s onehot(c) (Sec. 5.2)."""
    s = jnp.asarray(strength, jnp.float32)[:, None]
    return (1 - s) * eye()[0] + s * eye()[cls]

  def random_codes(key, params, labels):
    """The test label distribution (Sec. 5): the labels, permuted."""
    k1, _, _ = jax.random.split(key, 3)
    return eye()[jax.random.permutation(k1, jnp.asarray(labels, jnp.int32))]

  return Space(
      kind="stargan", num_classes=c, code_dim=c, coord_dim=0, neutral_radius=None, in_disc=False,
      g_metrics=("g_adv", "g_cls", "g_rec", "g_loss"), g_weights=(),
      init=lambda key: {}, sample=sample, emotion_code=emotion_code,
      class_codes=lambda params, labels: eye()[jnp.asarray(labels, jnp.int32)],
      back_code=lambda params, labels, cls_r, coord_r, key=None: jax.nn.one_hot(labels, c),
      g_terms=lambda params, code, target, rho, in_sc, cls_f, coord_f: {
          "g_cls": masked_ce(cls_f, target)},
      random_codes=random_codes, ere_grid=lambda: np.eye(c, dtype=np.float32),
      directions=_none, modes=_none, label_distribution=None, log=lambda params: {})


_BUILDERS = {"linear": _linear, "gaussian": _gaussian, "stargan": _onehot}


@functools.lru_cache(maxsize=None)
def _space_of(kind, num_classes, options):
  return _BUILDERS[kind](num_classes, **dict(options))


def space_of(kind: str, num_classes: int, *, tau: float = 0.2, num_random: int = 7,
             code_noise: float = 0.0, random_rho: str = "polar", cycle: str = "eq8",
             direction_param: str = "angle", div_on_all_rows: bool = False,
             neutral_code: str = "disc", info_reduction: str = "sum",
             cycle_codes: str = "exact", ere_radius_step: float = 0.05,
             ere_angle_steps: int = 21, ere_square_step: float = 0.1) -> Space:
  """The Space of `kind` ('linear', 'gaussian', 'stargan') over `num_classes` emotions (0: neutral).

  tau: the neutral radius (Sec. 4.1); num_random: S_r rows per batch; code_noise, random_rho: see
  sample_codes; cycle: 'eq8' | 'approximate' (original code); direction_param: 'angle' (theta_c,
  the paper) | 'vector' (original code); div_on_all_rows: L_div on every row (original code) or
  S_r only (Sec. 4.2); neutral_code: 'disc' (Sec. 4.1) | 'origin' (original code), see
  sample_codes; info_reduction: 'sum' (Eq. 6) | 'mean' (original code), see info_loss;
  cycle_codes: 'exact' | 'sampled' (the approximate cycle's code through the original's
  training-mode sampler, train_mode_codes); ere_*: the Sec. 5.3 grids. Equal arguments give the
  same object.
  """
  if kind not in _BUILDERS:
    raise ValueError(f"conditional space {kind!r}: expected one of {', '.join(KINDS)}")
  if random_rho not in RANDOM_RHO:
    raise ValueError(f"random_rho={random_rho!r}: expected one of {', '.join(RANDOM_RHO)}")
  if direction_param not in DIRECTION_PARAMS:
    raise ValueError(f"direction_param={direction_param!r}: expected one of "
                     f"{', '.join(DIRECTION_PARAMS)}")
  for name, value, allowed in (("neutral_code", neutral_code, NEUTRAL_CODES),
                               ("info_reduction", info_reduction, INFO_REDUCTIONS),
                               ("cycle_codes", cycle_codes, CYCLE_CODES),
                               ("cycle", cycle, ("eq8", "approximate"))):
    if value not in allowed:
      raise ValueError(f"{name}={value!r}: expected one of {', '.join(allowed)}")
  options = (("tau", float(tau)), ("num_random", int(num_random)),
             ("code_noise", float(code_noise)), ("random_rho", random_rho), ("cycle", cycle),
             ("direction_param", direction_param), ("div_on_all_rows", bool(div_on_all_rows)),
             ("neutral_code", neutral_code), ("info_reduction", info_reduction),
             ("cycle_codes", cycle_codes),
             ("ere_radius_step", float(ere_radius_step)), ("ere_angle_steps", int(ere_angle_steps)),
             ("ere_square_step", float(ere_square_step)))
  return _space_of(kind, int(num_classes), options)
