"""Where a config's train step spends its time, op by op (issue 27): the compiled step run under
jax.profiler, each XLA thunk's time summed over the profiled steps and read against the compiled
HLO (what the op is: a convolution, a matrix product, a fused element-wise loop; its shapes; its
FLOPs; the JAX op it came from).

  python tools/profile_step.py --config=configs/rbvae.py:srbvae,small [--steps=10] [--top=25]
      [--seeds=K] [--config.X=...]

Prints the top ops by time, one line each: ms per step, share of the summed op time, GFLOP and
the TFLOP/s it ran at (convolutions and dots), its kind (conv fwd / input-grad / filter-grad, from
JAX's transform that made it and the window's size; dot; loop fusion; ...), its output and operand
shapes and its source (the op name's last parts); then the time by kind. Op times are thunk times,
so on a multi-core CPU their sum can differ from the step's wall time (printed beside it).
affectjax.nn.cpu_kernel's calls show as 'filter-grad kernel', 'fwd kernel' and 'input-grad kernel'
(AFFECTJAX_CPU_KERNEL=0: XLA's convolutions, and the transposes of its filter gradients, instead).
"""
from __future__ import annotations

import collections
import glob
import gzip
import json
import math
import os
import re
import statistics
import tempfile
import time

import jax

from affectjax.nn import cpu_kernel

_FILTER_GRAD_CALL = f'custom_call_target="{cpu_kernel.TARGET}"'
_CONV_CALL = f'custom_call_target="{cpu_kernel.CONV_TARGET}"'
_INSTR = re.compile(r"^\s*(?:ROOT )?%(?P<name>[\w.\-]+) = (?P<shape>.+?) (?P<op>[\w\-]+)\((?P<args>.*)$")
_COMP = re.compile(r"^(ENTRY )?%(?P<name>[\w.\-]+) .*\{\s*$")
_SHAPE = re.compile(r"(\w+)\[([\d,]*)\]")


def _dims(shape: str) -> list[int]:
  m = _SHAPE.search(shape)
  return [int(d) for d in m.group(2).split(",") if d] if m else []


def _numel(shape: str) -> int:
  return math.prod(_dims(shape))


def parse_hlo(text: str) -> tuple[dict, dict]:
  """Instructions of a compiled HLO module's text: {name: {shape, op, line, comp}}, and each
  computation's instructions in order {comp: [name, ...]}."""
  instrs, comps, comp = {}, collections.defaultdict(list), None
  for line in text.splitlines():
    c = _COMP.match(line)
    if c:
      comp = c.group("name")
      continue
    m = _INSTR.match(line)
    if m and comp is not None:
      instrs[m.group("name")] = {"shape": m.group("shape"), "op": m.group("op"), "line": line,
                                 "comp": comp}
      comps[comp].append(m.group("name"))
  return instrs, comps


def _operand_shapes(line: str, instrs: dict) -> list[str]:
  args = line.split("(", 1)[1]
  return [instrs[n]["shape"] for n in re.findall(r"%([\w.\-]+)", args.split(")")[0]) if n in instrs]


def conv_flops(line: str, out_shape: str, lhs_shape: str) -> float:
  """2 x output elements x window size x input features per group, from an HLO convolution."""
  window = re.search(r"window=\{size=([\dx]+)", line)
  labels = re.search(r"dim_labels=(\w+)_", line)
  groups = re.search(r"feature_group_count=(\d+)", line)
  ksize = math.prod(int(k) for k in window.group(1).split("x")) if window else 1
  lhs = _dims(lhs_shape)
  cin = lhs[labels.group(1).index("f")] if labels and lhs else 1
  return 2.0 * _numel(out_shape) * ksize * cin / (int(groups.group(1)) if groups else 1)


def dot_flops(line: str, out_shape: str, lhs_shape: str) -> float:
  """2 x output elements x contracted size, from an HLO dot."""
  con = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", line)
  lhs = _dims(lhs_shape)
  k = math.prod(lhs[int(d)] for d in con.group(1).split(",") if d) if con else 1
  return 2.0 * _numel(out_shape) * k


