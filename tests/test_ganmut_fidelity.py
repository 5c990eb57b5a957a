"""GANmut's and GGANmut's `:original` losses against float64 transcriptions of the original code.

The transcriptions follow stefanodapolito/GANmut: solver.py's train() (the D and G steps of both
parametrizations), models/model_linear_2d.py's Generator.forward in mode 'train' and
models/model_gaussian_2d.py's Generator.forward. They share only the random numbers with affectjax
(drawn by the same keys) and the networks: tiny float64 stand-ins, because affectjax.nn's StarGAN
returns float32 (the networks' equality with the original's is checked apart from these formulas).
Issue 23 items 1-4: L_info averaged over the code's coordinates, the approximate cycle through G's
training-mode sampler, neutral codes at the origin, and L_div in log space.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from affectjax.affect import conditional as cs
from affectjax.methods import ganmut
from conftest import load_config

N, SIZE, C = 16, 4, 7


@pytest.fixture(autouse=True)
def x64():
  with jax.enable_x64(True):
    yield


class TinyG(nn.Module):
  """A stand-in G(x, z): one 3x3 conv over the image with the code tiled as channels, tanh."""

  @nn.compact
  def __call__(self, x, code):
    b, h, w, _ = x.shape
    z = jnp.broadcast_to(code[:, None, None, :], (b, h, w, code.shape[-1]))
    y = nn.Conv(4, (3, 3), padding=1, param_dtype=jnp.float64, dtype=jnp.float64)(
        jnp.concatenate([x, z], -1))
    return jnp.tanh(nn.Conv(3, (1, 1), param_dtype=jnp.float64, dtype=jnp.float64)(jnp.tanh(y)))


class TinyD(nn.Module):
  """A stand-in D(x) -> (D_src patch map, D_cls logits, D_coord), with tanh features so that the
  gradient penalty has a non-constant gradient."""

  @nn.compact
  def __call__(self, x):
    dense = lambda k: nn.Dense(k, param_dtype=jnp.float64, dtype=jnp.float64)
    h = jnp.tanh(nn.Conv(5, (2, 2), strides=2, param_dtype=jnp.float64, dtype=jnp.float64)(x))
    src = nn.Conv(1, (2, 2), padding=1, use_bias=False, param_dtype=jnp.float64,
                  dtype=jnp.float64)(h)
    flat = h.reshape(x.shape[0], -1)
    return src, dense(C)(flat), dense(2)(flat)


def _config(arg):
  c = load_config("ganmut", arg)
  c.data.image_size = SIZE
  return c


def _setup(seed, labels):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.uniform(-1, 1, (N, SIZE, SIZE, 3)))
  gen, disc = TinyG(), TinyD()
  k_g, k_d = jax.random.split(jax.random.key(seed))
  g_net = gen.init(k_g, x, jnp.zeros((N, 2)))["params"]
  # scaled D weights: logits of a few units, so softmaxes and the cycle's rho_hat(x) are not flat
  d_net = jax.tree.map(lambda w: 3.0 * w, disc.init(k_d, x)["params"])
  return x, jnp.asarray(labels, jnp.int32), gen, disc, g_net, d_net, rng


def _objective(fn, config, gen, disc, g_params, d_params, x, labels, key):
  """(loss, metrics) of one of GANmut's objectives (d_objective, g_objective) on images x."""
  out = fn({"g": g_params, "d": d_params}, None, {"data": {"image": x, "label": labels}}, key,
           0, ganmut.Context(gen, disc, ganmut.space_of(config), config))
  return out.losses["d" if fn is ganmut.d_objective else "g"], out.metrics


def _close(got, want, what):
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-6, err_msg=what)


def _tree_close(got, want, what):
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9 * np.abs(b).max(),
                               err_msg=f"{what} {jax.tree_util.keystr(path)}")


# ------------------------------------------------------------------ the original's formulas

def _ce(logits, labels):
  """F.cross_entropy: mean over rows."""
  return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(labels.shape[0]), labels])


