"""One prepared GPU campaign (issue 28): the peers and every method's step timed on one GPU,
GANmut trained with K seeds in one program and evaluated, everything packed into one small file.

  python tools/gpu_campaign.py --out=DIR [--size=64|128] [--runs=ganmut[,stargan,...]]
      [--budget_s=470] [--train_s=300] [--ganmut_src=DIR] [--bench_dir=DIR] [--dry_run]
  python tools/gpu_campaign.py --prepare --ganmut_mirror=GIT_DIR   # here, before a GPU call

THE NEXT GPU SESSION. Once, here: `python tools/gpu_campaign.py --prepare --ganmut_mirror=DIR`
with DIR the path the search tool's `fetch` of github:stefanodapolito/GANmut returns
(/work/.mirror/stefanodapolito+GANmut/repo); it fills the git-ignored .campaign/ (0.2 MiB) with
the ml-collections wheel, ../shared/bench's peers and the original's solver.py, main.py, models/
and utils/. Then one device call, the command on one line:
  run(command="set -o pipefail; PYTHONUNBUFFERED=1 python3 tools/gpu_campaign.py --out=$OUT
               2>&1 | tee $OUT/campaign.log",
      carry=[".campaign"], timeout_s=560)
The script stops itself by --budget_s (470 s); timeout_s adds a margin for the last stage's kill,
and with the machine's start (1-2 min) the call stays inside the 15-minute device allowance.
Back come campaign.tar.gz (at most 16 MiB), timings.json, summary.md and campaign.log.

Stages, in this order, each logged with its wall time; a failed stage is recorded (return code,
last lines of its log) and the campaign goes on; a global deadline (--budget_s from the start)
skips or kills whatever would overrun it, keeping --pack_reserve_s for the archive:
  setup     ml-collections from the carried wheel when this Python lacks it (pip --no-deps)
  plan      every affectjax command's config, variant and overrides loaded and validated in one
            process, its flags parsed as tools/bench.py parses them (a typo costs seconds)
  env       devices, versions and both sides' TF32 policy (torch's cudnn/matmul allow_tf32, JAX's
            default matmul precision)
  timing_a  the original GANmut loop (ganmut_original.py, needs the original source), then
            tools/bench.py for GANmut's paper step (128x128, batch 16, n_critic 5) in fp32 and
            bf16, then the training run's own K-seed step (the training's step count comes from it)
  train     GANmut (and any other --runs) with K = --seeds seeds in one program
            (train.num_seeds), as many iterations as fit in --train_s, with its evaluator, reports
            and figures; the runs share one evaluator
  tables    experiments/ganmut.py's tables and verdicts over the K seeds (it trains nothing)
  timing_b  as time allows, each peer just before its affectjax step: torchvision ResNet-18 fp32 /
            bf16 autocast with dual_domain fp32 / bf16, then sRb-VAE fp32 / bf16, LeVAsa
            paper_length, the triplet VAE (these two configs have no bf16 switch)
  pack      one .tar.gz of figures, tables, metrics, logs and timings.json (no checkpoints,
            weights or caches; the largest figures dropped, and listed, if it would exceed
            --max_mib) in --out, beside timings.json and summary.md; the summary table of every
            timing, ratio, training run and verdict is printed last
Every timing item has its own limit (--item_timeout_s) and runs in its own process group, so one
hang costs that item only. Training comes before timing_b because the issue's goals are GANmut's:
on an H200 setup to timing_a should take about 2.5 minutes and training gets about 4-5, so
timing_b gets what is left (`--stages=setup,plan,env,timing_a,timing_b,pack` is a timing-only
campaign of about 6 minutes).

64x64 by default, 128x128 as an option: the 64x64 run gives more verdicts per minute. A 128x128
step costs about 3-4x a 64x64 one (the convolutions scale with the pixels), so 5 minutes buy
about a third of the iterations; the report generates ~77,000 images per seed (Table 1's paths,
the ERE grids, Table 3), also ~4x dearer, taking minutes from training; and the evaluator is at
least as reliable at 64 (the calibrated faces' CNN accuracy: 0.937 at 64, 0.924 at 128, README).
The paper's architecture is kept (at 64, D's 6 down-samplings end on a 1x1 map instead of 2x2).
The conditional space learns 25x faster (--space_lr_scale; configs/ganmut.py `small`'s reasoning:
Adam turns theta_c by at most lr per G step, 0.3 rad in ~3,000 G steps at 1e-4).

--dry_run runs the same stages on the CPU at tiny sizes (each config's `tiny` variant, 2 training
steps, the peers at toy sizes where torch imports, TensorFlow hidden as on the GPU host):
tests/test_gpu_campaign.py.
"""
from __future__ import annotations

import argparse
import dataclasses
import glob
import importlib.util
import io
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MiB = 1 << 20
STAGES = ("setup", "plan", "env", "timing_a", "train", "tables", "timing_b", "pack")
RUN_ARGS = {"ganmut": "linear", "stargan": "stargan", "ganmut_rho1": "linear,rho1",
            "gganmut": "gaussian"}  # experiments/ganmut.py's RUNS: run name -> config argument
GOALS = {"ganmut_fp32": 3.0, "ganmut_bf16": 5.0}  # the original's iteration time / ours (issue 28)
SUMMARY_BEGIN, SUMMARY_END = "== campaign summary ==", "== end of summary =="
# Kept out of the archive: checkpoints, caches, installed wheels, evaluator weights.
_DROP_DIRS = {"checkpoints", "checkpoints_unreadable", "data_cache", "xla_cache", "site",
              "hide_tf", "tensorboard", "__pycache__"}
_DROP_EXT = (".msgpack", ".npz", ".whl")


# ---------------------------------------------------------------- the clock and the ledger

