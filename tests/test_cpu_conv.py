"""affectjax.nn.cpu: the CPU formulations of convolutions equal lax's (values, gradients, and the
gradient penalty's second order), at the shapes of GANmut's networks, with the same parameters."""
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from affectjax import losses
from affectjax.nn import cpu, cpu_kernel, stargan

DN = ("NHWC", "HWIO", "NHWC")
TOL = dict(rtol=2e-4, atol=2e-4)


def _close(a, b, scale=1.0):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=TOL["rtol"],
                             atol=TOL["atol"] * scale)


def _rand(key, shape, scale=1.0):
  return scale * jax.random.normal(jax.random.PRNGKey(key), shape, jnp.float32)


def _grad_checks(f, g, x, w):
  """f and g agree in value, in both first-order gradients, and in the gradient with respect to
  w of the squared input-gradient norm (the gradient penalty's second order)."""
  _close(f(x, w), g(x, w))
  loss = lambda h: lambda x, w: jnp.sum(jnp.sin(h(x, w)))
  for a, b in zip(jax.grad(loss(f), (0, 1))(x, w), jax.grad(loss(g), (0, 1))(x, w)):
    _close(a, b)
  gp = lambda h: lambda x, w: jnp.sum(jnp.square(jax.grad(loss(h))(x, w)))
  a, b = jax.grad(gp(f), 1)(x, w), jax.grad(gp(g), 1)(x, w)
  _close(a, b, scale=float(jnp.max(jnp.abs(b))))


# GANmut's discriminator layers whose outputs are at most 4x4 (the patch path) at 64x64 and at the
# paper's 128x128: (input H, Cin, Cout, kernel, stride, padding); D6 at 64 narrowed 1024 -> 256
# input channels to keep the lax reference (the slow one on CPU) fast.
D_LAYERS = [(8, 256, 512, 4, 2, 1), (4, 512, 1024, 4, 2, 1), (2, 256, 2048, 4, 2, 1),
            (1, 2048, 1, 3, 1, 1), (1, 2048, 7, 1, 1, "VALID"), (2, 2048, 1, 3, 1, 1),
            (2, 2048, 2, 2, 1, "VALID")]


@pytest.mark.parametrize("h,cin,cout,k,s,p", D_LAYERS)
def test_patches_conv_equals_lax_conv(h, cin, cout, k, s, p):
  pad = p if isinstance(p, str) else [(p, p), (p, p)]
  x, w = _rand(0, (2, h, h, cin)), _rand(1, (k, k, cin, cout), 1 / np.sqrt(k * k * cin))
  ref = jax.jit(lambda x, w: lax.conv_general_dilated(x, w, (s, s), pad, dimension_numbers=DN))
  new = jax.jit(lambda x, w: cpu.patches_conv(x, w, (s, s), pad))
  _grad_checks(new, ref, x, w)


def test_patches_conv_on_padding_only_taps_and_odd_shapes():
  """Taps that only see padding are left out: exact on a 1x1 map with a 3x3 kernel, on 'SAME'
  padding of an odd map with stride 2, on a 2x2 map with a 4x4 kernel."""
  for h, k, s, p in ((1, 3, 1, [(1, 1), (1, 1)]), (5, 4, 2, "SAME"), (2, 4, 2, [(1, 1), (1, 1)]),
                     (3, 3, 1, [(2, 0), (0, 2)])):
    x, w = _rand(2, (3, h, h, 5)), _rand(3, (k, k, 5, 4))
    ref = lambda x, w: lax.conv_general_dilated(x, w, (s, s), p, dimension_numbers=DN)
    _grad_checks(lambda x, w: cpu.patches_conv(x, w, (s, s), p), ref, x, w)


@pytest.mark.parametrize("h,cin,cout", [(16, 256, 128), (32, 128, 64)])
def test_subpixel_conv_transpose_equals_lax_at_the_generator_shapes(h, cin, cout):
  x, w = _rand(4, (2, h, h, cin)), _rand(5, (4, 4, cin, cout), 1 / np.sqrt(16 * cin))
  ref = jax.jit(lambda x, w: lax.conv_transpose(x, w, (2, 2), "SAME", dimension_numbers=DN))
  new = jax.jit(cpu.subpixel_conv_transpose)
  _close(new(x, w), ref(x, w))
  loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))
  for a, b in zip(jax.grad(loss(new), (0, 1))(x, w), jax.grad(loss(ref), (0, 1))(x, w)):
    _close(a, b)