def _gp(d_src, x_real, x_fake, alpha):
  """Solver.gradient_penalty on x_hat = alpha x_real + (1 - alpha) x_fake."""
  x_hat = alpha * x_real + (1 - alpha) * x_fake
  dydx = jax.grad(lambda im: jnp.sum(d_src(im)))(x_hat).reshape(x_hat.shape[0], -1)
  return jnp.mean((jnp.sqrt(jnp.sum(dydx ** 2, 1)) - 1) ** 2)


def _linear_train_expr(axes_weight, onehot, strength, noise, angle, n_r=5):
  """model_linear_2d.Generator.forward(mode='train')'s code: the one-hot's axis (normalised
  weight rows; the neutral column selects none) times the strength plus 0.075 N(0, 1), and the
  first n_r rows on a random angle at their strength."""
  axes = axes_weight / jnp.linalg.norm(axes_weight, axis=1, keepdims=True)
  expr = (onehot[:, 1:] @ axes) * strength[:, None] + noise * 0.075
  rand = jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1) * strength[:, None]
  return jnp.where((jnp.arange(expr.shape[0]) < n_r)[:, None], rand, expr)


def _original_linear_d(d_params, g_net, axes_weight, x, label_org, label_trg, strength, draws,
                       alpha, gen, disc):
  """solver.py, parametrization 'linear', '2. Train the discriminator' (lambda_cls 1, gp 10,
  lambda_d_info 1)."""
  D = lambda im: disc.apply({"params": d_params}, im)
  src, cls, _ = D(x)
  d_loss_real, d_loss_cls = -jnp.mean(src), _ce(cls, label_org)
  cord = _linear_train_expr(axes_weight, jax.nn.one_hot(label_trg, C), strength, draws["noise"],
                            draws["random_angle"])
  x_fake = jax.lax.stop_gradient(gen.apply({"params": g_net}, x, cord))
  src_f, _, cord_hat = D(x_fake)
  d_loss_info = jnp.mean((cord_hat - cord) ** 2)  # F.mse_loss
  gp = _gp(lambda im: D(im)[0], x, x_fake, alpha)
  return d_loss_real + jnp.mean(src_f) + d_loss_cls + 10.0 * gp + d_loss_info


def _original_linear_g(g_net, axes_weight, d_params, x, label_org, label_trg, strength, draws,
                       cycle_draws, gen, disc, lambda_g_strength=4.0):
  """solver.py, parametrization 'linear', '3. Train the generator', cycle_loss 'approximate'."""
  D = lambda im: disc.apply({"params": d_params}, im)
  G = lambda im, e: gen.apply({"params": g_net}, im, e)
  _, cls_real, _ = jax.lax.stop_gradient(D(x))
  cord = _linear_train_expr(axes_weight, jax.nn.one_hot(label_trg, C), strength, draws["noise"],
                            draws["random_angle"])
  x_fake = G(x, cord)
  out_src, out_cls, cord_hat = D(x_fake)
  g_loss_cls = _ce(out_cls[5:], label_trg[5:])
  mask = (strength > 0.2).astype(x.dtype)
  hat = jnp.max(jax.nn.softmax(out_cls, 1), 1)
  g_loss_strength = jnp.sum((hat * mask - strength * mask) ** 2) / jnp.sum(mask)
  g_loss_info = jnp.mean((cord_hat - cord) ** 2)
  strength_real = jnp.max(jax.nn.softmax(cls_real, 1), 1)
  back = _linear_train_expr(axes_weight, jax.nn.one_hot(label_org, C), strength_real,
                            cycle_draws["noise"], cycle_draws["random_angle"])
  g_loss_rec = jnp.mean(jnp.abs(x - G(x_fake, back)))
  return (-jnp.mean(out_src) + 10.0 * g_loss_rec + g_loss_cls
          + lambda_g_strength * g_loss_strength + g_loss_info)


