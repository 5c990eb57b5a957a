"""Hand-written CPU kernels for an NHWC x HWIO convolution and its filter gradient (issue 27).

XLA:CPU computes a convolution's filter gradient as a convolution with batch and channels swapped,
so it first transposes the input and the cotangent (channels first), then runs a thin-channel
contraction at a small fraction of the machine's matrix-product rate: on sRb-VAE's and LeVAsa's
16-64-channel maps these two were half of the step. `conv_kernels.cc` reads both tensors in their
NHWC layouts and sums outer products in AVX2 registers, split over the images on XLA's own thread
pool. It is compiled with the machine's C++ compiler at first use (5-10 s, cached under
$AFFECTJAX_CACHE or ~/.cache/affectjax) and registered as an XLA FFI target; where that is not
possible (no compiler, no AVX2/FMA, a failed build) `available()` is False and nn.cpu keeps XLA's
convolutions, with one warning saying why. AFFECTJAX_CPU_KERNEL=0 turns both kernels off (A/B
timing).

The same file's forward convolution (`conv`) sums tiles of 6 output pixels x 16 channels in
registers from weights repacked per 16-channel block: XLA:CPU's convolution ran LeVAsa's 16-64
channel layers at 0.03-0.06 TFLOP/s (forward and input gradient, about half of its step), the
kernel at 0.08-0.14 (the machine's matrix-product rate). nn.cpu computes the forward pass and the
input gradient (a forward convolution of the cotangent) with it.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

TARGET = "affectjax_filter_grad"
CONV_TARGET = "affectjax_conv"
_SOURCE = Path(__file__).with_name("conv_kernels.cc")
_FLAGS = ["-O3", "-mavx2", "-mfma", "-std=c++17", "-shared", "-fPIC", "-w"]
ENABLED = os.environ.get("AFFECTJAX_CPU_KERNEL", "1") != "0"


def _cpu_has_avx2_fma() -> bool:
  try:
    from numpy._core._multiarray_umath import __cpu_features__ as features
  except ImportError:  # numpy < 2
    from numpy.core._multiarray_umath import __cpu_features__ as features
  return bool(features.get("AVX2")) and bool(features.get("FMA3"))


def _cache_dir() -> Path:
  root = os.environ.get("AFFECTJAX_CACHE") or Path.home() / ".cache" / "affectjax"
  return Path(root) / "kernels"


def build(compiler: str | None = None) -> Path:
  """The compiled kernel's path, compiling it if this source, jaxlib and compiler have none yet.
  Raises OSError / subprocess.CalledProcessError with the compiler's message when it cannot."""
  compiler = compiler or os.environ.get("CXX") or "g++"
  exe = shutil.which(compiler)
  if exe is None:
    raise OSError(f"no C++ compiler '{compiler}' on PATH (set CXX)")
  version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30).stdout
  key = hashlib.sha256("\0".join([_SOURCE.read_text(), jaxlib.__version__, version, *_FLAGS])
                       .encode()).hexdigest()[:16]
  out = _cache_dir() / f"conv_kernels-{key}.so"
  if out.exists():
    return out
  out.parent.mkdir(parents=True, exist_ok=True)
  # compile to a temporary name and rename: concurrent processes (pytest -n) never load half a file
  fd, tmp = tempfile.mkstemp(suffix=".so", dir=out.parent)
  os.close(fd)
  try:
    subprocess.run([exe, *_FLAGS, f"-I{jax.ffi.include_dir()}", str(_SOURCE), "-o", tmp],
                   check=True, capture_output=True, text=True, timeout=300)
    os.replace(tmp, out)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)
  return out


@functools.cache
def available() -> bool:
  """Whether the kernel is built and registered in this process (tried once; a failure warns)."""
  if not ENABLED:
    return False
  why = None
  if not _cpu_has_avx2_fma():
    why = "this CPU has no AVX2/FMA"
  else:
    try:
      lib = ctypes.CDLL(str(build()))
      jax.ffi.register_ffi_target(TARGET, jax.ffi.pycapsule(lib.AffectjaxFilterGrad), platform="cpu")
      jax.ffi.register_ffi_target(CONV_TARGET, jax.ffi.pycapsule(lib.AffectjaxConv), platform="cpu")
    except subprocess.CalledProcessError as e:
      why = f"compiling {_SOURCE.name} failed: {(e.stderr or '').strip()[-500:]}"
    except (OSError, subprocess.SubprocessError) as e:
      why = str(e)
  if why:
    logging.getLogger("affectjax").warning(
        "affectjax's CPU convolution kernels are off (%s); XLA's convolutions run instead (same "
        "values, slower on thin-channel convolutions)", why)
    return False
  return True


def supports(x, g) -> bool:
  """Whether filter_grad computes this case: float32 NHWC tensors (any channel counts: output
  channels that are no multiple of 8 are padded with zeros, e.g. LeVAsa's 12-channel sub-pixel
  output layer, where XLA's filter gradient ran at a tenth of the kernel's rate)."""
  return (ENABLED and x.ndim == 4 and g.ndim == 4 and x.dtype == jnp.float32
          and g.dtype == jnp.float32 and available())


def _check_available():
  if not available():
    raise RuntimeError("affectjax's CPU kernels are not available here (see the warning above); "
                       "nn.cpu calls them only where cpu_kernel.supports() says so")