@dataclasses.dataclass
class Campaign:
  args: argparse.Namespace
  work: str  # scratch directory: runs, logs, caches
  start: float
  deadline: float
  env: dict
  records: list = dataclasses.field(default_factory=list)

  def elapsed(self) -> float:
    return time.perf_counter() - self.start

  def left(self) -> float:
    return self.deadline - time.perf_counter()


def log(c: Campaign, text: str) -> None:
  print(f"[campaign {c.elapsed():6.1f}s] {text}", flush=True)


def _tail(path: str, lines: int = 6) -> str:
  try:
    with open(path, errors="replace") as f:
      text = f.read()[-20000:]
  except OSError:
    return ""
  kept = [ln for ln in text.splitlines() if ln.strip()]
  return " | ".join(kept[-lines:])[-800:]


def _json_lines(path: str) -> list[dict]:
  rows = []
  try:
    with open(path, errors="replace") as f:
      for line in f:
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
          try:
            row = json.loads(line.replace("NaN", "null"))
          except json.JSONDecodeError:
            continue
          if isinstance(row, dict):
            rows.append(row)
  except OSError:
    pass
  return rows


def record(c: Campaign, name: str, status: str, wall_s: float, **fields) -> dict:
  rec = {"name": name, "status": status, "wall_s": round(wall_s, 2), **fields}
  c.records.append(rec)
  note = f": {fields['error']}" if fields.get("error") else ""
  log(c, f"{name}: {status} in {wall_s:.1f} s{note}")
  return rec


def run_item(c: Campaign, name: str, cmd: list[str], *, timeout_s: float, min_s: float = 5.0,
             reserve_s: float | None = None, env: dict | None = None, **fields) -> dict:
  """Runs cmd (its own process group, output to logs/<name>.log) for at most timeout_s and never
  past the deadline minus reserve_s (the pack's share); skipped when less than min_s would be
  left. The record holds the JSON lines it printed."""
  reserve_s = c.args.pack_reserve_s if reserve_s is None else reserve_s
  limit = min(timeout_s, c.left() - reserve_s)
  cmd_text = shlex.join(cmd)
  if limit < min_s:
    return record(c, name, "skipped", 0.0, cmd=cmd_text, **fields,
                  error=f"deadline: {max(0.0, c.left()):.0f} s left, the item needs >= {min_s:.0f} s")
  path = os.path.join(c.work, "logs", f"{name}.log")
  log(c, f"{name}: start (limit {limit:.0f} s): {cmd_text}")
  t = time.perf_counter()
  with open(path, "w") as out:
    out.write(f"$ {cmd_text}\n")
    out.flush()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env or c.env, stdout=out, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own group: a timeout kills its children
    try:
      rc = proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
      os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
      rc = None
  wall = time.perf_counter() - t
  rows = _json_lines(path)
  if rc is None:
    return record(c, name, "timeout", wall, cmd=cmd_text, rows=rows, **fields,
                  error=f"killed at {limit:.0f} s; last output: {_tail(path, 3)}")
  if rc != 0:
    return record(c, name, "failed", wall, cmd=cmd_text, rows=rows, rc=rc, **fields,
                  error=f"rc {rc}: {_tail(path)}")
  return record(c, name, "ok", wall, cmd=cmd_text, rows=rows, rc=0, **fields)


def in_process(c: Campaign, name: str, fn, *a, **kw):
  """Runs fn(*a, **kw) as a stage: its wall time and any error recorded, never raised."""
  t = time.perf_counter()
  try:
    result = fn(*a, **kw)
  except Exception as e:  # noqa: BLE001  (one stage's failure must not end the campaign)
    record(c, name, "failed", time.perf_counter() - t, error=f"{type(e).__name__}: {e}"[:800])
    return None
  record(c, name, "ok", time.perf_counter() - t)
  return result


# ---------------------------------------------------------------- what is timed and trained

def _config_arg(arg: str, dry: bool) -> str:
  """A config argument at paper size, or the method's `tiny` variant for the dry run (a paper-size
  argument such as levasa's paper_length has no tiny form and is dropped)."""
  if not dry:
    return arg
  keep = [a for a in arg.split(",") if a and a in ("bf16",)]
  return ",".join(["tiny"] + keep)


def _config_flag(config: str, arg: str) -> str:
  return f"--config=configs/{config}.py" + (f":{arg}" if arg else "")


def train_overrides(args, run: str, num_steps: int | None, workdir_root: str) -> list[str]:
  """The training run's config overrides (shared by its K-seed bench item, so that the step
  count comes from the same program)."""
  dry = args.dry_run
  o = [f"--config.train.num_seeds={args.seeds}", "--config.train.progress=False",
       f"--config.optim.space_lr_scale={args.space_lr_scale}",
       f"--config.eval.classifier_dir={os.path.join(workdir_root, 'evaluator')}"]
  if not dry:
    o.append(f"--config.data.image_size={args.size}")
  if dry:
    o.append("--config.eval.figures=True")  # the tiny config skips them; the GPU run makes them
  o += shlex.split(args.train_overrides)
  if num_steps is not None:
    o += [f"--config.train.num_steps={num_steps}", f"--config.train.checkpoint_every={num_steps}",
          f"--config.train.log_every={max(1, min(100, num_steps))}"]
  return o


def _fixed_steps(args) -> int | None:
  """The training's step count when it is known before anything is timed (the dry run's
  --min_steps = --max_steps): the K-seed bench item then compiles the training's very program,
  which the training finds in JAX's persistent compilation cache."""
  return args.max_steps if args.min_steps == args.max_steps else None


