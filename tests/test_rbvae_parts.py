"""Rb-VAE building blocks: Laplace likelihood, density-ratio losses (Eqs. 8-10), baseline
regularisers (beta-VAE, DIP-VAE-I/II, sVAE) and the App. D networks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

from affectjax.losses import density_ratio as dr
from affectjax.losses import disentangle as dis
from affectjax.losses import likelihood as lk
from affectjax.nn import rbvae


# ----------------------------------------------------------------------------- likelihoods

def test_laplace_nll_closed_form_and_scipy():
  rng = np.random.default_rng(0)
  x, m = rng.uniform(-1, 1, (3, 4, 4, 3)), rng.uniform(-1, 1, (3, 4, 4, 3))
  got = np.asarray(lk.laplace_nll(x, m))  # default lambda = 0.01 (Sec. 5.2)
  closed = np.sum(np.abs(x - m) / 0.01 + np.log(0.02), axis=(1, 2, 3))
  np.testing.assert_allclose(got, closed, rtol=1e-5)
  ref = -stats.laplace.logpdf(x, loc=m, scale=0.01).reshape(3, -1).sum(1)
  np.testing.assert_allclose(got, ref, rtol=1e-5)
  b = rng.uniform(0.1, 2, (1, 4, 4, 3))  # an array scale broadcasts
  ref_b = -stats.laplace.logpdf(x, loc=m, scale=b).reshape(3, -1).sum(1)
  np.testing.assert_allclose(lk.laplace_nll(x, m, b), ref_b, rtol=1e-5)
  g = jax.grad(lambda mm: lk.laplace_nll(x, mm, 0.5).sum())(jnp.asarray(m))
  np.testing.assert_allclose(g, -np.sign(x - m) / 0.5, rtol=1e-6)  # the L1 loss's gradient


def test_gaussian_nll_matches_scipy():
  rng = np.random.default_rng(1)
  v, mu, logvar = rng.normal(size=(5, 7)), rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
  ref = -stats.norm.logpdf(v, mu, np.exp(0.5 * logvar)).sum(-1)
  np.testing.assert_allclose(lk.gaussian_nll(v, mu, logvar), ref, rtol=1e-5)


# -------------------------------------------------------------------- density ratio (Eqs. 7-10)

# q = N(0.5, 1.5^2) (encoder pairs), p = N(0, 1) (generator pairs); d*(x) = log q(x) - log p(x).
MQ, SQ = 0.5, 1.5


def _log_ratio(x):
  return stats.norm.logpdf(x, MQ, SQ) - stats.norm.logpdf(x, 0, 1)


def _population_loss(logit_fn):
  sp = lambda a: np.logaddexp(0.0, a)
  f = lambda x: 0.5 * (stats.norm.pdf(x, MQ, SQ) * sp(-logit_fn(x)) + stats.norm.pdf(x) * sp(logit_fn(x)))
  return integrate.quad(f, -20, 20, limit=200)[0]


def test_discriminator_loss_is_minimal_at_the_log_density_ratio():
  # Pointwise: q(x) softplus(-d) + p(x) softplus(d) has zero derivative at d = log q/p.
  xs = np.linspace(-3, 3, 13)
  inf = jnp.float32(jnp.inf)  # L(d, -inf) and L(inf, d) isolate the q-side and p-side terms
  pointwise = lambda d, x: 2 * (stats.norm.pdf(x, MQ, SQ) * dr.ratio_discriminator_loss(d, -inf)
                                + stats.norm.pdf(x) * dr.ratio_discriminator_loss(inf, d))
  for x in xs:
    grad = jax.grad(lambda d: pointwise(d, x))(jnp.float32(_log_ratio(x)))
    assert abs(float(grad)) < 1e-6
  # Population: L(d*) = log 2 - JS(q, p), from an independent integral of JS's definition.
  mix = lambda x: 0.5 * (stats.norm.pdf(x, MQ, SQ) + stats.norm.pdf(x))
  kl_to_mix = lambda pdf: integrate.quad(lambda x: pdf(x) * np.log(pdf(x) / mix(x)), -20, 20, limit=200)[0]
  js = 0.5 * kl_to_mix(lambda x: stats.norm.pdf(x, MQ, SQ)) + 0.5 * kl_to_mix(stats.norm.pdf)
  best = _population_loss(_log_ratio)
  assert abs(best - (np.log(2) - js)) < 1e-6
  for perturbed in (lambda x: _log_ratio(x) + 0.3, lambda x: 1.3 * _log_ratio(x),
                    lambda x: _log_ratio(x) - 0.2 * x, lambda x: 0.0 * x):
    assert _population_loss(perturbed) > best + 1e-4
  # Monte Carlo with the library function agrees with the integral.
  rng = np.random.default_rng(2)
  xq, xp = rng.normal(MQ, SQ, 200_000), rng.normal(0, 1, 200_000)
  mc = float(dr.ratio_discriminator_loss(_log_ratio(xq), _log_ratio(xp)))
  assert abs(mc - best) < 5e-3
  mc_shift = float(dr.ratio_discriminator_loss(_log_ratio(xq) + 0.3, _log_ratio(xp) + 0.3))
  assert mc_shift > mc


def test_symmetric_kl_estimate_at_the_optimal_discriminator():
  rng = np.random.default_rng(3)
  xq, xp = rng.normal(MQ, SQ, 400_000), rng.normal(0, 1, 400_000)
  kl = lambda m1, s1, m2, s2: np.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
  sym = kl(MQ, SQ, 0, 1) + kl(0, 1, MQ, SQ)
  est = float(dr.symmetric_kl_estimate(_log_ratio(xq), _log_ratio(xp)))
  assert abs(est - sym) < 0.02, (est, sym)


def test_logistic_fit_recovers_the_log_ratio():
  # q = N(1, 1), p = N(-1, 1): log q/p = 2x. A linear discriminator a x + b trained on the loss.
  kq, kp = jax.random.split(jax.random.PRNGKey(0))
  xq = 1.0 + jax.random.normal(kq, (4000,))
  xp = -1.0 + jax.random.normal(kp, (4000,))
  loss = lambda w: dr.ratio_discriminator_loss(w[0] * xq + w[1], w[0] * xp + w[1])
  step = lambda _, w: w - 2.0 * jax.grad(loss)(w)
  w = jax.lax.fori_loop(0, 400, step, jnp.zeros(2))
  assert abs(float(w[0]) - 2.0) < 0.2 and abs(float(w[1])) < 0.15


def test_srbvae_objectives_compose_eqs_8_9_10():
  rng = np.random.default_rng(4)
  a, b, c, d = (rng.normal(size=6).astype(np.float32) for _ in range(4))
  np.testing.assert_allclose(dr.srbvae_adversarial_loss(a, b, c, d),
                             a.mean() - b.mean() + c.mean() - d.mean(), rtol=1e-5)
  sp = lambda t: np.log1p(np.exp(t))
  disc = 0.5 * (sp(-a).mean() + sp(b).mean()) + 0.5 * (sp(-c).mean() + sp(d).mean())
  np.testing.assert_allclose(dr.srbvae_discriminator_loss(a, b, c, d), disc, rtol=1e-5)
  # Algorithm 1: psi descends mean d on encoder pairs, theta ascends mean d on generator pairs.
  gq, gp = jax.grad(dr.srbvae_adversarial_loss, argnums=(0, 1))(a, b, c, d)
  np.testing.assert_allclose(gq, 1 / 6, rtol=1e-6)
  np.testing.assert_allclose(gp, -1 / 6, rtol=1e-6)
  assert float(dr.encoder_ratio_loss(a)) == pytest.approx(a.mean(), rel=1e-5)
  assert float(dr.generator_ratio_loss(b)) == pytest.approx(-b.mean(), rel=1e-5)
  terms = [rng.uniform(size=6) for _ in range(5)]
  expect = terms[0].mean() + terms[1].mean() + (terms[2] + terms[3]).mean() + terms[4].mean()
  np.testing.assert_allclose(dr.srbvae_reconstruction_loss(*terms), expect, rtol=1e-5)


# ----------------------------------------------------------------- baseline regularisers

def _np_dip(cov, lod, ld):
  off = sum(cov[i, j] ** 2 for i in range(len(cov)) for j in range(len(cov)) if i != j)
  return lod * off + ld * sum((cov[i, i] - 1) ** 2 for i in range(len(cov)))


def test_beta_vae_and_dip_vae_against_numpy():
  rng = np.random.default_rng(5)
  mu = rng.normal(size=(64, 4)) @ rng.normal(size=(4, 4))
  logvar = rng.normal(size=(64, 4)) * 0.3
  kl = 0.5 * (mu**2 + np.exp(logvar) - logvar - 1).sum(-1)
  np.testing.assert_allclose(dis.beta_vae_kl(mu, logvar, 4.0), 4.0 * kl, rtol=1e-5)
  cov = np.cov(mu, rowvar=False, bias=True)
  np.testing.assert_allclose(dis.latent_covariance(mu), cov, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(dis.dip_vae_i(mu, 3.0, 7.0), _np_dip(cov, 3.0, 7.0), rtol=1e-4)
  np.testing.assert_allclose(dis.dip_vae_i(mu, 2.0), _np_dip(cov, 2.0, 20.0), rtol=1e-4)
  agg = cov + np.diag(np.exp(logvar).mean(0))  # E[Sigma] + Cov[mu]
  np.testing.assert_allclose(dis.dip_vae_ii(mu, logvar, 3.0, 7.0), _np_dip(agg, 3.0, 7.0), rtol=1e-4)
  np.testing.assert_allclose(dis.dip_vae_ii(mu, logvar, 2.0), _np_dip(agg, 2.0, 2.0), rtol=1e-4)
  # zero exactly when the covariance is I: whitened means (DIP-I); DIP-II adds E[Sigma] on top.
  white = mu - mu.mean(0)
  white = white @ np.linalg.inv(np.linalg.cholesky(np.cov(white, rowvar=False, bias=True))).T
  assert float(dis.dip_vae_i(white, 10.0)) < 1e-6
  assert float(dis.dip_vae_ii(white, np.full_like(logvar, -30.0), 10.0)) < 1e-6
  assert float(dis.dip_vae_ii(white, np.zeros_like(logvar), 1.0)) == pytest.approx(4.0, rel=1e-4)


def test_svae_is_the_unsupervised_eqs_8_to_10():
  rng = np.random.default_rng(6)
  lq, lp, xn, zn = (rng.normal(size=8).astype(np.float32) for _ in range(4))
  np.testing.assert_allclose(dis.svae_loss(lq, lp, xn, zn), lq.mean() - lp.mean() + xn.mean() + zn.mean(),
                             rtol=1e-5)
  np.testing.assert_allclose(dis.svae_discriminator_loss(lq, lp), dr.ratio_discriminator_loss(lq, lp))


# ----------------------------------------------------------------------------- networks

TINY = dict(channels=(8, 8))  # 4 -> 8 pixels: one up-sampling / average-pooling stage


def _params(module, *args, seed=0):
  """Random parameters with init's structure (eval_shape: no slow compile of the initialisers)."""
  shapes = jax.eval_shape(module.init, jax.random.PRNGKey(0), *args)
  rng = np.random.default_rng(seed)
  fill = lambda s: jnp.asarray(rng.normal(0, 1 / np.sqrt(max(1, np.prod(s.shape[:-1]))), s.shape), s.dtype)
  return jax.tree.map(fill, shapes)


