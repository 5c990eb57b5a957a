"""affectjax.nn.cpu_kernel: the hand-written CPU convolution and filter gradient equal independent
NumPy sums and lax's (values, second-order gradients, vmap), nn.cpu uses them, and a machine that
cannot build them falls back to XLA's with a warning."""
import logging
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from affectjax.nn import cpu, cpu_kernel

pytestmark = pytest.mark.skipif(not cpu_kernel.available(), reason="no C++ compiler or AVX2/FMA here")


def _numpy_filter_grad(x, g, k, s, pads):
  """dw[i, j, c, o] = sum x_padded[n, p*s + i, q*s + j, c] g[n, p, q, o], in float64."""
  x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
  (pt, pb), (pl, pr) = pads
  xp = np.pad(x, ((0, 0), (pt, max(pb, 0)), (pl, max(pr, 0)), (0, 0)))
  ho, wo = g.shape[1:3]
  dw = np.zeros((k, k, x.shape[3], g.shape[3]))
  for i in range(k):
    for j in range(k):
      dw[i, j] = np.einsum("npqc,npqo->co", xp[:, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s], g)
  return dw


def _lax_filter_grad(x, g, kernel_hw, strides, pads):
  """The same quantity as lax's gradient of the convolution w.r.t. its kernel."""
  w = jnp.zeros(tuple(kernel_hw) + (x.shape[3], g.shape[3]), x.dtype)
  return jax.vjp(lambda w: cpu._conv(x, w, strides, pads), w)[1](g)[0]


def _case(seed, shape, k, o, s, pads):
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal(shape, np.float32))
  ho = (shape[1] + sum(pads[0]) - k) // s + 1
  wo = (shape[2] + sum(pads[1]) - k) // s + 1
  g = jnp.asarray(rng.standard_normal((shape[0], ho, wo, o), np.float32))
  return x, g


# (x shape, kernel, out channels, stride, pads): sRb-VAE's 3x3 trunk and LeVAsa's 4x4/2 RGB input
# layer (narrowed in batch), channel counts that are no multiple of the kernel's 6-row blocks,
# 8-wide output blocks (O = 8, 24), uneven and zero pads, a kernel wider than the image's edge
CASES = [((4, 32, 32, 16), 3, 16, 1, ((1, 1), (1, 1))), ((2, 64, 64, 3), 4, 32, 2, ((1, 1), (1, 1))),
         ((3, 9, 7, 5), 3, 8, 1, ((1, 1), (1, 1))), ((2, 9, 9, 13), 3, 24, 2, ((0, 0), (0, 0))),
         ((1, 5, 6, 1), 5, 8, 1, ((2, 1), (0, 3))), ((2, 4, 4, 64), 4, 128, 2, ((1, 1), (1, 1))),
         ((2, 3, 3, 7), 4, 8, 1, ((2, 2), (2, 2))),
         # output channels padded to a multiple of 8: LeVAsa's sub-pixel output layer (3 x 4 phases)
         ((4, 32, 32, 16), 3, 12, 1, ((1, 1), (1, 1))), ((2, 6, 6, 4), 3, 3, 1, ((1, 1), (1, 1)))]


@pytest.mark.parametrize("shape,k,o,s,pads", CASES)
def test_filter_grad_equals_numpy_and_lax(shape, k, o, s, pads):
  x, g = _case(0, shape, k, o, s, pads)
  got = jax.jit(cpu_kernel.filter_grad, static_argnums=(2, 3, 4))(x, g, (k, k), (s, s), pads)
  want = _numpy_filter_grad(x, g, k, s, pads)
  scale = np.abs(want).max()
  np.testing.assert_allclose(np.asarray(got), want, atol=2e-6 * scale * np.sqrt(x.shape[0] * g.shape[1] * g.shape[2]) + 1e-6)
  lax_dw = _lax_filter_grad(x, g, (k, k), (s, s), pads)
  np.testing.assert_allclose(np.asarray(got), np.asarray(lax_dw), rtol=1e-4, atol=1e-4 * scale)


def _numpy_conv(x, w, s, pads):
  """y[n, p, q, o] = sum x_padded[n, p*s + i, q*s + j, c] w[i, j, c, o], in float64."""
  x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
  (pt, pb), (pl, pr) = pads
  xp = np.pad(x, ((0, 0), (pt, max(pb, 0)), (pl, max(pr, 0)), (0, 0)))
  k = w.shape[0]
  ho, wo = (xp.shape[1] + min(pb, 0) - k) // s + 1, (xp.shape[2] + min(pr, 0) - k) // s + 1
  y = np.zeros((x.shape[0], ho, wo, w.shape[3]))
  for i in range(k):
    for j in range(k):
      y += np.einsum("npqc,co->npqo", xp[:, i:i + s * (ho - 1) + 1:s, j:j + s * (wo - 1) + 1:s], w[i, j])
  return y