def timing_items(args, phase: str, runs_dir: str) -> list[dict]:
  """The timing items of phase 'a' (GANmut, before training) or 'b' (the rest, after), in the
  order they run: each peer right before the affectjax step it is compared with. An item is
  {name, kind: bench | peer, argv}; bench items run tools/bench.py at the paper's sizes
  (the dry run: each config's `tiny` variant), peers ../shared/bench's harnesses."""
  dry = args.dry_run
  steps = ["--steps=2", "--warmup=1"] if dry else [f"--steps={args.bench_steps}", "--warmup=3"]
  bf16 = ["--config.model.dtype=bfloat16"]  # rbvae has a dtype field but no bf16 switch

  def bench(name, config, arg, overrides=(), extra=()):
    return {"name": name, "kind": "bench",
            "argv": [_config_flag(config, arg), *overrides, *steps, *extra]}

  def peer(name, script, argv, needs_src=False):
    return {"name": name, "kind": "peer", "script": script, "argv": argv, "needs_src": needs_src}

  if phase == "a":
    ganmut_size = (["--batch", "2", "--size", "64", "--iters", "1", "--warmup", "1"] if dry
                   else ["--iters", str(args.peer_iters), "--warmup", "20"])
    run = args.runs[0]
    return [
        peer("peer_ganmut_original", "ganmut_original.py",
             [args.ganmut_src or "", "--parametrization", "linear", *ganmut_size], needs_src=True),
        bench("bench_ganmut_fp32", "ganmut", _config_arg("", dry)),
        bench("bench_ganmut_bf16", "ganmut", _config_arg("bf16", dry)),
        bench(f"bench_ganmut_train_k{args.seeds}", "ganmut", _train_arg(args, run),
              train_overrides(args, run, _fixed_steps(args), runs_dir), [f"--seeds={args.seeds}"]),
    ]
  resnet_size = ["--batch", "2", "--size", "32", "--iters", "1"] if dry else ["--iters", "30"]
  return [
      peer("peer_resnet18_fp32", "resnet18_torchvision.py", resnet_size),
      bench("bench_dual_domain_fp32", "dual_domain", _config_arg("", dry)),
      peer("peer_resnet18_bf16", "resnet18_torchvision.py", resnet_size + ["--amp"]),
      bench("bench_dual_domain_bf16", "dual_domain", _config_arg("bf16", dry)),
      bench("bench_rbvae_fp32", "rbvae", _config_arg("", dry)),
      bench("bench_rbvae_bf16", "rbvae", _config_arg("", dry), bf16),
      bench("bench_levasa_fp32", "levasa", _config_arg("paper_length", dry)),  # no bf16 switch
      bench("bench_triplet_vae_fp32", "triplet_vae", _config_arg("", dry)),  # no bf16 switch
  ]


# ---------------------------------------------------------------- stages

def stage_setup(c: Campaign) -> None:
  """ml-collections from the carried wheel(s) when this Python lacks it (the GPU image has none)."""
  t = time.perf_counter()
  if importlib.util.find_spec("ml_collections") is not None and not c.args.force_wheels:
    record(c, "setup", "ok", time.perf_counter() - t, note="ml_collections already importable")
    return
  wheels = sorted(glob.glob(os.path.join(c.args.campaign_dir, "wheels", "*.whl")))
  if not wheels:
    record(c, "setup", "failed", time.perf_counter() - t,
           error=f"ml_collections is missing and no wheel is in {c.args.campaign_dir}/wheels "
                 "(run tools/gpu_campaign.py --prepare here and carry .campaign)")
    return
  site = os.path.join(c.work, "site")
  run_item(c, "setup", [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
                        "--no-compile", "--no-cache-dir", "--upgrade", "--target", site, *wheels],
           timeout_s=120)
  c.env["PYTHONPATH"] = os.pathsep.join([site, c.env["PYTHONPATH"]])


_PLAN_CHECK = r"""
import json, sys
items = json.load(open(sys.argv[1]))
sys.argv = ["bench"]
sys.path.insert(0, "tools")
from absl import flags
import bench  # its flags: the argv below is parsed exactly as `python tools/bench.py ARGV` would
from affectjax import methods
bad = 0
for name, argv in items:
  try:
    for stale in [n for n in flags.FLAGS if n.startswith("config.")]:
      delattr(flags.FLAGS, stale)  # the last item's overrides
    flags.FLAGS.unparse_flags()
    sys.argv = ["bench"] + argv  # config_flags reads its overrides from sys.argv
    flags.FLAGS(sys.argv)
    config = flags.FLAGS["config"].value
    methods.validate(config, 1)
    print(f"plan ok: {name}: {config.method}:{config.variant} {config.data.image_size}px, "
          f"{config.train.num_seeds} seed(s), batch {config.train.batch_size}")
  except BaseException as e:  # noqa: BLE001
    bad += 1
    print(f"plan FAILED: {name}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
sys.exit(1 if bad else 0)
"""


def stage_plan(c: Campaign, runs_dir: str) -> None:
  """Every affectjax command of the campaign loaded and validated, before any GPU stage."""
  argvs = [(i["name"], i["argv"]) for phase in "ab" for i in timing_items(c.args, phase, runs_dir)
           if i["kind"] == "bench"]
  argvs += [(f"train_{r}", [_config_flag("ganmut", _train_arg(c.args, r))]
             + train_overrides(c.args, r, 1000, runs_dir)) for r in c.args.runs]
  path, script = os.path.join(c.work, "plan.json"), os.path.join(c.work, "plan_check.py")
  with open(path, "w") as f:
    json.dump(argvs, f, indent=1)
  with open(script, "w") as f:
    f.write(_PLAN_CHECK)
  run_item(c, "plan", [sys.executable, script, path], timeout_s=120)


