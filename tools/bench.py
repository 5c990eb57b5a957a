"""Times the jitted train step of any config: steps/s, examples/s, seeds/s, compile time apart.

  python tools/bench.py --config=configs/levasa.py --steps=50 [--seeds=1,4,8] [--with_pipeline]
      [--config.X=...]

--seeds runs the benchmark once per K (config.train.num_seeds = K: K independent models in one
program, mapped as config.train.seed_map says: unrolled on CPU, vmapped elsewhere) and prints one JSON line per K; seeds_per_s = K x steps/s, and
cost_vs_one_seed = (time of a K-seed step) / (time of a one-seed step) when K = 1 is in the list
(well under K means the seeds share the machine efficiently). --matmul_peak times a 2048^2
float32 matmul first and adds each line's fraction_of_matmul_peak (its HLO FLOP rate over that).

Without --with_pipeline one batch is placed on the devices once and reused (pure step time);
with it, every step reads a fresh batch through the real input pipeline. Each line includes
XLA's FLOP estimate of one step (from the lowered HLO, before fusion: an upper bound where the
step has a lax.cond, whose branches are both counted) and the FLOP rate it implies. A backend
whose lowered HLO has no cost analysis (CUDA, seen on an H100 with jax 0.11.2: NaN) gets the count
of the same step lowered for the CPU, the same program before fusion.

GANmut's line adds its D and G steps apart: each timed step is timed once more on its own
(`d_step_ms`: the median of iterations without the G step; `d_plus_g_step_ms`: of iterations with
it; `g_step_ms`: their difference), named with the G phase's gating (config.optim.g_step, as
affectjax.objective.make_step resolves it: under 'masked' every iteration computes G, so only
'cond' separates the two).

--peer runs the original code's training step for the methods that have one (GANmut: the original
Solver.train, ../shared/bench/ganmut_original.py, given the original source in --peer_src;
dual-domain: torchvision ResNet-18, resnet18_torchvision.py) right after affectjax's, on the same
device (the peer gets no GPU when JAX runs on the CPU), under --peer_python; it prints the peer's
JSON line and one comparison line: both times and speedup = peer ms / affectjax ms (above 1:
affectjax is faster).
"""
import json
import math
import os
import statistics
import subprocess
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from affectjax import errors, objective
from affectjax.nn import cpu_kernel
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:variant]).")
_STEPS = flags.DEFINE_integer("steps", 50, "Timed steps after warm-up.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps after compilation.")
_PIPELINE = flags.DEFINE_bool("with_pipeline", False, "Include the input pipeline in the timing.")
_SEEDS = flags.DEFINE_list("seeds", None, "Seed counts K to time, e.g. 1,4,8 (default: the "
                           "config's train.num_seeds).")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PEER = flags.DEFINE_bool("peer", False, "Also time the original code's step (GANmut, dual_domain) "
                          "on the same device, after affectjax's, and print the ratio.")
_PEER_PYTHON = flags.DEFINE_string(
    "peer_python", os.environ.get("AFFECTJAX_PEER_PYTHON", os.path.join(ROOT, "..", "torchenv",
                                                                        "bin", "python")),
    "Python with torch (and torchvision for ResNet-18) that runs the peer harness.")
_PEER_DIR = flags.DEFINE_string("peer_dir", os.path.join(ROOT, "..", "shared", "bench"),
                                "Folder of the peer harnesses.")
_PEER_SRC = flags.DEFINE_string("peer_src", os.path.join(ROOT, "..", "ganmut_src"),
                                "The original GANmut source (solver.py, main.py, models/, utils/; "
                                "git-ignored, never committed).")
_PEAK = flags.DEFINE_bool("matmul_peak", False, "Also time a 2048x2048 float32 matmul on the same "
                          "device and add each step's fraction of that peak (from the HLO FLOPs).")