def conv_supports(x, w, pads) -> bool:
  """Whether `conv` computes lax.conv_general_dilated(x, w, strides, pads) (no dilation): float32
  NHWC x HWIO, top and left pads >= 0 (bottom and right ones may be negative: they only shorten
  the output); output channels that are no multiple of 8 are computed padded with zero filters."""
  return (supports(x, w) and pads[0][0] >= 0 and pads[1][0] >= 0
          and all(a + lo + hi >= k for a, (lo, hi), k in zip(x.shape[1:3], pads, w.shape[:2])))


def conv(x, w, strides, pads):
  """lax.conv_general_dilated(x, w, strides, pads) for NHWC x, HWIO w, by the hand-written kernel
  (where conv_supports says so). Not differentiable itself: nn.cpu.canonical_conv gives it its
  gradients."""
  (pt, pb), (pl, pr) = pads
  kh, kw = w.shape[:2]
  ho = (x.shape[1] + pt + pb - kh) // strides[0] + 1
  wo = (x.shape[2] + pl + pr - kw) // strides[1] + 1
  return _kernel_call(CONV_TARGET, x, w, (x.shape[0], ho, wo), strides, pads)


def _kernel_call(target, a, b, leading, strides, pads):
  """target's result [*leading, O] from a and b, whose last axis is the result's O channels: the
  kernels sum 8 output channels per register, so b is padded with zeros to a multiple of 8 and
  the result cut back."""
  _check_available()
  o = b.shape[-1]
  wide = -(-o // 8) * 8
  if wide != o:
    b = jnp.pad(b, ((0, 0),) * (b.ndim - 1) + ((0, wide - o),))
  out = jax.ShapeDtypeStruct(tuple(leading) + (wide,), jnp.float32)
  y = jax.ffi.ffi_call(target, out, vmap_method="sequential")(
      a, b, sh=np.int64(strides[0]), sw=np.int64(strides[1]), pt=np.int64(pads[0][0]),
      pl=np.int64(pads[1][0]))
  return y[..., :o] if wide != o else y


def _call(x, g, kernel_hw, strides, pads):
  return _kernel_call(TARGET, x, g, tuple(kernel_hw) + (x.shape[3],), strides, pads)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3, 4))
def filter_grad(x, g, kernel_hw, strides, pads):
  """dw[i, j, c, o] = sum_{n,p,q} x[n, p*sh + i - pt, q*sw + j - pl, c] g[n, p, q, o]: the filter
  gradient of lax.conv_general_dilated(x, w, strides, pads) (NHWC, HWIO) for cotangent g.
  Differentiable: it is bilinear, <ct, dw(x, g)> = <g, conv(x, ct)>, so its own gradients are a
  convolution's (second-order gradients, e.g. GANmut's gradient penalty, go through it)."""
  return _call(x, g, kernel_hw, strides, pads)


def _fg_fwd(x, g, kernel_hw, strides, pads):
  return _call(x, g, kernel_hw, strides, pads), (x, g)


def _fg_bwd(kernel_hw, strides, pads, res, ct):
  x, g = res
  from affectjax.nn.cpu import canonical_conv  # its input gradient is the fast one
  y, vjp = jax.vjp(lambda x: canonical_conv(x, ct.astype(x.dtype), tuple(strides), tuple(pads)), x)
  return vjp(g.astype(y.dtype))[0], y.astype(g.dtype)


filter_grad.defvjp(_fg_fwd, _fg_bwd)


_CALL = re.compile(r"custom_call @(" + TARGET + "|" + CONV_TARGET + r")\b[^\n]*?\{pl = (\d+) : i64, "
                   r"pt = (\d+) : i64, sh = (\d+) : i64, sw = (\d+) : i64\}[^\n]*:\s*"
                   r"\(tensor<([0-9x]+)xf32>,\s*tensor<([0-9x]+)xf32>\)\s*->\s*tensor<([0-9x]+)xf32>")


def _taps_inside(k: int, stride: int, pad: int, size: int, out: int) -> int:
  """Pairs (tap, output position) along one axis whose input row lies inside x (not padding)."""
  return sum(1 for t in range(k) for p in range(out) if 0 <= p * stride + t - pad < size)


def lowered_flops(lowered) -> float:
  """XLA's FLOP count of a lowered program (jax.stages.Lowered) plus its kernel calls' (nan where
  the backend reports none): what tools/bench.py and tools/profile_step.py read a step's rate from."""
  cost = lowered.cost_analysis()
  cost = (cost[0] if isinstance(cost, (list, tuple)) else cost) or {}
  flops = float(cost.get("flops", float("nan")))
  return flops if math.isnan(flops) else flops + flops_in(lowered.as_text())


def flops_in(stablehlo: str) -> float:
  """The multiply-adds (x 2) of the kernels' calls in a lowered program's StableHLO text, which
  XLA's cost analysis counts as zero; like XLA's count of a convolution, taps on padding excluded
  (zero output channels added to reach a multiple of 8 are counted: the kernels compute them)."""
  total = 0.0
  for target, pl, pt, sh, sw, a, b, r in _CALL.findall(stablehlo):
    x, g, dw = (a, r, b) if target == CONV_TARGET else (a, b, r)  # conv: (x, w) -> y
    (n, h, w, c), (_, ho, wo, o), (kh, kw, _, _) = ([int(d) for d in t.split("x")] for t in (x, g, dw))
    total += (2.0 * n * c * o * _taps_inside(kh, int(sh), int(pt), h, ho)
              * _taps_inside(kw, int(sw), int(pl), w, wo))
  return total