_ENV_PROBE = r"""
import json, platform
out = {"python": platform.python_version()}
try:
  import jax
  out.update(jax=jax.__version__, backend=jax.default_backend(),
             devices=[d.device_kind for d in jax.devices()],
             jax_default_matmul_precision=str(jax.config.jax_default_matmul_precision))
except Exception as e:
  out["jax_error"] = repr(e)
try:
  import torch, torchvision
  out.update(torch=torch.__version__, torchvision=torchvision.__version__,
             cuda=torch.cuda.is_available(),
             torch_cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
             torch_matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
except Exception as e:
  out["torch_error"] = repr(e)
print(json.dumps(out))
"""


def stage_env(c: Campaign) -> None:
  script = os.path.join(c.work, "env_probe.py")
  with open(script, "w") as f:
    f.write(_ENV_PROBE)
  run_item(c, "env", [c.args.peer_python, script], timeout_s=90)
  if shutil.which("nvidia-smi"):
    run_item(c, "nvidia_smi", ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,"
                               "clocks.max.sm", "--format=csv"], timeout_s=30)


def _torch_ok(c: Campaign) -> bool:
  """Whether the peers' Python imports torch and torchvision (the env probe's answer if it ran)."""
  env = _row(c, "env")
  if env is not None:
    return "torchvision" in env
  try:
    return subprocess.run([c.args.peer_python, "-c", "import torch, torchvision"], cwd=REPO,
                          env=c.env, capture_output=True, timeout=120).returncode == 0
  except (OSError, subprocess.TimeoutExpired):
    return False


def _peer_unavailable(c: Campaign, item: dict, torch_ok: bool) -> str | None:
  script = os.path.join(c.args.bench_dir or "", item["script"])
  if not torch_ok:
    return f"torch/torchvision do not import in {c.args.peer_python}"
  if not c.args.bench_dir or not os.path.isfile(script):
    return f"peer harness {item['script']} not found (--bench_dir={c.args.bench_dir})"
  if item["needs_src"] and not (c.args.ganmut_src and
                                os.path.isfile(os.path.join(c.args.ganmut_src, "solver.py"))):
    return (f"the original GANmut source is absent (--ganmut_src={c.args.ganmut_src!r} has no "
            "solver.py; tools/gpu_campaign.py --prepare --ganmut_mirror=... exports it)")
  return None


def stage_timing(c: Campaign, phase: str, runs_dir: str, torch_ok: bool) -> None:
  """Phase a's or b's items (those --items selects), each bounded by --item_timeout_s and the
  deadline; phase a keeps --train_min_s for the training."""
  a = c.args
  reserve = a.pack_reserve_s + (a.train_min_s + a.tables_reserve_s if phase == "a" else 0.0)
  for item in timing_items(a, phase, runs_dir):
    if not re.search(a.items, item["name"]):
      continue
    if item["kind"] == "peer":
      why = _peer_unavailable(c, item, torch_ok)
      if why:
        record(c, item["name"], "skipped", 0.0, error=why)
        continue
      cmd = [a.peer_python, os.path.join(a.bench_dir, item["script"]), *item["argv"]]
    else:
      cmd = [sys.executable, "tools/bench.py", *item["argv"]]
    run_item(c, item["name"], cmd, timeout_s=a.item_timeout_s, min_s=a.item_min_s,
             reserve_s=reserve)


def _row(c: Campaign, name: str) -> dict | None:
  """The first JSON row of a successful item."""
  for r in c.records:
    if r["name"] == name and r["status"] == "ok" and r.get("rows"):
      return r["rows"][0]
  return None


def _train_arg(args, run: str) -> str:
  return RUN_ARGS[run] + (",tiny" if args.dry_run else "")


def plan_steps(c: Campaign, budget_s: float) -> tuple[int, dict]:
  """Iterations that fit in budget_s for one run: (budget - start-up - compile - evaluation)
  divided by the measured K-seed step time (x 1.15 for the loop's host work), a multiple of
  n_critic (5) within [--min_steps, --max_steps]."""
  a = c.args
  k_row = _row(c, f"bench_ganmut_train_k{a.seeds}")
  basis = "measured K-seed step"
  if k_row:
    ms, compile_s = float(k_row["ms_per_step"]), float(k_row.get("compile_s", 60.0))
  else:  # the paper step's time scaled by seeds and pixels; a guess, said so in the record
    one = _row(c, "bench_ganmut_fp32")
    # x 1.5: small images and vmapped seeds use the GPU less well than the paper step
    ms = (1.5 * float(one["ms_per_step"]) * a.seeds * (a.size / 128) ** 2 if one
          else a.fallback_ms)
    compile_s = float(one.get("compile_s", 60.0)) if one else 90.0
    basis = "scaled from the 128x128 one-seed step" if one else "--fallback_ms (nothing measured)"
  eval_s = a.eval_reserve_s if a.eval_reserve_s is not None else (
      20.0 if a.dry_run else 60.0 + 30.0 * (a.size / 64) ** 2)  # evaluator, K reports, figures
  usable = budget_s - a.startup_s - 1.5 * compile_s - eval_s
  raw = int(usable / (1.15 * ms / 1e3)) if usable > 0 else 0
  steps = min(a.max_steps, max(a.min_steps, raw - raw % 5))
  info = {"ms_per_step_k": round(ms, 3), "compile_s": round(compile_s, 1), "basis": basis,
          "budget_s": round(budget_s, 1), "eval_reserve_s": round(eval_s, 1),
          "startup_s": a.startup_s, "steps_that_fit": raw, "num_steps": steps}
  return steps, info