# the filter-gradient cases, the input-gradient phases of a 4x4/2 layer (2x2 VALID over a padded
# cotangent), LeVAsa's 64-channel 3x3 layers, and a bottom/right pad < 0 (lax's negative pad)
CONV_CASES = CASES + [((2, 9, 9, 64), 2, 32, 1, ((0, 0), (0, 0))),
                      ((2, 8, 8, 64), 3, 128, 1, ((1, 1), (1, 1))),
                      ((2, 11, 10, 6), 3, 16, 2, ((1, -1), (2, -2)))]


@pytest.mark.parametrize("shape,k,o,s,pads", CONV_CASES)
def test_conv_equals_numpy_and_lax(shape, k, o, s, pads):
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.standard_normal(shape, np.float32))
  w = jnp.asarray(rng.standard_normal((k, k, shape[3], o), np.float32))
  assert cpu_kernel.conv_supports(x, w, pads)
  got = jax.jit(cpu_kernel.conv, static_argnums=(2, 3))(x, w, (s, s), pads)
  want = _numpy_conv(x, w, s, pads)
  assert got.shape == want.shape
  scale = np.abs(want).max()
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-6 * scale * np.sqrt(k * k * shape[3]))
  lax_y = cpu._conv(x, w, (s, s), pads)
  np.testing.assert_allclose(np.asarray(got), np.asarray(lax_y), rtol=1e-5, atol=1e-5 * scale)


def test_conv_declines_what_it_does_not_compute():
  x, w = jnp.zeros((1, 6, 6, 4)), jnp.zeros((3, 3, 4, 8))
  assert cpu_kernel.conv_supports(x, w, ((1, 1), (0, 0)))
  assert not cpu_kernel.conv_supports(x, w, ((-1, 1), (0, 0)))  # a cropped top: lax's
  assert not cpu_kernel.conv_supports(x, w, ((0, -4), (0, 0)))  # no output row
  assert not cpu_kernel.conv_supports(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), ((1, 1), (1, 1)))


@pytest.mark.parametrize("shape,k,o,s,pads", CASES[2:5])
def test_second_order_gradients_equal_lax(shape, k, o, s, pads):
  """Its gradient w.r.t. x and g (a convolution's input gradient and forward pass) is lax's."""
  x, g = _case(1, shape, k, o, s, pads)
  ct = jnp.asarray(np.random.default_rng(2).standard_normal((k, k, shape[3], o), np.float32))
  loss = lambda fg: lambda x, g: jnp.sum(jnp.sin(fg(x, g, (k, k), (s, s), pads)) * ct)
  got = jax.jit(jax.grad(loss(cpu_kernel.filter_grad), (0, 1)))(x, g)
  want = jax.grad(loss(_lax_filter_grad), (0, 1))(x, g)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))


def test_conv_under_vmap_equals_a_loop():
  rng = np.random.default_rng(7)
  xs = jnp.asarray(rng.standard_normal((3, 2, 8, 8, 4), np.float32))
  ws = jnp.asarray(rng.standard_normal((3, 3, 3, 4, 16), np.float32))
  pads = ((1, 1), (1, 1))
  got = jax.vmap(lambda x, w: cpu_kernel.conv(x, w, (1, 1), pads))(xs, ws)
  for b in range(3):
    np.testing.assert_allclose(got[b], _numpy_conv(xs[b], ws[b], 1, pads), rtol=1e-5, atol=1e-5)


def test_vmap_equals_a_loop():
  rng = np.random.default_rng(3)
  xs = jnp.asarray(rng.standard_normal((3, 2, 8, 8, 4), np.float32))
  gs = jnp.asarray(rng.standard_normal((3, 2, 8, 8, 8), np.float32))
  pads = ((1, 1), (1, 1))
  got = jax.vmap(lambda x, g: cpu_kernel.filter_grad(x, g, (3, 3), (1, 1), pads))(xs, gs)
  for b in range(3):
    np.testing.assert_allclose(got[b], _numpy_filter_grad(xs[b], gs[b], 3, 1, pads), rtol=1e-5, atol=1e-5)