def describe(name: str, instrs: dict, comps: dict) -> dict:
  """What one top-level instruction computes: kind, FLOPs, output shape, source op."""
  ins = instrs[name]
  line, op = ins["line"], ins["op"]
  core = ins
  if op == "fusion":  # a fusion's work is its called computation's convolution/dot, if any
    called = re.search(r"calls=%([\w.\-]+)", line)
    body = comps.get(called.group(1), []) if called else []
    heavy = [n for n in body if instrs[n]["op"] in ("convolution", "dot")]
    if heavy:
      core = instrs[heavy[-1]]
  flops = 0.0
  operands = _operand_shapes(core["line"], instrs)
  if core["op"] == "convolution" and operands:
    flops = conv_flops(core["line"], core["shape"], operands[0])
  elif core["op"] == "dot" and operands:
    flops = dot_flops(core["line"], core["shape"], operands[0])
  elif _FILTER_GRAD_CALL in core["line"] and len(operands) == 2:  # dw from x and g: 2 x g's positions x dw
    flops = 2.0 * math.prod(_dims(operands[1])[:-1]) * _numel(core["shape"])
  elif _CONV_CALL in core["line"] and len(operands) == 2:  # y from x and w: 2 x y x w's taps
    flops = 2.0 * _numel(core["shape"]) * math.prod(_dims(operands[1])[:-1])
  meta = re.search(r'op_name="([^"]*)"', core["line"]) or re.search(r'op_name="([^"]*)"', line)
  src = meta.group(1) if meta else ""
  if core["op"] == "convolution":
    # JAX names the backward pass transpose(jvp(...)); a filter gradient slides the cotangent
    # (a window as large as the feature map) over the input: its window outgrows its output
    window = re.search(r"window=\{size=([\dx]+)", core["line"])
    labels = re.search(r"dim_labels=(\w+)_(\w+)->(\w+)", core["line"])
    out = _dims(core["shape"])
    spatial = [out[i] for i, ch in enumerate(labels.group(3)) if ch.isdigit()] if labels else []
    win = [int(k) for k in window.group(1).split("x")] if window else []
    if win and spatial and math.prod(win) > math.prod(spatial):
      kind = "conv filter-grad"
    elif "transpose(" in src:
      kind = "conv input-grad"
    else:
      kind = "conv fwd"
  elif core["op"] == "dot":
    kind = "dot"
  elif _FILTER_GRAD_CALL in core["line"]:
    kind = "filter-grad kernel"  # affectjax.nn.cpu_kernel
  elif _CONV_CALL in core["line"]:
    kind = "input-grad kernel" if "transpose(" in src else "fwd kernel"
  elif op == "fusion":
    kind = re.search(r"kind=(\w+)", line).group(1) if "kind=" in line else "fusion"
    kind = {"kLoop": "loop fusion", "kInput": "reduce fusion", "kOutput": "output fusion"}.get(
        kind, kind)
  else:
    kind = op
  parts = [p for p in src.split("/") if p]
  return {"name": name, "kind": kind, "flops": flops, "shape": core["shape"].split("{")[0],
          "operands": [s.split("{")[0] for s in operands[:2]], "source": "/".join(parts[-3:])}


def thunk_times(trace_dir: str, names) -> dict:
  """Summed duration (us) per HLO instruction name of the complete events in the newest trace."""
  files = sorted(glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True),
                 key=os.path.getmtime)
  if not files:
    raise RuntimeError(f"jax.profiler wrote no *.trace.json.gz under {trace_dir}")
  with gzip.open(files[-1]) as f:
    data = json.load(f)
  events = data["traceEvents"] if isinstance(data, dict) else data
  out = collections.Counter()
  for e in events:
    if e.get("ph") == "X" and e.get("name") in names:
      out[e["name"]] += e.get("dur", 0)
  return out


