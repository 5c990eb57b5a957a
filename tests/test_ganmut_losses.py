"""WGAN-GP and the symmetric KL against closed forms."""
import jax
import jax.numpy as jnp
import numpy as np

from affectjax import losses


def test_gradient_penalty_linear_critic_closed_form():
  rng = np.random.default_rng(0)
  w = jnp.array(rng.normal(size=(4, 4, 3)), jnp.float32)
  real = jnp.array(rng.normal(size=(8, 4, 4, 3)), jnp.float32)
  fake = jnp.array(rng.normal(size=(8, 4, 4, 3)), jnp.float32)

  def gp(w):
    critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3)) + 3.0
    return losses.gradient_penalty(critic, real, fake, jax.random.PRNGKey(0))

  nw = float(jnp.linalg.norm(w))
  np.testing.assert_allclose(float(gp(w)), (nw - 1) ** 2, rtol=1e-5)  # grad_x = w everywhere
  np.testing.assert_allclose(np.asarray(jax.grad(gp)(w)), 2 * (nw - 1) * np.asarray(w) / nw,
                             rtol=1e-4, atol=1e-6)
  np.testing.assert_allclose(float(gp(w / nw)), 0.0, atol=1e-6)
  # a quadratic critic sum(x^2)/2 has grad x: the penalty depends on where xhat lies
  quad = losses.gradient_penalty(lambda x: 0.5 * jnp.sum(x ** 2, axis=(1, 2, 3)), real, real,
                                 jax.random.PRNGKey(1))
  want = np.mean((np.linalg.norm(np.asarray(real).reshape(8, -1), axis=1) - 1) ** 2)
  np.testing.assert_allclose(float(quad), want, rtol=1e-5)


def test_wgan_terms():
  r, f = jnp.array([1.0, 3.0]), jnp.array([0.0, -2.0])
  assert float(losses.wgan_critic_loss(r, f)) == -3.0
  assert float(losses.wgan_generator_loss(f)) == 1.0


def test_symmetric_kl_zero_iff_equal_and_symmetric():
  rng = np.random.default_rng(0)
  p = rng.dirichlet(np.ones(7), size=5)
  q = rng.dirichlet(np.ones(7), size=5)
  pq, qp = np.asarray(losses.symmetric_kl(p, q)), np.asarray(losses.symmetric_kl(q, p))
  np.testing.assert_allclose(pq, qp, rtol=1e-6)
  want = np.sum(p * np.log(p / q), 1) + np.sum(q * np.log(q / p), 1)
  np.testing.assert_allclose(pq, want, rtol=1e-5)
  assert np.all(pq > 1e-3)
  np.testing.assert_allclose(np.asarray(losses.symmetric_kl(p, p)), 0.0, atol=1e-7)
  lp, lq = jnp.log(p), jnp.log(q)
  np.testing.assert_allclose(np.asarray(losses.symmetric_kl_logits(lp + 2.0, lq)), want, rtol=1e-4)
  np.testing.assert_allclose(np.asarray(losses.symmetric_kl_logits(lp, lp - 5.0)), 0.0, atol=1e-6)


def test_softmax_cross_entropy():
  logits = jnp.array([[0.0, np.log(3.0)], [2.0, 2.0]])
  np.testing.assert_allclose(np.asarray(losses.softmax_cross_entropy(logits, jnp.array([1, 0]))),
                             [-np.log(0.75), np.log(2)], rtol=1e-6)