_PEER_ITERS = flags.DEFINE_integer("peer_iters", None, "Peer's timed iterations (default: --steps).")
_PEER_WARMUP = flags.DEFINE_integer("peer_warmup", None, "Peer's warm-up iterations (default: "
                                    "--warmup).")


def hlo_flops(step, state, batch, lowered) -> float:
  """XLA's FLOP count of one step, or of its CPU lowering where this backend reports none."""
  flops = cpu_kernel.lowered_flops(lowered)  # XLA's count + the CPU kernel's calls
  if not math.isnan(flops):
    return flops
  try:
    return cpu_kernel.lowered_flops(step.trace(state, batch).lower(lowering_platforms=("cpu",)))
  except Exception:  # noqa: BLE001  (a FLOP count is a nicety; the timing stands without it)
    return float("nan")


def matmul_peak_tflop_s(n: int = 2048, reps: int = 20) -> float:
  """The device's float32 matmul rate: the median of `reps` timed n x n products (the ceiling
  a step's FLOP rate is read against)."""
  a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
  mm = jax.jit(lambda x: x @ x)
  jax.block_until_ready(mm(a))
  times = []
  for _ in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(mm(a))
    times.append(time.perf_counter() - t)
  return 2 * n ** 3 / statistics.median(times) / 1e12


def bench_one(config, num_seeds: int) -> dict:
  from affectjax import train
  config = config.copy_and_resolve_references()
  config.train.num_seeds = num_seeds
  s = train.setup(config)
  state = train.init_state(s)
  step = train.compile_step(s)
  batch = train.to_global(s, train.first_batch(s))

  t = time.perf_counter()
  lowered = step.lower(state, batch)
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t
  gflop = hlo_flops(step, state, batch, lowered) / 1e9

  batches = train.input_batches(s, 0) if _PIPELINE.value else None
  next_batch = (lambda: train.to_global(s, next(batches))) if batches else (lambda: batch)
  for _ in range(_WARMUP.value):
    state, metrics = compiled(state, next_batch())
  jax.block_until_ready(state)  # --warmup=0: no metrics yet
  t = time.perf_counter()
  for _ in range(_STEPS.value):
    state, metrics = compiled(state, next_batch())
  jax.block_until_ready((state, metrics))
  elapsed = time.perf_counter() - t
  steps_s = _STEPS.value / elapsed
  extra = ganmut_split(config, compiled, state, next_batch) if config.method == "ganmut" else {}
  return {
      "config": f"{config.method}:{config.variant}", "devices": jax.device_count(),
      "platform": jax.devices()[0].platform, "device_kind": jax.devices()[0].device_kind,
      "num_seeds": num_seeds, "batch_size": config.train.batch_size,
      "image_size": config.data.image_size, "with_pipeline": _PIPELINE.value,
      "compile_s": round(compile_s, 3), "ms_per_step": round(1e3 / steps_s, 3),
      "steps_per_s": round(steps_s, 3), "seeds_per_s": round(num_seeds * steps_s, 3),
      "examples_per_s": round(num_seeds * steps_s * config.train.batch_size, 1),
      "gflop_per_step_hlo": round(gflop, 1), "tflop_per_s_hlo": round(gflop * steps_s / 1e3, 2), **extra}


def ganmut_split(config, compiled, state, next_batch) -> dict:
  """GANmut's D step and G step apart: --steps iterations timed one by one, split by whether the
  iteration ran the G step (its `g_step` metric)."""
  times = {0: [], 1: []}
  for _ in range(max(_STEPS.value, config.optim.n_critic)):
    t = time.perf_counter()
    state, metrics = compiled(state, next_batch())
    jax.block_until_ready((state, metrics))
    dt = 1e3 * (time.perf_counter() - t)
    # K seeds share the gating (one step counter): seed 0's flag says which step ran
    times[int(float(np.ravel(jax.device_get(metrics["g_step"]))[0]) > 0.5)].append(dt)
  med = lambda v: round(statistics.median(v), 3) if v else None
  gating = objective.resolve_gating(config.optim.get("g_step", "auto"))
  d, dg = med(times[0]), med(times[1])
  return {"g_step_gating": gating, "n_critic": config.optim.n_critic, "d_step_ms": d,
          "d_plus_g_step_ms": dg,
          "g_step_ms": round(dg - d, 3) if gating == "cond" and d is not None and dg else None}