def _gaussian_maha(w, axes, angles, expr):
  """model_gaussian_2d.Generator.forward's squared Mahalanobis distances, C = R diag(|a|) R^T."""
  cos, sin = jnp.cos(angles), jnp.sin(angles)
  a0, a1 = jnp.abs(axes[:, 0]), jnp.abs(axes[:, 1])
  c00, c11 = a0 * cos * cos + a1 * sin * sin, a0 * sin * sin + a1 * cos * cos
  c01, c10 = a0 * cos * sin - a1 * sin * cos, a0 * sin * cos - a1 * cos * sin
  cov = jnp.stack([jnp.stack([c00, c01], -1), jnp.stack([c10, c11], -1)], -2)
  inv = jnp.linalg.inv(cov)
  v = expr[:, None, :] - jnp.tanh(w)[None]
  return (v[..., 0] * v[..., 0] * inv[:, 0, 0] + v[..., 1] * v[..., 0] * inv[:, 1, 0]
          + v[..., 0] * v[..., 1] * inv[:, 0, 1] + v[..., 1] * v[..., 1] * inv[:, 1, 1])


def _gaussian_expr(w, uniforms):
  """Rows 0..c-1: the modes tanh(mu); the rest uniform over [-1, 1]^2 (Generator.forward)."""
  return jnp.concatenate([jnp.tanh(w), uniforms])


def _original_gaussian_d(d_params, g_net, w, x, label_org, uniforms, alpha, gen, disc):
  """solver.py, parametrization 'gaussian', D step (run with lambda_cls 2; lambda_expr 1)."""
  D = lambda im: disc.apply({"params": d_params}, im)
  src, cls, _ = D(x)
  expr = _gaussian_expr(w, uniforms)
  x_fake = jax.lax.stop_gradient(gen.apply({"params": g_net}, x, expr))
  src_f, _, coord_f = D(x_fake)
  d_loss_expr = jnp.mean((coord_f - expr) ** 2)
  gp = _gp(lambda im: D(im)[0], x, x_fake, alpha)
  return -jnp.mean(src) + jnp.mean(src_f) + 2.0 * _ce(cls, label_org) + 10.0 * gp + d_loss_expr


def _original_gaussian_g(g_net, w, axes, angles, d_params, x, uniforms, gen, disc):
  """solver.py, parametrization 'gaussian', G step: KLDivLoss('batchmean') both ways (lambda_cls
  2), CE of the mode rows (lambda_prediction 0.5), cycle to D's coordinates of x."""
  D = lambda im: disc.apply({"params": d_params}, im)
  G = lambda im, e: gen.apply({"params": g_net}, im, e)
  expr_org = jax.lax.stop_gradient(D(x)[2])
  expr = _gaussian_expr(w, uniforms)
  x_fake = G(x, expr)
  maha = _gaussian_maha(w, axes, angles, expr)
  out_src, out_cls, _ = D(x_fake)
  p, logp = jax.nn.softmax(-maha, 1), jax.nn.log_softmax(-maha, 1)
  q, logq = jax.nn.softmax(out_cls, 1), jax.nn.log_softmax(out_cls, 1)
  n = x.shape[0]
  kl = jnp.sum(p * (logp - logq)) / n + jnp.sum(q * (logq - logp)) / n
  pred = _ce(out_cls[:C], jnp.arange(C))
  rec = jnp.mean(jnp.abs(x - G(x_fake, expr_org)))
  return -jnp.mean(out_src) + 10.0 * rec + 2.0 * kl + 0.5 * pred


# ------------------------------------------------------------------ the tests

LINEAR_LABELS = [0, 3, 0, 1, 0, 2, 4, 0, 5, 6, 0, 1, 2, 0, 3, 4]