def stage_train(c: Campaign, runs_dir: str) -> dict:
  """Each of --runs with K seeds in one program; the budget split evenly between the runs."""
  a = c.args
  left = c.left() - a.pack_reserve_s - a.tables_reserve_s - a.timing_b_min_s
  budget = min(a.train_s, left)
  info = {"runs": {}}
  if budget < a.train_min_s:
    record(c, "train", "skipped", 0.0,
           error=f"deadline: {budget:.0f} s for training, below --train_min_s={a.train_min_s:.0f}")
    return info
  per_run = budget / len(a.runs)
  for run in a.runs:
    # steps planned for (1 - margin) of the run's share; the share itself is its time limit, so
    # an evaluation slower than its reserve does not cost the whole run
    steps, plan = plan_steps(c, per_run * (1 - a.train_margin))
    workdir = os.path.join(runs_dir, run)
    cmd = [sys.executable, "-m", "affectjax.main", _config_flag("ganmut", _train_arg(a, run)),
           *train_overrides(a, run, steps, runs_dir), f"--workdir={workdir}"]
    rec = run_item(c, f"train_{run}", cmd, timeout_s=per_run, min_s=a.train_min_s / len(a.runs),
                   reserve_s=a.pack_reserve_s + a.tables_reserve_s, plan=plan)
    plan.update(_training_speed(workdir))
    info["runs"][run] = {**plan, "status": rec["status"], "wall_s": rec["wall_s"]}
  return info


def _training_speed(workdir: str) -> dict:
  """Steps per second the run's loop logged (metrics.jsonl), over its logged intervals."""
  rates = []
  try:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
      for line in f:
        row = json.loads(line)
        if "steps_per_sec" in row:
          rates.append(float(row["steps_per_sec"]))
  except (OSError, ValueError):
    return {}
  if not rates:
    return {}
  steady = rates[1:] or rates  # the first interval holds the compile
  return {"loop_steps_per_s": round(sum(steady) / len(steady), 3),
          "loop_ms_per_step": round(1e3 * len(steady) / sum(steady), 3)}


def stage_tables(c: Campaign, runs_dir: str) -> dict:
  """experiments/ganmut.py's tables from the K-seed runs (--tables_only: it trains nothing; each
  run trained here is adopted by affectjax.runner from its seeds.json first)."""
  a = c.args
  if not glob.glob(os.path.join(runs_dir, "*", "seed_*", "ganmut_metrics.json")):
    record(c, "tables", "skipped", 0.0, error="no run wrote ganmut_metrics.json")
    return {}
  from affectjax import runner
  for run in RUN_ARGS:
    runner.adopt(runs_dir, run)
  run_item(c, "tables", [sys.executable, "experiments/ganmut.py", f"--workdir={runs_dir}",
                         "--tables_only", f"--seeds={a.seeds}", "--seed=0"],
           timeout_s=180, min_s=5, reserve_s=a.pack_reserve_s)
  return read_verdicts(runs_dir)


def read_verdicts(runs_dir: str) -> dict:
  """The verdict rows of tables.md and the evaluator's accuracy on real test faces per seed."""
  out = {"verdicts": [], "evaluator_acc_test": []}
  try:
    with open(os.path.join(runs_dir, "tables.md")) as f:
      text = f.read()
  except OSError:
    text = ""
  section = text.split("## Verdicts", 1)[1] if "## Verdicts" in text else ""
  rows = [[x.strip() for x in line.strip().strip("|").split("|")]
          for line in section.split("\n## ", 1)[0].splitlines() if line.startswith("|")]
  rows = [r for r in rows if not all(set(x) <= set("-:") for x in r)]  # the header's rule
  if rows:
    head = [h.lower() for h in rows[0]]
    col = {name: head.index(name) if name in head else default
           for name, default in (("a", 1), ("b", 2), ("verdict", len(head) - 1))}
    for r in rows[1:]:
      if len(r) == len(head):
        out["verdicts"].append({"claim": r[0], "a": r[col["a"]], "b": r[col["b"]],
                                "verdict": r[col["verdict"]]})
  for path in sorted(glob.glob(os.path.join(runs_dir, "*", "seed_*", "ganmut_metrics.json"))):
    try:
      with open(path) as f:
        m = json.load(f)
      out["evaluator_acc_test"].append(round(float(m["evaluator_acc_test"]), 4))
    except (OSError, ValueError, KeyError):
      pass
  return out


# ---------------------------------------------------------------- summary and archive

def _ms(row: dict | None) -> float | None:
  if not row:
    return None
  for key in ("ms_per_step", "ms_per_iter_median_of_3", "ms_per_step_median_of_3"):
    if row.get(key) is not None:
      return float(row[key])
  return None


def ratios(c: Campaign) -> list[dict]:
  """Peer time / affectjax time for each pair timed in this run (>1: affectjax is faster)."""
  pairs = [("ganmut_fp32", "peer_ganmut_original", "bench_ganmut_fp32"),
           ("ganmut_bf16", "peer_ganmut_original", "bench_ganmut_bf16"),
           ("resnet18_fp32", "peer_resnet18_fp32", "bench_dual_domain_fp32"),
           ("resnet18_bf16", "peer_resnet18_bf16", "bench_dual_domain_bf16"),
           ("resnet18_bf16_vs_peer_fp32", "peer_resnet18_fp32", "bench_dual_domain_bf16")]
  out = []
  for name, peer, ours in pairs:
    p, o = _ms(_row(c, peer)), _ms(_row(c, ours))
    value = round(p / o, 3) if p and o else None
    goal = GOALS.get(name)
    out.append({"name": name, "peer": peer, "peer_ms": p, "ours": ours, "ours_ms": o,
                "ratio": value, "goal": goal,
                "met": None if value is None or goal is None else bool(value >= goal)})
  return out


def _fmt(v, d=2) -> str:
  if v is None or (isinstance(v, float) and not math.isfinite(v)):
    return "—"
  return f"{v:.{d}f}" if isinstance(v, float) else str(v)


_NOTE_KEYS = ("compile_s", "num_seeds", "image_size", "batch_size", "gflop_per_step_hlo",
              "tflop_per_s_hlo", "images_per_s", "examples_per_s", "g_step_gating")