def test_conv_transpose_module_has_flax_parameters_and_values():
  x = _rand(6, (2, 5, 5, 3))
  for kw in (dict(padding="SAME"), dict(padding="SAME", use_bias=False), dict(padding="VALID")):
    ref, new = nn.ConvTranspose(4, (4, 4), strides=(2, 2), **kw), cpu.ConvTranspose(
        4, (4, 4), strides=(2, 2), **kw)
    p_ref, p_new = ref.init(jax.random.PRNGKey(0), x), new.init(jax.random.PRNGKey(0), x)
    assert jax.tree.structure(p_ref) == jax.tree.structure(p_new)
    jax.tree.map(np.testing.assert_array_equal, p_ref, p_new)
    _close(new.apply(p_ref, x), ref.apply(p_ref, x))


def _nets(size, monkeypatch, enabled):
  monkeypatch.setattr(cpu, "ENABLED", enabled)
  return (stargan.Generator(conv_dim=8, repeat_num=1),
          stargan.Discriminator(image_size=size, conv_dim=16, repeat_num=6, num_classes=7))


def _conv_count(fn, *args):
  jaxpr = str(jax.make_jaxpr(fn)(*args))
  return jaxpr.count("conv_general_dilated")


@pytest.mark.skipif(not os.environ.get("AFFECTJAX_SLOW"),
                    reason="StarGAN's whole networks, 40 s (the patch products' unit tests run): AFFECTJAX_SLOW=1")
@pytest.mark.parametrize("size", [64, 128])
def test_stargan_networks_equal_with_and_without_the_cpu_path(size, monkeypatch):
  """G and D (the real depth; narrow widths), same parameter trees, outputs, gradients, and the
  WGAN-GP penalty's gradient with respect to D's parameters (second order)."""
  x, code = jnp.tanh(_rand(7, (2, size, size, 3))), _rand(8, (2, 2))
  key = jax.random.PRNGKey(9)
  out = {}
  for enabled in (False, True):
    gen, disc = _nets(size, monkeypatch, enabled)
    g_params = gen.init(jax.random.PRNGKey(0), x, code)["params"]
    d_params = disc.init(jax.random.PRNGKey(1), x)["params"]
    g_loss = jax.jit(jax.value_and_grad(
        lambda gp, dp: jnp.sum(disc.apply({"params": dp}, gen.apply({"params": gp}, x, code))[1])))
    critic = lambda dp: lambda im: disc.apply({"params": dp}, im)[0]
    d_gp = jax.jit(jax.value_and_grad(
        lambda dp: losses.gradient_penalty(critic(dp), x, 0.5 * x[::-1], key)))
    convs = _conv_count(lambda dp: disc.apply({"params": dp}, x), d_params)
    out[enabled] = (g_params, d_params, g_loss(g_params, d_params), d_gp(d_params), convs)
  (gp0, dp0, gl0, dgp0, c0), (gp1, dp1, gl1, dgp1, c1) = out[False], out[True]
  jax.tree.map(np.testing.assert_array_equal, (gp0, dp0), (gp1, dp1))  # same trees, same init
  assert jax.tree.structure((gp0, dp0)) == jax.tree.structure((gp1, dp1))
  _close(gl1[0], gl0[0], scale=abs(float(gl0[0])))
  jax.tree.map(lambda a, b: _close(a, b, scale=float(jnp.max(jnp.abs(b))) + 1e-3), gl1[1], gl0[1])
  _close(dgp1[0], dgp0[0])
  jax.tree.map(lambda a, b: _close(a, b, scale=float(jnp.max(jnp.abs(b))) + 1e-3), dgp1[1], dgp0[1])
  # the patch path replaced D's convolutions with outputs of 4x4 and below (3 of the trunk's 6 at
  # 64x64, 2 at 128x128, and the 3 heads), and only those
  assert c0 == 9 and c1 == (3 if size == 64 else 4)


def test_gpu_tracing_keeps_lax_convolutions(monkeypatch):
  """Traced for another backend, the networks are lax's convolutions as before."""
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  x = _rand(10, (1, 64, 64, 3))
  disc = stargan.Discriminator(image_size=64, conv_dim=4, repeat_num=6)
  params = disc.init(jax.random.PRNGKey(0), x)
  assert _conv_count(lambda p: disc.apply(p, x), params) == 9
  gen = stargan.Generator(conv_dim=4, repeat_num=1)
  g_params = gen.init(jax.random.PRNGKey(0), x, jnp.zeros((1, 2)))
  assert "conv_general_dilated" in str(jax.make_jaxpr(gen.apply)(g_params, x, jnp.zeros((1, 2))))
  assert str(jax.make_jaxpr(gen.apply)(g_params, x, jnp.zeros((1, 2)))).count("lhs_dilation=(2, 2)") == 2