def test_canonical_conv_uses_the_kernels_and_keeps_lax_gradients(monkeypatch):
  """nn.cpu's canonical convolution computes its value, input gradient and filter gradient with
  the kernels (custom calls in the compiled step, no XLA convolution left) and gets lax's
  gradients, also second-order ones through a gradient penalty (GANmut's D), at a real
  GANmut-small shape, narrowed in batch."""
  rng = np.random.default_rng(4)
  x = jnp.asarray(rng.standard_normal((2, 16, 16, 32), np.float32))
  w = jnp.asarray(rng.standard_normal((4, 4, 32, 64), np.float32) * 0.05)
  pads = ((1, 1), (1, 1))

  def penalty(conv):
    def d(x, w):
      return jnp.sum(jnp.tanh(conv(x, w)))

    def loss(w, x):
      gx = jax.grad(d)(x, w)
      return d(x, w) + jnp.sum(jnp.square(jnp.sqrt(jnp.sum(gx ** 2, axis=(1, 2, 3))) - 1.0))
    return jax.jit(jax.value_and_grad(loss, (0, 1)))

  fast = penalty(lambda x, w: cpu.canonical_conv(x, w, (2, 2), pads))
  hlo = fast.lower(w, x).compile().as_text()
  assert "affectjax_filter_grad" in hlo and "affectjax_conv" in hlo and " convolution(" not in hlo
  ref = penalty(lambda x, w: lax.conv_general_dilated(x, w, (2, 2), pads, dimension_numbers=("NHWC", "HWIO", "NHWC")))
  (v1, g1), (v0, g0) = fast(w, x), ref(w, x)
  np.testing.assert_allclose(v1, v0, rtol=1e-5)
  for a, b in zip(g1, g0):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))
  monkeypatch.setattr(cpu_kernel, "supports", lambda x, g: False)  # XLA's convolutions instead
  monkeypatch.setattr(cpu_kernel, "conv_supports", lambda x, w, pads: False)
  slow = penalty(lambda x, w: cpu.canonical_conv(x, w, (2, 2), pads))
  assert "affectjax_" not in slow.lower(w, x).compile().as_text()
  for a, b in zip(slow(w, x)[1], g1):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))


def test_supports_float32_only():
  x = jnp.zeros((1, 4, 4, 3))
  assert cpu_kernel.supports(x, jnp.zeros((1, 4, 4, 16))) and cpu_kernel.supports(x, jnp.zeros((1, 4, 4, 12)))
  assert not cpu_kernel.supports(x.astype(jnp.bfloat16), jnp.zeros((1, 4, 4, 16), jnp.bfloat16))


def test_build_is_cached_and_a_missing_compiler_is_a_clear_error(tmp_path, monkeypatch):
  monkeypatch.setenv("AFFECTJAX_CACHE", str(tmp_path))
  path = cpu_kernel.build()
  assert path.parent == tmp_path / "kernels" and path.exists()
  mtime = path.stat().st_mtime_ns
  assert cpu_kernel.build() == path and path.stat().st_mtime_ns == mtime  # not rebuilt
  assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
  with pytest.raises(OSError, match=re.escape("no C++ compiler 'no-such-c++' on PATH")):
    cpu_kernel.build("no-such-c++")


def test_a_machine_that_cannot_build_it_falls_back_with_a_warning(monkeypatch, caplog):
  monkeypatch.setenv("CXX", "no-such-c++")
  with caplog.at_level(logging.WARNING, logger="affectjax"):
    assert cpu_kernel.available.__wrapped__() is False  # the check itself, not this process's cache
  assert "kernels are off (no C++ compiler 'no-such-c++'" in caplog.text


@pytest.mark.parametrize("shape,k,o,s,pads", CASES)
def test_flop_count_of_a_call_is_xlas_count_of_the_lax_filter_gradient(shape, k, o, s, pads):
  """XLA counts the custom call as 0 FLOPs; flops_in (tools/bench.py's and profile_step's count)
  gives it XLA's count of the convolution it replaces, padding taps excluded like XLA's (output
  channels padded to a multiple of 8 count: the kernel computes them)."""
  x, g = _case(5, shape, k, o, s, pads)
  ours = jax.jit(lambda x, g: cpu_kernel.filter_grad(x, g, (k, k), (s, s), pads)).lower(x, g)
  xla = jax.jit(lambda x, g: _lax_filter_grad(x, g, (k, k), (s, s), pads)).lower(x, g)
  cost = xla.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  assert cpu_kernel.flops_in(ours.as_text()) == cost["flops"] * (-(-o // 8) * 8) / o > 0


@pytest.mark.parametrize("shape,k,o,s,pads", CONV_CASES)
def test_flop_count_of_a_conv_call_is_xlas_count_of_the_lax_convolution(shape, k, o, s, pads):
  rng = np.random.default_rng(8)
  x = jnp.asarray(rng.standard_normal(shape, np.float32))
  w = jnp.asarray(rng.standard_normal((k, k, shape[3], o), np.float32))
  ours = jax.jit(lambda x, w: cpu_kernel.conv(x, w, (s, s), pads)).lower(x, w)
  xla = jax.jit(lambda x, w: cpu._conv(x, w, (s, s), pads)).lower(x, w)
  cost = xla.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  assert cpu_kernel.flops_in(ours.as_text()) == cost["flops"] * (-(-o // 8) * 8) / o > 0