def profile(fn, args, steps: int = 5, carry=None) -> dict:
  """Profiles `steps` calls of the jitted fn(*args) (carry(out, args) -> next args, for a train
  step that returns its new state): rows per op (ms per step, kind, FLOPs, TFLOP/s), the wall ms
  per step, and the whole module's XLA FLOP count."""
  lowered = fn.lower(*args)
  compiled = lowered.compile()
  instrs, comps = parse_hlo(compiled.as_text())
  out = compiled(*args)
  jax.block_until_ready(out)
  args = carry(out, args) if carry else args
  walls = []
  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d, create_perfetto_trace=True):
      for _ in range(steps):
        t = time.perf_counter()
        out = compiled(*args)
        jax.block_until_ready(out)
        walls.append(time.perf_counter() - t)
        args = carry(out, args) if carry else args
    times = thunk_times(d, set(instrs))
  rows = []
  for name, us in times.items():
    r = describe(name, instrs, comps)
    r["ms"] = us / 1e3 / steps
    r["tflop_s"] = r["flops"] / (r["ms"] * 1e9) if r["flops"] and r["ms"] else None
    rows.append(r)
  rows.sort(key=lambda r: -r["ms"])
  return {"rows": rows, "wall_ms": 1e3 * statistics.median(walls),
          "hlo_gflop": cpu_kernel.lowered_flops(lowered) / 1e9}


def format_report(prof: dict, top: int = 25) -> str:
  rows = prof["rows"]
  total = sum(r["ms"] for r in rows) or 1.0
  out = [f"step wall {prof['wall_ms']:.1f} ms (median); summed op time {total:.1f} ms per step; "
         f"FLOP count (XLA's + the kernel's) {prof['hlo_gflop']:.2f} GFLOP per step",
         f"{'ms':>8} {'share':>6} {'GFLOP':>7} {'TFLOP/s':>7}  {'kind':<17} {'output':<22} "
         "operands / source"]
  for r in rows[:top]:
    tf = f"{r['tflop_s']:.3f}" if r["tflop_s"] else ""
    gf = f"{r['flops'] / 1e9:.3f}" if r["flops"] else ""
    out.append(f"{r['ms']:8.2f} {100 * r['ms'] / total:5.1f}% {gf:>7} {tf:>7}  {r['kind']:<17} "
               f"{r['shape']:<22} {' x '.join(r['operands'])}  {r['source']}")
  by = collections.defaultdict(lambda: [0.0, 0.0, 0])
  for r in rows:
    b = by[r["kind"]]
    b[0] += r["ms"]
    b[1] += r["flops"]
    b[2] += 1
  out.append("\nby kind:")
  for k, (ms, fl, n) in sorted(by.items(), key=lambda kv: -kv[1][0]):
    rate = f", {fl / (ms * 1e9):.3f} TFLOP/s" if fl and ms else ""
    out.append(f"  {k:<17} {ms:8.2f} ms ({100 * ms / total:4.1f} %), {n} ops{rate}")
  return "\n".join(out)


def main(argv):
  del argv
  from absl import flags
  from affectjax import train
  cfg = flags.FLAGS["config"].value.copy_and_resolve_references()
  if flags.FLAGS.seeds:
    cfg.train.num_seeds = flags.FLAGS.seeds
  s = train.setup(cfg)
  state = train.init_state(s)
  step = train.compile_step(s)
  batch = train.to_global(s, train.first_batch(s))
  prof = profile(step, (state, batch), steps=flags.FLAGS.steps,
                 carry=lambda out, args: (out[0], args[1]))
  print(f"# {cfg.method}:{cfg.variant}, {cfg.train.num_seeds} seed(s), batch "
        f"{cfg.train.batch_size}, {jax.devices()[0].platform}")
  print(format_report(prof, flags.FLAGS.top))


if __name__ == "__main__":
  from absl import app, flags
  from ml_collections import config_flags
  from affectjax import errors
  config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:variant]).")
  flags.DEFINE_integer("steps", 10, "Profiled steps (after one untimed step).")
  flags.DEFINE_integer("top", 25, "Ops to list.")
  flags.DEFINE_integer("seeds", 0, "config.train.num_seeds (0: the config's).")
  flags.mark_flags_as_required(["config"])
  app.run(errors.one_line(main))
