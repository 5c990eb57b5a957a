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


SPLIT_AND_PEER = """
import sys, time, json
sys.path.insert(0, "tools")
import bench
from absl import flags
import ml_collections as mlc
flags.FLAGS(["bench", "--steps=10", "--warmup=2", "--peer_python=/py", "--peer_dir=/peers",
             "--peer_src=/nowhere", "--peer_iters=3"])

class Step:  # iterations with the G step take 30 ms more; g_step is due every 5th, like n_critic
  def __init__(self):
    self.i = 0
  def __call__(self, state, batch):
    self.i += 1
    due = self.i % 5 == 0
    time.sleep(0.02 + (0.03 if due else 0.0))
    return state, {"g_step": 1.0 if due else 0.0}

cfg = mlc.ConfigDict({"method": "ganmut", "optim": {"n_critic": 5, "g_step": "cond"},
                      "model": {"space": "linear"}, "data": {"image_size": 64},
                      "train": {"batch_size": 16}})
split = bench.ganmut_split(cfg, Step(), None, lambda: None)
no_src = bench.peer_command(cfg, "cpu")
cfg.model.space = "stargan"
stargan = bench.peer_command(cfg, "cpu")
rn = mlc.ConfigDict({"method": "dual_domain", "data": {"image_size": 224},
                     "train": {"batch_size": 32}})
(argv, env), _ = bench.peer_command(rn, "cpu")
(_, env_gpu), _ = bench.peer_command(rn, "gpu")
print(json.dumps({"split": split, "no_src": no_src[1], "stargan": stargan[1], "argv": argv,
                  "cpu_hides_gpu": env.get("CUDA_VISIBLE_DEVICES"),
                  "gpu_env": env_gpu.get("CUDA_VISIBLE_DEVICES", "unset")}))
"""


def test_ganmut_split_and_peer_command_lines():
  """The D/G split times each iteration and subtracts; the peer's command line is the harness's."""
  import json
  out = subprocess.run([sys.executable, "-c", SPLIT_AND_PEER], cwd=ROOT, capture_output=True,
                       text=True, check=True, env={**os.environ, "JAX_PLATFORMS": "cpu",
                                                   "CUDA_VISIBLE_DEVICES": "0"})
  r = json.loads(out.stdout.strip().splitlines()[-1])
  s = r["split"]
  assert s["g_step_gating"] == "cond" and s["n_critic"] == 5
  assert 19 <= s["d_step_ms"] < 45 and 49 <= s["d_plus_g_step_ms"] < 80
  assert abs(s["g_step_ms"] - (s["d_plus_g_step_ms"] - s["d_step_ms"])) < 1e-3
  assert "has no solver.py" in r["no_src"] and "stargan" in r["stargan"]
  assert r["argv"] == ["/py", "/peers/resnet18_torchvision.py", "--size", "224", "--batch", "32",
                       "--iters", "3"]
  assert r["cpu_hides_gpu"] == "" and r["gpu_env"] == "0"


def test_bench_ceiling_times_the_ceilings_real_step():
  """tools/bench_ceiling.py: one JSON line; the step it times trains (the joint loss after a few
  Adam steps on one batch is below its first value) and XLA counts its FLOPs."""
  import json
  out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench_ceiling.py"), "--image_size=16",
                        "--batch=8", "--steps=3", "--warmup=20"], capture_output=True, text=True, cwd=ROOT)
  assert out.returncode == 0, out.stderr[-2000:]
  row = json.loads(out.stdout.strip().splitlines()[-1])
  assert row["net"] == "cnn_ceiling" and row["step_ms"] > 0 and row["hlo_gflop"] > 0
  assert row["loss"] < row["first_loss"]