def _linear_draws(config, key, labels, space_params):
  """affectjax's sampler outputs and the draws behind them (keys as space.sample splits them)."""
  code, target, rho, in_sc = ganmut.space_of(config).sample(key, space_params, labels)
  draws = cs.code_draws(jax.random.split(key, 3)[2], N)
  np.testing.assert_array_equal(np.sort(np.asarray(target)), np.sort(np.asarray(labels)))
  return code, target, rho, draws


def test_linear_original_d_step_equals_the_original_formulas():
  config = _config("original")
  x, labels, gen, disc, g_net, d_net, rng = _setup(0, LINEAR_LABELS)
  v = jnp.asarray(rng.normal(size=(C - 1, 2)))
  key = jax.random.key(1)
  k_code, k_gp, _ = jax.random.split(key, 3)  # d_objective's split of the step key
  code, target, rho, draws = _linear_draws(config, k_code, labels, {"v": v})
  assert np.any(np.asarray(target)[5:] == 0)  # neutral targets among the S_c rows (item 3)
  # the original's expression_strength: U[0.2, 1] for emotions, 0.2 U[0, 1) for neutral
  strength = jnp.where(target == 0, 0.2 * draws["u"], 0.8 * draws["u"] + 0.2)
  _close(rho, strength, "strength")
  alpha = jax.random.uniform(k_gp, (N, 1, 1, 1))  # gradient_penalty's interpolation weights

  g_params = {"net": g_net, "space": {"v": v}}

  def ours(d_params, c=config):
    return _objective(ganmut.d_objective, c, gen, disc, g_params, d_params, x, labels, key)

  def theirs(d_params):
    return _original_linear_d(d_params, g_net, v, x, labels, target, strength, draws, alpha, gen,
                              disc)

  _close(ours(d_net)[0], theirs(d_net), "L_D")
  _tree_close(jax.grad(lambda d: ours(d)[0])(d_net), jax.grad(theirs)(d_net), "dL_D/dD")
  # item 1: the paper's Eq. 6 (sum over the 2 coordinates) is the default, twice the original's
  paper = config.copy_and_resolve_references()
  paper.loss.info_reduction = "sum"
  m_mean, m_sum = ours(d_net)[1], ours(d_net, paper)[1]
  _close(m_sum["d_info"], 2 * m_mean["d_info"], "Eq. 6 sum = 2 x mean")
  assert _config("").loss.info_reduction == "sum"


def test_linear_original_g_step_equals_the_original_formulas():
  config = _config("original")
  x, labels, gen, disc, g_net, d_net, rng = _setup(2, LINEAR_LABELS)
  v = jnp.asarray(rng.normal(size=(C - 1, 2)))
  step_key = jax.random.key(3)
  key = jax.random.split(step_key, 3)[2]  # g_objective's part of the step key
  _, target, _, draws = _linear_draws(config, key, labels, {"v": v})
  assert np.any(np.asarray(target)[5:] == 0) and np.any(np.asarray(labels)[5:] == 0)
  strength = jnp.where(target == 0, 0.2 * draws["u"], 0.8 * draws["u"] + 0.2)
  cycle_draws = cs.code_draws(jax.random.fold_in(key, 1), N)  # g_objective's cycle key

  def ours(g_params, c=config):
    return _objective(ganmut.g_objective, c, gen, disc, g_params, d_net, x, labels, step_key)

  def theirs(g_params):
    return _original_linear_g(g_params["net"], g_params["space"]["v"], d_net, x, labels, target,
                              strength, draws, cycle_draws, gen, disc)

  g_params = {"net": g_net, "space": {"v": v}}
  _close(ours(g_params)[0], theirs(g_params), "L_G")
  _tree_close(jax.grad(lambda g: ours(g)[0])(g_params), jax.grad(theirs)(g_params), "dL_G/dG")
  # item 2: the paper's default cycle code is noise-free; under it the loss is not the original's
  exact = config.copy_and_resolve_references()
  exact.loss.cycle_codes = "exact"
  rec = lambda c: float(ours(g_params, c)[1]["g_rec"])
  assert abs(rec(exact) - rec(config)) > 1e-4
  assert _config("").loss.cycle_codes == "exact"
  assert _config("gaussian,original").loss.cycle_codes == "exact"  # its cycle is Eq. 8's