def test_pixel_norm_and_nearest_upsampling():
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 3, 3, 5)) * 7
  np.testing.assert_allclose(jnp.mean(jnp.square(rbvae.pixel_norm(x)), -1), 1.0, rtol=1e-5)
  a = jnp.arange(4.0).reshape(1, 2, 2, 1)
  np.testing.assert_array_equal(rbvae.upsample_nearest(a)[0, :, :, 0],
                                [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])


def test_tiny_networks_shapes_and_values():
  k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(0), 4)
  x = jax.random.uniform(k1, (3, 8, 8, 3), minval=-1, maxval=1)
  z, e = jax.random.normal(k2, (3, 5)), jax.random.normal(k3, (3, 4))
  g = rbvae.Generator(**TINY)
  gp = _params(g, z, e)
  g_apply = jax.jit(g.apply)
  out = g_apply(gp, z, e)
  assert out.shape == (3, 8, 8, 3) and float(jnp.abs(out).max()) < 1.0
  assert float(jnp.abs(out - g_apply(gp, z, e + 1.0)).max()) > 1e-4  # G uses e
  enc = rbvae.RbEncoder(z_dim=5, e_dim=4, hidden=16, **TINY)
  ep = _params(enc, x)
  (mz, lz), (me, le) = jax.jit(enc.apply)(ep, x)
  assert mz.shape == lz.shape == (3, 5) and me.shape == le.shape == (3, 4)
  assert bool(jnp.isfinite(jnp.concatenate([mz, lz, me, le], 1)).all())
  assert set(ep["params"]) == {"z_encoder", "e_encoder"}  # two encoders, separate weights
  zonly = jax.jit(lambda p, a: enc.apply(p, a, method=rbvae.RbEncoder.z_posterior))(ep, x)
  np.testing.assert_allclose(zonly[0], mz, rtol=1e-5, atol=1e-6)
  d_xi = rbvae.Discriminator(hidden=16, latent_hidden=16, **TINY)
  dp = _params(d_xi, x, z, e)
  d_apply = jax.jit(d_xi.apply, static_argnames="train")
  logits = d_apply(dp, x, z, e)
  assert logits.shape == (3,)
  np.testing.assert_array_equal(logits, d_apply(dp, x, z, e))  # eval: no dropout
  run = lambda key: d_apply(dp, x, z, e, train=True, rngs={"dropout": key})
  np.testing.assert_array_equal(run(k1), run(k1))  # dropout from an explicit key
  assert float(jnp.abs(run(k1) - run(k2)).max()) > 0  # rate 0.25 drops features
  d_gamma = rbvae.Discriminator(hidden=16, latent_hidden=16, **TINY)
  gp2 = jax.eval_shape(d_gamma.init, k4, x, z)  # d_gamma(x, z): no e input
  assert jax.eval_shape(d_gamma.apply, gp2, x, z).shape == (3,)
  lat_in = lambda p: p["params"]["Dense_1"]["kernel"].shape[0]
  assert lat_in(dp) == 9 and lat_in(gp2) == 5


def test_paper_sizes_by_shape_only():
  z = jax.ShapeDtypeStruct((2, 32), jnp.float32)
  x = jax.ShapeDtypeStruct((2, 64, 64, 3), jnp.float32)
  key = jax.random.PRNGKey(0)
  g = rbvae.Generator()
  gp = jax.eval_shape(g.init, key, z, z)
  assert jax.eval_shape(g.apply, gp, z, z).shape == (2, 64, 64, 3)
  enc = rbvae.RbEncoder()
  ep = jax.eval_shape(enc.init, key, x)
  (mz, _), (me, _) = jax.eval_shape(enc.apply, ep, x)
  assert mz.shape == me.shape == (2, 32)
  d = rbvae.Discriminator()
  dp = jax.eval_shape(d.init, key, x, z, z)
  assert jax.eval_shape(d.apply, dp, x, z, z).shape == (2,)
  g96 = rbvae.Generator(channels=(256, 256, 256, 128, 64, 32), base_size=3)  # AffectNet 96x96
  assert jax.eval_shape(g96.apply, jax.eval_shape(g96.init, key, z, z), z, z).shape == (2, 96, 96, 3)