@pytest.mark.skipif(not os.environ.get("AFFECTJAX_SLOW"), reason="whole networks, 30 s (the patch products' unit tests run): AFFECTJAX_SLOW=1")
def test_vae_and_rbvae_networks_equal_with_and_without_the_cpu_path(monkeypatch):
  """LeVAsa's conv VAE (64x64: 4x4 maps at the encoder's end and decoder's start) and Rb-VAE's
  encoder (its 4x4 trunk level): same parameters, values and gradients either way."""
  from affectjax.nn import rbvae, vae
  x = jnp.tanh(_rand(11, (2, 64, 64, 3)))
  z = _rand(12, (2, 8))
  nets = [(vae.Encoder(8), lambda m, p: jnp.sum(jnp.sin(m.apply(p, x)[0])), (x,)),
          (vae.Decoder(64), lambda m, p: jnp.sum(jnp.sin(m.apply(p, z))), (z,)),
          (rbvae.Encoder(4, channels=(32, 16, 8, 8, 8), hidden=16),
           lambda m, p: jnp.sum(jnp.sin(m.apply(p, x)[0])), (x,))]
  for net, loss, args in nets:
    out = []
    for enabled in (False, True):
      monkeypatch.setattr(cpu, "ENABLED", enabled)
      params = net.init(jax.random.PRNGKey(0), *args)
      out.append((params, jax.jit(jax.value_and_grad(lambda p: loss(net, p)))(params)))
    (p0, (v0, g0)), (p1, (v1, g1)) = out
    jax.tree.map(np.testing.assert_array_equal, p0, p1)
    _close(v1, v0, scale=abs(float(v0)))
    jax.tree.map(lambda a, b: _close(a, b, scale=float(jnp.max(jnp.abs(b))) + 1e-3), g1, g0)


# (N, H, Cin, Cout, kernel, stride, padding) at GANmut's 64x64 shapes, narrowed in batch and width:
# G's 7x7, 4x4/2 down, 3x3 residual, D's first 4x4/2; odd sizes and uneven pads for the remainders
CANONICAL = [(2, 16, 10, 8, 7, 1, (3, 3)), (2, 16, 8, 16, 4, 2, (1, 1)), (2, 8, 16, 16, 3, 1, (1, 1)),
             (2, 9, 3, 8, 4, 2, (1, 1)), (2, 11, 3, 4, 5, 3, (2, 0)), (2, 8, 4, 3, 4, 2, (1, 2)),
             (2, 9, 4, 6, 1, 2, (0, 0)), (2, 10, 3, 4, 2, 3, (0, 0))]  # kernel <= stride: untouched rows


@pytest.mark.parametrize("n,h,cin,cout,k,s,p", CANONICAL)
def test_canonical_conv_equals_lax_conv(n, h, cin, cout, k, s, p):
  x, w = _rand(0, (n, h, h, cin)), _rand(1, (k, k, cin, cout), 1 / np.sqrt(k * k * cin))
  ref = jax.jit(lambda x, w: lax.conv_general_dilated(x, w, (s, s), (p, p), dimension_numbers=DN))
  new = jax.jit(lambda x, w: cpu.canonical_conv(x, w, (s, s), (p, p)))
  _grad_checks(new, ref, x, w)


@pytest.mark.parametrize("kernel", [False, True])
def test_strided_input_gradient_convolves_no_dilated_cotangent(kernel, monkeypatch):
  """A stride-2 convolution's input gradient is per-phase stride-1 convolutions (a quarter of the
  multiply-adds of lax's convolution over the zero-dilated cotangent), by lax or by the kernel."""
  if kernel and not cpu_kernel.available():
    pytest.skip("no C++ compiler or AVX2/FMA here")
  monkeypatch.setattr(cpu_kernel, "conv_supports", lambda *a: kernel)
  x, w = _rand(0, (2, 16, 16, 8)), _rand(1, (4, 4, 8, 8))
  grad = jax.jit(jax.grad(lambda x: jnp.sum(jnp.sin(cpu.canonical_conv(x, w, (2, 2), ((1, 1), (1, 1)))))))
  convs = [l for l in grad.lower(x).compile().as_text().splitlines()
           if " convolution(" in l or f'custom_call_target="{cpu_kernel.CONV_TARGET}"' in l]
  assert len(convs) == 5 and not any("lhs_dilate" in l for l in convs), convs  # 1 forward + 4 phases
  assert all((cpu_kernel.CONV_TARGET in l) == kernel for l in convs), convs