def test_neutral_codes_origin_under_original_disc_by_default():
  """Item 3: the original's neutral code is the noise alone (mean radius 0.075 sqrt(pi / 2) =
  0.094); the paper's default draws rho ~ U[0, tau) on a random angle (mean radius tau / 2)."""
  n = 4096
  targets = jnp.zeros(n, jnp.int32)
  thetas = jnp.linspace(0.0, 5.0, C - 1)
  key = jax.random.key(4)
  orig = _config("original").loss
  z, rho, _ = cs.sample_codes(key, thetas, targets, 0, tau=0.2, noise=orig.code_noise,
                              random_rho=orig.random_rho, neutral_code=orig.neutral_code)
  _close(z, orig.code_noise * cs.code_draws(key, n)["noise"], "neutral = noise")
  np.testing.assert_allclose(np.linalg.norm(np.asarray(z), axis=1).mean(),
                             0.075 * np.sqrt(np.pi / 2), rtol=0.03)
  paper = _config("").loss
  assert paper.neutral_code == "disc" and paper.code_noise == 0.0
  z, rho, _ = cs.sample_codes(key, thetas, targets, 0, tau=0.2, noise=paper.code_noise,
                              random_rho=paper.random_rho, neutral_code=paper.neutral_code)
  _close(np.linalg.norm(np.asarray(z), axis=1), rho, "radius = rho")
  np.testing.assert_allclose(np.asarray(rho).mean(), 0.1, rtol=0.03)


GAUSSIAN_LABELS = [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0, 1]
# affectjax puts S_r (num_random = 9 rows) first and the modes after; the original the modes first
# (rows 0-6) and the uniform codes after. The losses are means over rows, so the original sees the
# same (image, label, code) rows in its own order.
PERM = np.r_[9:16, 0:9]


def _gaussian_params(rng):
  return {"w": jnp.asarray(rng.normal(0, 0.7, (C, 2))),
          "log_eigs": jnp.asarray(rng.normal(0, 0.5, (C, 2))),
          "angle": jnp.asarray(rng.uniform(-1, 1, C))}


def test_gaussian_original_d_step_equals_the_original_formulas():
  config = _config("gaussian,original")
  x, labels, gen, disc, g_net, d_net, rng = _setup(5, GAUSSIAN_LABELS)
  space = _gaussian_params(rng)
  key = jax.random.key(6)
  k_code, k_gp, _ = jax.random.split(key, 3)  # d_objective's split of the step key
  code = ganmut.space_of(config).sample(k_code, space, labels)[0]
  alpha = jax.random.uniform(k_gp, (N, 1, 1, 1))
  g_params = {"net": g_net, "space": space}

  def ours(d_params):
    return _objective(ganmut.d_objective, config, gen, disc, g_params, d_params, x, labels, key)[0]

  def theirs(d_params):
    return _original_gaussian_d(d_params, g_net, space["w"], x[PERM], labels[PERM], code[:9],
                                alpha[PERM], gen, disc)

  _close(ours(d_net), theirs(d_net), "L_D")
  _tree_close(jax.grad(ours)(d_net), jax.grad(theirs)(d_net), "dL_D/dD")


def test_gaussian_original_g_step_equals_the_original_formulas():
  config = _config("gaussian,original")
  x, labels, gen, disc, g_net, d_net, rng = _setup(7, GAUSSIAN_LABELS)
  space = _gaussian_params(rng)
  step_key = jax.random.key(8)
  code = ganmut.space_of(config).sample(jax.random.split(step_key, 3)[2], space, labels)[0]

  def ours(g_params):
    return _objective(ganmut.g_objective, config, gen, disc, g_params, d_net, x, labels,
                      step_key)[0]

  def theirs(g_params):
    s = g_params["space"]  # the original's |a| is affectjax's exp(log_eigs)
    return _original_gaussian_g(g_params["net"], s["w"], jnp.exp(s["log_eigs"]), s["angle"],
                                d_net, x[PERM], code[:9], gen, disc)

  g_params = {"net": g_net, "space": space}
  _close(ours(g_params), theirs(g_params), "L_G")
  _tree_close(jax.grad(ours)(g_params), jax.grad(theirs)(g_params), "dL_G/dG")