def peer_command(config, platform: str):
  """The peer harness's command line for this config, or a reason why there is none."""
  m = config.method
  if m == "ganmut":
    space = config.model.space
    if space not in ("linear", "gaussian"):
      return None, f"no original code for GANmut's {space!r} space"
    if not os.path.isfile(os.path.join(_PEER_SRC.value, "solver.py")):
      return None, (f"--peer_src={_PEER_SRC.value} has no solver.py (export the original "
                    "GANmut repository's solver.py, main.py, models/, utils/ there)")
    args = [os.path.join(_PEER_DIR.value, "ganmut_original.py"), _PEER_SRC.value,
            "--parametrization", space, "--size", str(config.data.image_size)]
  elif m == "dual_domain":
    args = [os.path.join(_PEER_DIR.value, "resnet18_torchvision.py"),
            "--size", str(config.data.image_size)]
  else:
    return None, f"no peer harness for method {m!r}"
  iters = _PEER_ITERS.value or _STEPS.value
  args += ["--batch", str(config.train.batch_size), "--iters", str(iters)]
  if m == "ganmut":
    args += ["--warmup", str(_PEER_WARMUP.value if _PEER_WARMUP.value is not None
                             else _WARMUP.value)]
  env = dict(os.environ)
  if platform == "cpu":  # the same device: a CPU benchmark gives the peer no GPU
    env["CUDA_VISIBLE_DEVICES"] = ""
  return ([_PEER_PYTHON.value] + args, env), None


def run_peer(config, row: dict) -> None:
  """Runs the peer after affectjax and prints its JSON line and the comparison."""
  cmd, why = peer_command(config, row["platform"])
  if cmd is None:
    print(json.dumps({"peer": None, "reason": why}), flush=True)
    return
  argv, env = cmd
  out = subprocess.run(argv, env=env, capture_output=True, text=True)
  lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
  if out.returncode or not lines:
    tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or [""]
    print(json.dumps({"peer": None, "reason": f"peer exited {out.returncode}: {tail[0]}"}),
          flush=True)
    return
  peer = json.loads(lines[-1])
  print(json.dumps(peer), flush=True)
  peer_ms = peer.get("ms_per_iter_median_of_3", peer.get("ms_per_step_median_of_3"))
  print(json.dumps({"compare": f"{row['config']} vs {peer['peer']}", "platform": row["platform"],
                    "affectjax_ms": row["ms_per_step"], "peer_ms": peer_ms,
                    "speedup_vs_peer": round(peer_ms / row["ms_per_step"], 3)}), flush=True)


def main(argv):
  del argv
  config = _CONFIG.value
  counts = [int(k) for k in _SEEDS.value] if _SEEDS.value else [config.train.num_seeds]
  peak = matmul_peak_tflop_s() if _PEAK.value else None
  one_seed_ms = None
  for k in counts:
    row = bench_one(config, k)
    if k == 1:
      one_seed_ms = row["ms_per_step"]
    if one_seed_ms is not None:
      row["cost_vs_one_seed"] = round(row["ms_per_step"] / one_seed_ms, 3)
    if peak:
      row["matmul_peak_tflop_s"] = round(peak, 4)
      # the HLO count includes a cond's skipped branch: read it against an iteration that ran it
      ms = row["d_plus_g_step_ms"] if row.get("g_step_gating") == "cond" else row["ms_per_step"]
      row["fraction_of_matmul_peak"] = round(row["gflop_per_step_hlo"] / ms / peak, 3) if ms else None
    print(json.dumps(row), flush=True)
  if _PEER.value:
    run_peer(config, row)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(errors.one_line(main))