def test_canonical_conv_gradients_stay_canonical_inside_cond(monkeypatch):
  """Inside a lax.cond branch every convolution of the gradient is NHWC x HWIO -> NHWC (XLA:CPU
  emits the others there unrewritten and many times slower); lax's own gradient is not. (With
  XLA's convolutions: where the kernels are built, they compute all of these.)"""
  monkeypatch.setattr(cpu_kernel, "conv_supports", lambda *a: False)
  monkeypatch.setattr(cpu_kernel, "supports", lambda *a: False)
  x, w = _rand(0, (2, 8, 8, 4)), _rand(1, (3, 3, 4, 4))

  def labels(conv):
    grad = jax.grad(lambda w, x: jnp.sum(jnp.sin(conv(jnp.tanh(conv(x, w)), w))))
    f = jax.jit(lambda w, x, p: lax.cond(p, grad, lambda w, x: jnp.zeros_like(w), w, x))
    hlo = f.lower(w, x, True).compile().as_text()
    return {l.split("dim_labels=")[1].split(",")[0] for l in hlo.splitlines()
            if " convolution(" in l}

  canonical = labels(lambda x, w: cpu.canonical_conv(x, w, (1, 1), ((1, 1), (1, 1))))
  assert canonical == {"b01f_01io->b01f"}, canonical
  plain = labels(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                                       dimension_numbers=DN))
  assert plain - {"b01f_01io->b01f"}, plain  # the case canonical_conv exists for


def test_cpu_conv_takes_canonical_path_and_matches_lax(monkeypatch):
  """cpu.Conv on a large output (lax path) gives lax's values and gradients through canonical_conv."""
  calls = []
  monkeypatch.setattr(cpu, "canonical_conv", lambda *a: calls.append(1) or cpu._conv(*a))
  x = _rand(0, (2, 16, 16, 8))
  m = cpu.Conv(16, (4, 4), strides=2, padding=1, use_bias=False)
  ref = nn.Conv(16, (4, 4), strides=2, padding=1, use_bias=False)
  v = m.init(jax.random.PRNGKey(0), x)
  f = lambda mod: lambda p, x: jnp.sum(jnp.sin(mod.apply({"params": p}, x)))
  _close(m.apply(v, x), ref.apply(v, x))
  for a, b in zip(jax.grad(f(m), (0, 1))(v["params"], x), jax.grad(f(ref), (0, 1))(v["params"], x)):
    jax.tree.map(_close, a, b)
  assert calls  # on CPU: the path whose gradients stay canonical


def test_canonical_conv_under_vmap_of_a_closed_over_numpy_array():
  """jit(vmap(conv)) over a numpy constant: custom_vjp's batching asserts on numpy values (the
  multi-seed init crashed on it); the values are lax's."""
  x = np.random.default_rng(0).normal(size=(2, 1, 8, 8, 3)).astype(np.float32)
  w = jnp.asarray(np.random.default_rng(1).normal(size=(3, 3, 3, 4)).astype(np.float32))
  conv = lambda a: cpu.canonical_conv(a, w, (1, 1), ((1, 1), (1, 1)))
  got = jax.jit(lambda: jax.vmap(conv)(x))()
  want = jax.vmap(lambda a: cpu._conv(a, w, (1, 1), ((1, 1), (1, 1))))(jnp.asarray(x))
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_cnn_ceiling_and_evaluator_classifier_equal_with_and_without_the_cpu_path(monkeypatch):
  """The CNN ceiling (3x3/2 down to 4x4: its last layer a patch product) and the GANmut evaluator's
  VGG blocks (3x3/1, canonical gradients): same parameters, values and gradients either way."""
  from affectjax.evaluate import cnn_ceiling
  from affectjax.nn import classifier
  x = jnp.tanh(_rand(13, (2, 32, 32, 3)))
  nets = [(cnn_ceiling.CNN((("va", "regression", (2,)), ("emotion", "classes", (1, 7)))),
           lambda out: jnp.sum(jnp.sin(out["va"])) + jnp.sum(jnp.sin(out["emotion"]))),
          (classifier.VGGClassifier(7, widths=(8, 16), feature_dim=16),
           lambda out: jnp.sum(jnp.sin(out[0])) + jnp.sum(jnp.sin(out[1])))]
  for net, loss in nets:
    out = []
    for enabled in (False, True):
      monkeypatch.setattr(cpu, "ENABLED", enabled)
      params = net.init(jax.random.PRNGKey(0), x)
      out.append((params, jax.jit(jax.value_and_grad(lambda p: loss(net.apply(p, x))))(params),
                  str(jax.make_jaxpr(net.apply)(params, x))))
    (p0, (v0, g0), j0), (p1, (v1, g1), j1) = out
    assert j0 != j1  # the CPU path was taken
    jax.tree.map(np.testing.assert_array_equal, p0, p1)
    _close(v1, v0, scale=abs(float(v0)))
    jax.tree.map(lambda a, b: _close(a, b, scale=float(jnp.max(jnp.abs(b))) + 1e-3), g1, g0)