def _numpy_log_space_div(code, w, log_eigs, angle, logits):
  """Eq. 9 per row in float64 NumPy from log-probabilities (logsumexp with the max shifted)."""
  c, s = np.cos(angle), np.sin(angle)
  rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
  cov = rot @ (np.exp(log_eigs)[:, :, None] * np.swapaxes(rot, 1, 2))
  diff = code[:, None, :] - np.tanh(w)[None]
  d2 = np.einsum("nci,cij,ncj->nc", diff, np.linalg.inv(cov), diff)

  def log_softmax(a):
    a = a - a.max(1, keepdims=True)
    return a - np.log(np.exp(a).sum(1, keepdims=True))

  lp, lq = log_softmax(-d2), log_softmax(logits)
  return np.sum((np.exp(lp) - np.exp(lq)) * (lp - lq), 1)


@pytest.mark.parametrize("arg", ["gaussian", "gaussian,original"])
def test_gaussian_divergence_is_log_space_for_narrow_modes(arg):
  """Item 4: with narrow modes p_z(c) underflows far from mode c; log(p + 1e-8) would cap each
  such term near log(1e-8) = -18.4, where the log-space value keeps growing with d^2."""
  rng = np.random.default_rng(9)
  w = rng.normal(0, 0.8, (C, 2))
  log_eigs = np.full((C, 2), -4.0)  # sigma^2 = 0.018: d^2 between modes in the hundreds
  angle = rng.uniform(-1, 1, C)
  code = rng.uniform(-1, 1, (N, 2))
  logits = rng.normal(0, 2, (N, C))
  space = cs.space_of("gaussian", C, num_random=9, div_on_all_rows="original" in arg)
  params = {"w": jnp.asarray(w), "log_eigs": jnp.asarray(log_eigs), "angle": jnp.asarray(angle)}
  in_sc = jnp.arange(N) >= 9
  got = space.g_terms(params, jnp.asarray(code), jnp.zeros(N, jnp.int32), jnp.zeros(N), in_sc,
                      jnp.asarray(logits), None)["g_div"]
  rows = np.ones(N, bool) if "original" in arg else ~np.asarray(in_sc)
  want = _numpy_log_space_div(code, w, log_eigs, angle, logits)[rows].mean()
  _close(got, want, "L_div")
  p = np.exp(-np.asarray(cs.mahalanobis_sq(jnp.asarray(code), *space.modes(params))))
  p = p / p.sum(1, keepdims=True)
  q = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
  capped = np.sum((p - q) * (np.log(p + 1e-8) - np.log(q + 1e-8)), 1)[rows].mean()
  assert want > 2 * capped  # the old eps form is far off here
  with jax.enable_x64(False):  # float32: p_z underflows to 0, the log-space value stays finite
    got32 = space.g_terms(jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params),
                          jnp.asarray(code, jnp.float32), jnp.zeros(N, jnp.int32), jnp.zeros(N),
                          in_sc, jnp.asarray(logits, jnp.float32), None)["g_div"]
  np.testing.assert_allclose(float(got32), want, rtol=1e-4)


def test_sampled_cycle_is_validated():
  from affectjax.config import ConfigError
  c = load_config("ganmut", "tiny")
  c.loss.cycle_codes = "sampled"
  with pytest.raises(ConfigError, match="cycle_codes"):
    ganmut.validate(c)  # the paper's Eq. 8 cycle samples nothing
  c.loss.cycle = "approximate"
  ganmut.validate(c)