def _note(rec: dict) -> str:
  """What a row adds: compile time, seeds, FLOP rate, the D and G steps apart where bench prints
  them (any *_ms_*, *peak*, *tflop* field), the probe's versions and TF32 flags, or the error."""
  if rec.get("error"):
    return rec["error"].replace("|", "/")[:200]
  row = (rec.get("rows") or [{}])[0]
  parts = [f"{k}={v}" for k, v in row.items() if k in _NOTE_KEYS or (
      k not in ("ms_per_step", "ms_per_iter_median_of_3", "ms_per_step_median_of_3")
      and ("ms" in k.split("_") or "peak" in k or "tflop" in k))]
  if not parts and row and rec["name"] == "env":
    parts = [f"{k}={v}" for k, v in row.items()]
  if rec.get("note"):
    parts.append(rec["note"])
  if rec.get("plan"):
    parts.append(f"num_steps={rec['plan']['num_steps']} ({rec['plan']['basis']})")
  return ", ".join(parts).replace("|", "/")[:300]


def summary_text(c: Campaign, training: dict, verdicts: dict) -> str:
  lines = [SUMMARY_BEGIN, "", "| item | status | wall_s | ms_per_step | note |",
           "|---|---|---|---|---|"]
  for r in c.records:
    lines.append(f"| {r['name']} | {r['status']} | {r['wall_s']:.1f} | "
                 f"{_fmt(_ms((r.get('rows') or [None])[0]))} | {_note(r)} |")
  lines += ["", "| ratio (peer ms / affectjax ms) | peer_ms | affectjax_ms | ratio | goal | met |",
            "|---|---|---|---|---|---|"]
  for r in ratios(c):
    met = "—" if r["met"] is None else ("yes" if r["met"] else "NO")
    lines.append(f"| {r['name']} | {_fmt(r['peer_ms'])} | {_fmt(r['ours_ms'])} | "
                 f"{_fmt(r['ratio'])} | {_fmt(r['goal'], 1)} | {met} |")
  if c.args.dry_run:
    lines.append("(dry run: the peers ran at toy sizes, affectjax at its `tiny` configs; these "
                 "ratios mean nothing)")
  lines += ["", "| training run | status | num_steps | wall_s | loop_ms_per_step | basis |",
            "|---|---|---|---|---|---|"]
  for run, t in training.get("runs", {}).items():
    lines.append(f"| {run} | {t['status']} | {t['num_steps']} | {t['wall_s']:.1f} | "
                 f"{_fmt(t.get('loop_ms_per_step'))} | {t['basis']} |")
  acc = verdicts.get("evaluator_acc_test") or []
  lines += ["", f"evaluator accuracy on real test faces, per seed: "
                f"{', '.join(f'{v:.3f}' for v in acc) if acc else '—'}", "",
            "| claim (experiments/ganmut.py) | A | B | verdict |", "|---|---|---|---|"]
  for v in verdicts.get("verdicts", []):
    lines.append(f"| {v['claim']} | {v['a']} | {v['b']} | {v['verdict']} |")
  lines += ["", f"total wall: {c.elapsed():.1f} s (budget {c.args.budget_s:.0f} s)", SUMMARY_END]
  return "\n".join(lines) + "\n"


def parse_summary(text: str) -> dict:
  """The summary's tables back as {'items': [...], 'ratios': [...], 'training': [...],
  'claims': [...]} of cell lists (the inverse of summary_text; the test reads it)."""
  body = text.split(SUMMARY_BEGIN, 1)[1].split(SUMMARY_END, 1)[0]
  tables, current = [], None
  for line in body.splitlines():
    if line.startswith("|"):
      cells = [x.strip() for x in line.strip().strip("|").split("|")]
      if current is None:
        current = {"head": cells, "rows": []}
        tables.append(current)
      elif not all(set(x) <= set("-") for x in cells):
        current["rows"].append(dict(zip(current["head"], cells)))
    else:
      current = None
  names = ("items", "ratios", "training", "claims")
  return {n: t["rows"] for n, t in zip(names, tables)} | {"heads": [t["head"] for t in tables]}


def _keep(rel: str) -> bool:
  parts = rel.split(os.sep)
  return not (set(parts[:-1]) & _DROP_DIRS) and not rel.endswith(_DROP_EXT)


