"""tools/bench.py's FLOP count: a backend whose lowered HLO has no cost analysis (CUDA) is counted
on the CPU lowering of the same step."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = """
import sys
sys.argv = ["bench"]
sys.path.insert(0, "tools")
import jax, jax.numpy as jnp
import bench
n = 64
step = jax.jit(lambda a, b: a @ b)
a = jnp.ones((n, n))
class NoCost:  # what a CUDA backend's lowered stage gives: no FLOPs
  def cost_analysis(self):
    return {}
print(bench.hlo_flops(step, a, a, step.lower(a, a)), bench.hlo_flops(step, a, a, NoCost()))
"""


def test_flops_fall_back_to_the_cpu_lowering_of_the_same_step():
  out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True,
                       check=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  direct, fallback = map(float, out.stdout.split()[-2:])
  assert direct == 2 * 64 ** 3  # a 64 x 64 matrix product: n^3 multiply-adds
  assert fallback == direct
