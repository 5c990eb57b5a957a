"""tools/profile_step.py: the op-by-op profile reads each XLA thunk against the compiled HLO, so a
convolution's and a matrix product's FLOPs are their closed forms and the backward convolutions
are told apart (input gradient vs filter gradient)."""
import os
import sys

import jax
import jax.numpy as jnp
from jax import lax

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import profile_step  # noqa: E402

N, H, CI, CO, K, D = 8, 16, 4, 8, 3, 32


def _loss(x, w, m):
  y = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return jnp.sum(jnp.tanh(y.reshape(N, -1) @ m))


def test_forward_flops_are_the_closed_forms():
  x, w = jnp.ones((N, H, H, CI)), jnp.ones((K, K, CI, CO))
  m = jnp.ones((H * H * CO, D))
  prof = profile_step.profile(jax.jit(_loss), (x, w, m), steps=2)
  rows = prof["rows"]
  convs = [r for r in rows if r["kind"] == "conv fwd"]
  dots = [r for r in rows if r["kind"] == "dot"]
  assert [r["flops"] for r in convs] == [2.0 * N * H * H * CO * K * K * CI]
  assert [r["flops"] for r in dots] == [2.0 * N * D * H * H * CO]
  assert all(r["ms"] > 0 for r in convs + dots) and prof["wall_ms"] > 0
  assert "conv fwd" in profile_step.format_report(prof)


def test_backward_convolutions_are_told_apart():
  x, w = jnp.ones((N, H, H, CI)), jnp.ones((K, K, CI, CO))
  m = jnp.ones((H * H * CO, D))
  prof = profile_step.profile(jax.jit(jax.grad(_loss, argnums=(0, 1))), (x, w, m), steps=2)
  kinds = {r["kind"]: r for r in prof["rows"]}
  conv_flops = 2.0 * N * H * H * CO * K * K * CI  # each of the three convolutions does as much
  for kind in ("conv fwd", "conv input-grad", "conv filter-grad"):
    assert kinds[kind]["flops"] == conv_flops, kind


def test_the_cpu_kernels_are_counted_and_named():
  """nn.cpu's convolution, input and filter gradients by the hand-written kernels (custom calls XLA
  counts as 0 FLOPs) are 'fwd kernel', 'input-grad kernel' and 'filter-grad kernel' rows with the
  convolutions' FLOPs, and the step's FLOP count includes them."""
  from affectjax.nn import cpu, cpu_kernel
  if not cpu_kernel.available():
    return  # no compiler here: nn.cpu uses XLA's filter gradient (tests/test_cpu_kernel.py)
  x, w = jnp.ones((N, H, H, CI)), jnp.ones((K, K, CI, CO))
  m = jnp.ones((H * H * CO, D))
  loss = lambda x, w, m: jnp.sum(jnp.tanh(cpu.canonical_conv(x, w, (1, 1), ((1, 1), (1, 1))).reshape(N, -1) @ m))
  plain = profile_step.profile(jax.jit(jax.grad(_loss, argnums=(0, 1))), (x, w, m), steps=2)
  prof = profile_step.profile(jax.jit(jax.grad(loss, argnums=(0, 1))), (x, w, m), steps=2)
  padded = -(-CI // 8) * 8  # the input gradient's 4 output channels are computed as 8
  for kind, flops in (("fwd kernel", 2.0 * N * H * H * CO * K * K * CI),
                      ("input-grad kernel", 2.0 * N * H * H * padded * K * K * CO),
                      ("filter-grad kernel", 2.0 * N * H * H * CO * K * K * CI)):
    assert [r["flops"] for r in prof["rows"] if r["kind"] == kind] == [flops], kind
  # the step's count is lax's, plus the input gradient's zero channels (padding taps excluded)
  inside = sum(1 for t in range(K) for p in range(H) if 0 <= p + t - 1 < H)
  extra = 2.0 * N * (padded - CI) * CO * inside ** 2 / 1e9
  assert abs(prof["hlo_gflop"] - plain["hlo_gflop"] - extra) < 1e-6 * plain["hlo_gflop"]
  assert "fwd kernel" in profile_step.format_report(prof)