def pack(c: Campaign, extra: dict[str, str]) -> dict:
  """campaign.tar.gz in --out: every kept file of the work directory (figures, tables, metrics,
  logs) plus `extra` {name: text}; the largest PNGs are dropped (and listed) until it fits."""
  a = c.args
  os.makedirs(a.out, exist_ok=True)
  for name, text in extra.items():
    with open(os.path.join(c.work, name), "w") as f:
      f.write(text)
  files = []
  for root, dirs, names in os.walk(c.work):
    dirs[:] = sorted(d for d in dirs if d not in _DROP_DIRS)
    for n in sorted(names):
      rel = os.path.relpath(os.path.join(root, n), c.work)
      if _keep(rel):
        files.append(rel)
  dropped = []
  path = os.path.join(a.out, "campaign.tar.gz")
  while True:
    with tarfile.open(path, "w:gz") as tar:
      for rel in files:
        tar.add(os.path.join(c.work, rel), arcname=os.path.join("campaign", rel))
      if dropped:
        data = ("\n".join(dropped) + "\n").encode()
        info = tarfile.TarInfo("campaign/dropped_to_fit.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    size = os.path.getsize(path)
    pngs = sorted((f for f in files if f.endswith(".png")),
                  key=lambda f: os.path.getsize(os.path.join(c.work, f)))
    if size <= a.max_mib * MiB or not pngs:
      break
    dropped.append(pngs[-1])
    files.remove(pngs[-1])
  for name, text in extra.items():
    with open(os.path.join(a.out, name), "w") as f:
      f.write(text)
  return {"archive": path, "bytes": size, "files": len(files), "dropped": dropped}


# ---------------------------------------------------------------- prepare (here, before a call)

def prepare(args) -> int:
  """Fills --campaign_dir (git-ignored) with what the GPU host lacks: the ml-collections wheel,
  ../shared/bench's peers and, from a mirror of github:stefanodapolito/GANmut, its source."""
  d = args.campaign_dir
  os.makedirs(os.path.join(d, "wheels"), exist_ok=True)
  subprocess.run([sys.executable, "-m", "pip", "download", "ml-collections", "--no-deps",
                  "--only-binary=:all:", "-d", os.path.join(d, "wheels")], check=True)
  src = next((p for p in (os.path.join(REPO, "shared", "bench"),
                          os.path.join(REPO, "..", "shared", "bench")) if os.path.isdir(p)), None)
  if src:
    os.makedirs(os.path.join(d, "bench"), exist_ok=True)
    for f in glob.glob(os.path.join(src, "*.py")) + glob.glob(os.path.join(src, "*.md")):
      shutil.copy(f, os.path.join(d, "bench"))
  else:
    print("prepare: ../shared/bench not found; pass --bench_dir on the device", file=sys.stderr)
  if args.ganmut_mirror:
    dest = os.path.join(d, "ganmut_src")
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    archive = subprocess.run(["git", "-C", args.ganmut_mirror, "archive", "HEAD", "solver.py",
                              "main.py", "models", "utils"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
  total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
  print(f"prepared {d}: {total / MiB:.2f} MiB "
        f"({', '.join(sorted(os.listdir(d)))}); carry it: carry=[\"{os.path.relpath(d, REPO)}\"]")
  return 0


# ---------------------------------------------------------------- main

def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--out", help="where campaign.tar.gz, timings.json and summary.md go ($OUT)")
  p.add_argument("--dry_run", action="store_true", help="CPU, tiny configs, a few steps")
  p.add_argument("--prepare", action="store_true", help="fill --campaign_dir here and exit")
  p.add_argument("--campaign_dir", default=os.path.join(REPO, ".campaign"),
                 help="carried folder: wheels/, bench/, ganmut_src/ (from --prepare)")
  p.add_argument("--ganmut_mirror", help="--prepare: git dir of github:stefanodapolito/GANmut")
  p.add_argument("--ganmut_src", help="the original GANmut source (solver.py, main.py, models/, "
                                      "utils/); default CAMPAIGN_DIR/ganmut_src")
  p.add_argument("--bench_dir", help="the peers' folder; default CAMPAIGN_DIR/bench, else "
                                     "../shared/bench")
  p.add_argument("--peer_python", default=sys.executable, help="Python with torch for the peers")
  p.add_argument("--workdir", help="scratch for runs, logs and caches (default: a fresh temp dir)")
  p.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset of " +
                 ", ".join(STAGES))
  p.add_argument("--size", type=int, default=64, choices=(64, 128), help="training image size")
  p.add_argument("--runs", default="ganmut", help="experiments/ganmut.py runs to train, each "
                 "with K seeds: " + ", ".join(RUN_ARGS))
  p.add_argument("--seeds", type=int, default=3, help="K (train.num_seeds)")
  p.add_argument("--space_lr_scale", type=float, default=25.0)
  p.add_argument("--budget_s", type=float, default=None, help="global deadline (default 470; "
                 "dry run 1200)")
  p.add_argument("--train_s", type=float, default=None, help="training wall budget, all runs "
                 "(default 300; dry run 400)")
  p.add_argument("--train_min_s", type=float, default=None, help="skip training below this")
  p.add_argument("--eval_reserve_s", type=float, default=None,
                 help="a run's evaluator, reports and figures (default 90 s at 64, 180 at 128)")
  p.add_argument("--train_margin", type=float, default=0.15,
                 help="share of the training budget not planned for (slack for the evaluation)")
  p.add_argument("--train_overrides", default="",
                 help="more --config.X=Y overrides of the training runs (and their bench item), "
                      "e.g. '--config.eval.ere_batches=16' for a 128x128 run")
  p.add_argument("--startup_s", type=float, default=None, help="a run's start-up, data and init")
  p.add_argument("--min_steps", type=int, default=None)
  p.add_argument("--max_steps", type=int, default=None)
  p.add_argument("--fallback_ms", type=float, default=40.0,
                 help="K-seed step time to plan with when no bench item measured one")
  p.add_argument("--items", default=".", help="regex: the timing items to run (default all)")
  p.add_argument("--bench_steps", type=int, default=30)
  p.add_argument("--peer_iters", type=int, default=100)
  p.add_argument("--item_timeout_s", type=float, default=None, help="per timing item")
  p.add_argument("--item_min_s", type=float, default=None, help="skip a timing item below this")
  p.add_argument("--pack_reserve_s", type=float, default=20.0)
  p.add_argument("--tables_reserve_s", type=float, default=30.0)
  p.add_argument("--timing_b_min_s", type=float, default=0.0,
                 help="time kept for timing B when planning the training")
  p.add_argument("--max_mib", type=float, default=16.0)
  p.add_argument("--force_wheels", action="store_true",
                 help="install the carried wheels even where ml_collections imports")
  p.add_argument("--hide_tensorflow", type=int, default=None,
                 help="1: `import tensorflow` fails in the stages, as on the GPU host "
                      "(default: 1 in a dry run)")
  a = p.parse_args(argv)
  dry = a.dry_run
  # (dry run, GPU): the dry run checks that everything runs, on a CPU that may be shared and slow
  defaults = dict(budget_s=(1200.0, 470.0), train_s=(400.0, 300.0), train_min_s=(5.0, 60.0),
                  startup_s=(10.0, 20.0), min_steps=(2, 500), max_steps=(2, 1_000_000),
                  item_timeout_s=(240.0, 150.0), item_min_s=(5.0, 20.0), hide_tensorflow=(1, 0))
  for k, (d_dry, d_gpu) in defaults.items():
    if getattr(a, k) is None:
      setattr(a, k, d_dry if dry else d_gpu)
  a.runs = [r for r in a.runs.split(",") if r]
  a.stages = [s for s in a.stages.split(",") if s]
  bad = [r for r in a.runs if r not in RUN_ARGS] + [s for s in a.stages if s not in STAGES]
  if bad or not a.runs:
    p.error(f"unknown run or stage {bad}; runs: {', '.join(RUN_ARGS)}; stages: {', '.join(STAGES)}")
  if not a.prepare and not a.out:
    p.error("--out is required")
  a.campaign_dir = os.path.abspath(a.campaign_dir)
  if a.ganmut_src is None and os.path.isdir(os.path.join(a.campaign_dir, "ganmut_src")):
    a.ganmut_src = os.path.join(a.campaign_dir, "ganmut_src")
  if a.bench_dir is None:
    a.bench_dir = next((d for d in (os.path.join(a.campaign_dir, "bench"),
                                    os.path.join(REPO, "shared", "bench"),
                                    os.path.join(REPO, "..", "shared", "bench"))
                        if os.path.isdir(d)), None)
  for k in ("ganmut_src", "bench_dir", "out", "workdir"):
    if getattr(a, k):
      setattr(a, k, os.path.abspath(getattr(a, k)))
  return a


def make_env(a, work: str) -> dict:
  env = dict(os.environ)
  paths = [REPO] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
  if a.hide_tensorflow:
    hide = os.path.join(work, "hide_tf")
    os.makedirs(hide, exist_ok=True)
    for mod in ("tensorflow", "tensorflow_datasets"):
      with open(os.path.join(hide, f"{mod}.py"), "w") as f:
        f.write(f"raise ImportError('{mod} is hidden by tools/gpu_campaign.py (as on the GPU "
                f"host)')\n")
    paths.insert(0, hide)
  env["PYTHONPATH"] = os.pathsep.join(paths)
  env.setdefault("AFFECTJAX_CACHE", os.path.join(work, "data_cache"))
  env.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(work, "xla_cache"))
  env.update(PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2", MPLBACKEND="Agg")
  if a.dry_run:
    env["JAX_PLATFORMS"] = "cpu"
    env["CUDA_VISIBLE_DEVICES"] = ""
    # XLA:CPU compiles the tiny programs ~2x faster unoptimised; they run a few steps
    env.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
    # one BLAS thread: on a shared, oversubscribed CPU FED's 256x256 eigh took 30x longer with more
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
      env.setdefault(var, "1")
  return env


def main(argv=None) -> int:
  a = parse_args(argv)
  if a.prepare:
    return prepare(a)
  import tempfile
  work = a.workdir or tempfile.mkdtemp(prefix="gpu_campaign_")
  for sub in ("logs", "runs"):
    os.makedirs(os.path.join(work, sub), exist_ok=True)
  start = time.perf_counter()
  c = Campaign(args=a, work=work, start=start, deadline=start + a.budget_s, env=make_env(a, work))
  runs_dir = os.path.join(work, "runs")
  log(c, f"work {work}; out {a.out}; stages {','.join(a.stages)}; budget {a.budget_s:.0f} s; "
         f"{'DRY RUN (CPU, tiny)' if a.dry_run else f'GANmut at {a.size}x{a.size}'}; runs "
         f"{','.join(a.runs)} x {a.seeds} seeds; bench_dir {a.bench_dir}; ganmut_src {a.ganmut_src}")
  on = set(a.stages)
  training, verdicts = {}, {}
  if "setup" in on:
    in_process(c, "setup_stage", stage_setup, c)
  if "plan" in on:
    in_process(c, "plan_stage", stage_plan, c, runs_dir)
  if "env" in on:
    in_process(c, "env_stage", stage_env, c)
  torch_ok = _torch_ok(c) if {"timing_a", "timing_b"} & on else False
  if "timing_a" in on:
    in_process(c, "timing_a_stage", stage_timing, c, "a", runs_dir, torch_ok)
  if "train" in on:
    training = in_process(c, "train_stage", stage_train, c, runs_dir) or {}
  if "tables" in on:
    verdicts = in_process(c, "tables_stage", stage_tables, c, runs_dir) or {}
  if "timing_b" in on:
    in_process(c, "timing_b_stage", stage_timing, c, "b", runs_dir, torch_ok)
  # a stage wrapper's record only matters when the stage itself failed
  c.records = [r for r in c.records if r["status"] != "ok" or not r["name"].endswith("_stage")]
  text = summary_text(c, training, verdicts)
  timings = {"args": {k: v for k, v in vars(a).items()}, "work": work,
             "total_wall_s": round(c.elapsed(), 2), "records": c.records, "ratios": ratios(c),
             "training": training, **verdicts}
  result = None
  if "pack" in on:
    t = time.perf_counter()
    try:
      result = pack(c, {"timings.json": json.dumps(timings, indent=1, default=str),
                        "summary.md": text})
      log(c, f"pack: ok in {time.perf_counter() - t:.1f} s: {result['archive']} "
             f"{result['bytes'] / MiB:.2f} MiB, {result['files']} files"
             + (f", dropped {len(result['dropped'])} PNGs to fit" if result["dropped"] else ""))
    except Exception as e:  # noqa: BLE001
      log(c, f"pack: FAILED in {time.perf_counter() - t:.1f} s: {type(e).__name__}: {e}")
  print(text, flush=True)
  return 0 if result else 1


if __name__ == "__main__":
  sys.exit(main())
