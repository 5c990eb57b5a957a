"""Convolutions that XLA:CPU runs fast, each equal to the lax convolution it replaces (issue 27).

XLA:CPU's convolution runs near its matrix-product rate on large feature maps, but falls off a cliff
on small ones with many channels: a 4x4 stride-2 convolution from 2x2x1024 to 1x1x2048 (the last
layer of GANmut's discriminator at 64x64) took 5.8 s forward and 12.9 s for its input gradient on
the project's 2-core machine, against 0.1 s as patches x matrix product. Its transposed convolution
is a convolution over the zero-dilated input (4x the multiply-adds of a 4x4 stride-2 kernel).

So on the CPU backend (jax.default_backend() == 'cpu' when the network is traced):
- `conv_general_dilated` (pass it to nn.Conv) computes convolutions whose output has at most
  PATCH_MAX_OUTPUT_PIXELS pixels as strided slices of the padded input concatenated along channels,
  times the reshaped kernel (one matrix product), leaving out the kernel taps that only ever see
  padding (their terms are exactly zero);
- `ConvTranspose` (same parameters as nn.ConvTranspose) computes a 4x4 stride-2 'SAME' transposed
  convolution as four 2x2 convolutions, one per output phase (sub-pixel), interleaved.
- the other convolutions (and the sub-pixel phases) go through `canonical_conv`: its value and
  input gradient (a convolution of the cotangent) are NHWC x HWIO convolutions, its filter gradient
  read in place, all three by the hand-written kernels of `cpu_kernel` where they can be built;
  otherwise by XLA, in the form it runs at full speed inside a lax.cond branch too (lax's own
  gradient convolutions run 5-120x slower there).
Everywhere else, and on GPU/TPU, they are lax.conv_general_dilated and lax.conv_transpose
unchanged. Parameter names, shapes and initial values are those of nn.Conv / nn.ConvTranspose.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
from jax import lax
import flax.linen as nn

from affectjax.nn import cpu_kernel

# Largest output (H x W) computed as patches x matrix on CPU: measured on the 2-core machine, the
# patch product wins from 4x4 outputs down (D's last three layers, its heads), ties at 8x8, and
# loses to XLA's convolution on larger maps (G's 16x16-64x64 layers), where the patch matrix is big.
PATCH_MAX_OUTPUT_PIXELS = 16
_NHWC = lax.ConvDimensionNumbers(lhs_spec=(0, 3, 1, 2), rhs_spec=(3, 2, 0, 1), out_spec=(0, 3, 1, 2))


# AFFECTJAX_CPU_CONV=0 keeps lax's convolutions on CPU too (A/B timing; the values are the same)
ENABLED = os.environ.get("AFFECTJAX_CPU_CONV", "1") != "0"
# False: lax's own gradients for the convolutions canonical_conv would take (A/B timing)
CANONICAL_GRADIENTS = True


def on_cpu() -> bool:
  """Whether the network being traced runs on XLA:CPU in one process (and the replacements are
  enabled). Multi-process CPU runs keep lax's convolutions: there the replaced networks trained
  away from the 1-process run (tests/test_pod.py: 76 % of LeVAsa's parameters within 2e-4 after
  20 steps, against > 99.99 % with lax's convolutions), which is not yet understood."""
  return ENABLED and jax.default_backend() == "cpu" and jax.process_count() == 1


def _pads(padding, in_hw, k_hw, strides):
  if isinstance(padding, str):
    return lax.padtype_to_pads(in_hw, k_hw, strides, padding)
  return [tuple(p) for p in padding]


def patches_conv(x, w, strides, padding, precision=None, preferred_element_type=None):
  """lax.conv_general_dilated(x, w, strides, padding) for NHWC x and HWIO w, as strided slices of
  the padded input stacked on the channel axis times w reshaped to [kh*kw*cin, cout]."""
  n, h, wd, c = x.shape
  kh, kw, _, co = w.shape
  (pt, pb), (pl, pr) = _pads(padding, (h, wd), (kh, kw), strides)
  sh, sw = strides
  ho = (h + pt + pb - kh) // sh + 1
  wo = (wd + pl + pr - kw) // sw + 1
  # a tap that only ever reads padding adds exact zeros: leave it (and its kernel rows) out
  rows = [i for i in range(kh) if any(0 <= i + sh * o - pt < h for o in range(ho))]
  cols = [j for j in range(kw) if any(0 <= j + sw * o - pl < wd for o in range(wo))]
  if not rows or not cols:  # every tap reads padding: the output is zero
    return jnp.zeros((n, ho, wo, co), preferred_element_type or jnp.result_type(x, w))
  # pad only as far as the kept taps reach
  top, left = pt - rows[0], pl - cols[0]
  bottom = max(0, rows[-1] + sh * (ho - 1) - pt - (h - 1))
  right = max(0, cols[-1] + sw * (wo - 1) - pl - (wd - 1))
  xp = x[:, max(0, -top):, max(0, -left):]
  xp = jnp.pad(xp, ((0, 0), (max(0, top), bottom), (max(0, left), right), (0, 0)))
  r0, c0 = rows[0], cols[0]
  taps = [lax.slice(xp, (0, i - r0, j - c0, 0), (n, i - r0 + sh * (ho - 1) + 1,
                                                  j - c0 + sw * (wo - 1) + 1, c), (1, sh, sw, 1))
          for i in rows for j in cols]
  p = taps[0] if len(taps) == 1 else jnp.concatenate(taps, axis=-1)
  k = w[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].reshape(len(rows) * len(cols) * c, co)
  return lax.dot_general(p, k, (((3,), (0,)), ((), ())), precision=precision,
                         preferred_element_type=preferred_element_type)


def _conv(x, w, strides, pads, lhs_dilation=(1, 1), rhs_dilation=(1, 1)):
  return lax.conv_general_dilated(x, w, strides, pads, lhs_dilation=lhs_dilation,
                                  rhs_dilation=rhs_dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"))


def canonical_conv(x, w, strides, pads):
  """lax.conv_general_dilated(x, w, strides, pads) for NHWC x, HWIO w, whose gradients are
  NHWC/HWIO convolutions too: XLA:CPU rewrites lax's gradient convolutions (kernel as OI, batch as
  feature) into that form only at a program's top level; inside a lax.cond branch it emits them
  unrewritten, 5x (input gradient) to 120x (filter gradient) slower (a 3x3 256->256 conv at 16x16,
  batch 16, on the 2-core machine), which made GANmut's cond-gated G step 6.5x slower than
  computing it every step. Where the kernels are built (float32) the value and the input gradient
  are `cpu_kernel.conv` and the filter gradient `cpu_kernel.filter_grad` (it reads x and g in
  place, where XLA transposes both first). Second-order gradients are JAX's own, of this backward
  (whose convolutions are canonical_conv again)."""
  # a tracer may hold a numpy constant (vmap over a closed-over array under jit), which custom_vjp's
  # batching rejects; a copy (elided by XLA) turns it into a jax value
  x, w = (jnp.array(a, copy=True) if isinstance(a, jax.core.Tracer) else a for a in (x, w))
  return _canonical(x, w, strides, pads)


def _forward(x, w, strides, pads):
  """The convolution's value: the hand-written kernel's where it is built (float32), else lax's."""
  if cpu_kernel.conv_supports(x, w, pads):
    return cpu_kernel.conv(x, w, strides, pads)
  return _conv(x, w, strides, pads)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _canonical(x, w, strides, pads):
  return _forward(x, w, strides, pads)


def _canonical_fwd(x, w, strides, pads):
  # itself, not _forward: under a second derivative this rule runs on the outer derivative's
  # tracers, which must meet the custom gradient, not the kernel (which has none)
  return _canonical(x, w, strides, pads), (x, w)


def _canonical_bwd(strides, pads, res, g):
  x, w = res
  kh, kw, _, _ = w.shape
  dx_pads, dw_pads = [], []
  for d, k in enumerate((kh, kw)):
    size, (lo, hi), s = x.shape[1 + d], pads[d], strides[d]
    r = (size + lo + hi - k) % s  # input rows past the last window
    dx_pads.append((k - 1 - lo, k - 1 - hi + r))
    dw_pads.append((lo, hi - r))
  if strides == (1, 1):  # input gradient: g times the flipped kernel with I and O swapped
    dx = _canonical(g, jnp.transpose(lax.rev(w, (0, 1)), (0, 1, 3, 2)), (1, 1), tuple(dx_pads))
  else:
    dx = strided_input_grad(g, w, x.shape[1:3], strides, pads)
  if cpu_kernel.supports(x, g):  # read in place by the hand-written kernel: no transposes
    dw = cpu_kernel.filter_grad(x, g, (kh, kw), strides, tuple(pads))
  else:  # channels of x as the batch, its batch as the features, g as a dilated kernel
    dw = jnp.transpose(_conv(jnp.transpose(x, (3, 1, 2, 0)), jnp.transpose(g, (1, 2, 0, 3)), (1, 1),
                             dw_pads, rhs_dilation=strides), (1, 2, 0, 3))
  return dx.astype(x.dtype), dw.astype(w.dtype)


_canonical.defvjp(_canonical_fwd, _canonical_bwd)


def strided_input_grad(g, w, in_hw, strides, pads):
  """The input gradient of a strided NHWC x HWIO convolution, cotangent g: one stride-1 convolution
  of g per input phase (a, b) (rows a mod s_h, columns b mod s_w) with the kernel taps that reach
  that phase, interleaved (depth-to-space). lax's form convolves g dilated by the strides, s_h*s_w
  times the multiply-adds (mostly zeros): 2.4x slower for LeVAsa's 4x4/2 32x32x32 -> 64 layer."""
  n, gh, gw, _ = g.shape
  ci = w.shape[2]
  # per axis and phase a: the first kernel tap r reaching it, its block offset q, and its length m
  plan = [[((a + lo) % s, (a + lo) // s, -(-(size - a) // s)) for a in range(s)]
          for size, s, (lo, _) in zip(in_hw, strides, pads)]
  mh, mw = (-(-size // s) for size, s in zip(in_hw, strides))  # the longest phase
  rows = []
  for r, q, _ in plan[0]:
    cols = []
    for c, p, _ in plan[1]:
      sub = w[r::strides[0], c::strides[1]]  # the taps reaching this phase
      jh, jw = sub.shape[:2]
      if jh == 0 or jw == 0:  # no tap reaches it (kernel shorter than the stride)
        cols.append(jnp.zeros((n, mh, mw, ci), g.dtype))
        continue
      # dx[s*m + a] = sum_j g[m + q - j] w[s*j + r]: a correlation of g with the flipped taps
      lo_h, lo_w = jh - 1 - q, jw - 1 - p
      gp = lax.pad(g, jnp.zeros((), g.dtype), ((0, 0, 0), (lo_h, mh + jh - 1 - gh - lo_h, 0),
                                               (lo_w, mw + jw - 1 - gw - lo_w, 0), (0, 0, 0)))
      cols.append(_canonical(gp, jnp.transpose(lax.rev(sub, (0, 1)), (0, 1, 3, 2)), (1, 1),
                             ((0, 0), (0, 0))))
    rows.append(jnp.stack(cols, axis=3))  # [N, Mh, Mw, s_w, C]
  y = jnp.stack(rows, axis=2)  # [N, Mh, s_h, Mw, s_w, C]: row s_h*m + a, column s_w*m' + b
  return y.reshape(n, mh * strides[0], mw * strides[1], ci)[:, :in_hw[0], :in_hw[1]]


def conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
                         dimension_numbers=None, feature_group_count=1, batch_group_count=1,
                         precision=None, preferred_element_type=None):
  """lax.conv_general_dilated, computed as patches x matrix for small 2-D outputs on CPU."""
  plain = (lhs.ndim == 4 and feature_group_count == 1 and batch_group_count == 1
           and all(d == 1 for d in (lhs_dilation or (1, 1)))
           and all(d == 1 for d in (rhs_dilation or (1, 1))))
  if plain and on_cpu():
    dn = lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
    if dn == _NHWC:
      h, w = lhs.shape[1:3]
      (pt, pb), (pl, pr) = _pads(padding, (h, w), rhs.shape[:2], window_strides)
      ho = (h + pt + pb - rhs.shape[0]) // window_strides[0] + 1
      wo = (w + pl + pr - rhs.shape[1]) // window_strides[1] + 1
      if 0 < ho * wo <= PATCH_MAX_OUTPUT_PIXELS:
        return patches_conv(lhs, rhs, tuple(window_strides), padding, precision,
                            preferred_element_type)
      if (CANONICAL_GRADIENTS and precision is None and preferred_element_type is None
          and lhs.dtype == rhs.dtype):
        return canonical_conv(lhs, rhs, tuple(window_strides), ((pt, pb), (pl, pr)))
  return lax.conv_general_dilated(lhs, rhs, window_strides, padding, lhs_dilation=lhs_dilation,
                                  rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
                                  feature_group_count=feature_group_count,
                                  batch_group_count=batch_group_count, precision=precision,
                                  preferred_element_type=preferred_element_type)


def Conv(*args, **kwargs) -> nn.Conv:  # noqa: N802  (a drop-in for the nn.Conv constructor)
  """nn.Conv (same parameters and names) whose convolution is `conv_general_dilated` above."""
  return nn.Conv(*args, conv_general_dilated=conv_general_dilated, **kwargs)


# lax.conv_transpose(x, w, (2, 2), 'SAME') with a 4x4 kernel is a VALID convolution of the input
# dilated by 2 and padded by 2: output row 2m + r sums x[m - 1] w[0] + x[m] w[2] (r = 0) and
# x[m] w[1] + x[m + 1] w[3] (r = 1). Per phase r: (offset into x padded by 1, kernel row).
_PHASE_TAPS = (((0, 0), (1, 2)), ((1, 1), (2, 3)))


def subpixel_conv_transpose(x, w, precision=None, preferred_element_type=None):
  """lax.conv_transpose(x, w, (2, 2), 'SAME') for NHWC x, 4x4 HWIO w: four 2x2 convolutions of x
  padded by one, interleaved (depth-to-space); a quarter of the dilated form's multiply-adds."""
  n, h, wd, _ = x.shape
  co = w.shape[-1]
  xp = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  phases = []
  for r in range(2):
    row = []
    for c in range(2):
      (a0, i0), (a1, i1) = _PHASE_TAPS[r]
      (b0, j0), (b1, j1) = _PHASE_TAPS[c]
      k = jnp.stack([jnp.stack([w[i0, j0], w[i0, j1]]), jnp.stack([w[i1, j0], w[i1, j1]])])
      xs = xp[:, a0:a0 + h + 1, b0:b0 + wd + 1]
      if (CANONICAL_GRADIENTS and precision is None and preferred_element_type is None
          and xs.dtype == k.dtype):
        row.append(canonical_conv(xs, k, (1, 1), ((0, 0), (0, 0))))
      else:
        row.append(lax.conv_general_dilated(xs, k, (1, 1), "VALID",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                            precision=precision,
                                            preferred_element_type=preferred_element_type))
    phases.append(jnp.stack(row, axis=3))  # [N, H, W, 2(c), C]
  y = jnp.stack(phases, axis=2)  # [N, H, 2(r), W, 2(c), C]
  return y.reshape(n, 2 * h, 2 * wd, co)


class ConvTranspose(nn.ConvTranspose):
  """nn.ConvTranspose (same parameters, names and initial values); on CPU a 4x4 stride-2 'SAME'
  one without bias dilation or kernel transpose runs as `subpixel_conv_transpose`."""

  @nn.compact
  def __call__(self, inputs):
    ks = (self.kernel_size,) * 2 if isinstance(self.kernel_size, int) else tuple(self.kernel_size)
    strides = tuple(self.strides) if self.strides is not None else (1, 1)
    fast = (on_cpu() and inputs.ndim == 4 and ks == (4, 4) and strides == (2, 2)
            and self.padding == "SAME" and not self.transpose_kernel and self.mask is None
            and self.kernel_dilation in (None, 1, (1, 1)))
    if not fast:
      return nn.ConvTranspose.__call__.__wrapped__(self, inputs)  # flax's own computation
    kernel = self.param("kernel", self.kernel_init, ks + (inputs.shape[-1], self.features),
                        self.param_dtype)
    bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
            if self.use_bias else None)
    inputs, kernel, bias = self.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
    y = subpixel_conv_transpose(inputs, kernel, self.precision, self.preferred_element_type)
    if bias is not None:
      y = y + bias.reshape(1, 1, 1, -1)
    return y
