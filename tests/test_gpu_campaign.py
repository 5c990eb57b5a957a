"""tools/gpu_campaign.py: its dry run on the CPU (the same stages as on a GPU, tiny sizes) packs an
archive under the size limit with the tables, metrics and figures of a 3-seed GANmut run, and a
summary that parses; its arithmetic (ratios, the step count, the archive's size cap, timeouts)
against hand-computed values. The dry run over every timing item takes minutes: AFFECTJAX_SLOW=1."""
import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load():
  spec = importlib.util.spec_from_file_location("gpu_campaign",
                                                os.path.join(ROOT, "tools", "gpu_campaign.py"))
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module  # its dataclass looks its module up while being defined
  spec.loader.exec_module(module)
  return module


gc = _load()


def _campaign(tmp_path, argv=(), budget_s=100.0):
  args = gc.parse_args(["--out", str(tmp_path / "out"), "--budget_s", str(budget_s), *argv])
  work = tmp_path / "work"
  (work / "logs").mkdir(parents=True)
  start = time.perf_counter()
  return gc.Campaign(args=args, work=str(work), start=start, deadline=start + budget_s,
                     env=dict(os.environ))


def _ok(c, name, **row):
  c.records.append({"name": name, "status": "ok", "wall_s": 1.0, "rows": [row]})


def test_ratios_and_the_summary_round_trip(tmp_path):
  c = _campaign(tmp_path)
  _ok(c, "peer_ganmut_original", ms_per_iter_median_of_3=30.68)
  _ok(c, "bench_ganmut_fp32", ms_per_step=10.0, compile_s=31.0, d_step_ms=8.5, g_step_ms=19.9)
  _ok(c, "bench_ganmut_bf16", ms_per_step=6.5)
  c.records.append({"name": "bench_rbvae_fp32", "status": "timeout", "wall_s": 150.0,
                    "error": "killed at 150 s"})
  by_name = {r["name"]: r for r in gc.ratios(c)}
  assert by_name["ganmut_fp32"]["ratio"] == pytest.approx(3.068)  # 30.68 / 10.0: the goal's 3x met
  assert by_name["ganmut_fp32"]["met"] is True
  assert by_name["ganmut_bf16"]["ratio"] == pytest.approx(4.72)  # 30.68 / 6.5: short of 5x
  assert by_name["ganmut_bf16"]["met"] is False
  assert by_name["resnet18_fp32"]["ratio"] is None  # neither side ran

  verdicts = {"verdicts": [{"claim": "c1", "a": "GANmut", "b": "chance", "verdict": "holds"}],
              "evaluator_acc_test": [0.9, 0.91, 0.92]}
  training = {"runs": {"ganmut": {"status": "ok", "num_steps": 12000, "wall_s": 290.0,
                                  "loop_ms_per_step": 11.2, "basis": "measured K-seed step"}}}
  parsed = gc.parse_summary(gc.summary_text(c, training, verdicts))
  items = {r["item"]: r for r in parsed["items"]}
  assert items["bench_ganmut_fp32"]["ms_per_step"] == "10.00"
  assert "d_step_ms=8.5" in items["bench_ganmut_fp32"]["note"]  # bench's D/G split is shown
  assert items["bench_rbvae_fp32"]["status"] == "timeout"
  ratio_rows = {r["ratio (peer ms / affectjax ms)"]: r for r in parsed["ratios"]}
  assert ratio_rows["ganmut_fp32"]["ratio"] == "3.07" and ratio_rows["ganmut_fp32"]["met"] == "yes"
  assert ratio_rows["ganmut_bf16"]["met"] == "NO"
  assert parsed["training"][0]["num_steps"] == "12000"
  assert parsed["claims"] == [{"claim (experiments/ganmut.py)": "c1", "A": "GANmut", "B": "chance",
                               "verdict": "holds"}]


def test_step_count_from_the_measured_k_seed_step(tmp_path):
  c = _campaign(tmp_path)
  _ok(c, "bench_ganmut_train_k3", ms_per_step=10.0, compile_s=20.0)
  steps, info = gc.plan_steps(c, 300.0)
  # (300 s - 20 start-up - 1.5 x 20 compile - 90 evaluation) / (1.15 x 10 ms) = 13,913 -> 13,910
  assert info["steps_that_fit"] == 13913 and steps == 13910
  assert steps % 5 == 0  # whole n_critic cycles
  steps, info = gc.plan_steps(c, 100.0)  # nothing fits: the floor, said so
  assert info["steps_that_fit"] == 0 and steps == c.args.min_steps
  c.records.clear()
  _ok(c, "bench_ganmut_fp32", ms_per_step=12.0, compile_s=30.0)  # the 128x128 one-seed step only
  _, info = gc.plan_steps(c, 300.0)
  assert info["ms_per_step_k"] == pytest.approx(1.5 * 12.0 * 3 * (64 / 128) ** 2)
  assert info["basis"].startswith("scaled")


def test_pack_keeps_reports_drops_checkpoints_and_the_largest_figure_to_fit(tmp_path):
  c = _campaign(tmp_path, ["--max_mib", "0.35"])
  run = os.path.join(c.work, "runs", "ganmut", "seed_0")
  os.makedirs(os.path.join(c.work, "runs", "ganmut", "checkpoints", "7"))
  os.makedirs(run)
  files = {"runs/ganmut/checkpoints/7/state": 1000, "runs/evaluator.msgpack": 1000,
           "runs/ganmut/seed_0/big.png": 300_000, "runs/ganmut/seed_0/small.png": 100_000,
           "runs/ganmut/seed_0/ganmut_metrics.json": 100}
  for rel, n in files.items():
    with open(os.path.join(c.work, rel), "wb") as f:
      f.write(os.urandom(n))  # incompressible: the archive's size is the files' size
  out = gc.pack(c, {"summary.md": "x"})
  assert out["bytes"] <= 0.35 * gc.MiB
  assert out["dropped"] == ["runs/ganmut/seed_0/big.png"]
  with tarfile.open(out["archive"]) as tar:
    names = set(tar.getnames())
  assert "campaign/runs/ganmut/seed_0/small.png" in names
  assert "campaign/runs/ganmut/seed_0/ganmut_metrics.json" in names
  assert "campaign/dropped_to_fit.txt" in names and "campaign/summary.md" in names
  assert not any("checkpoints" in n or n.endswith(".msgpack") for n in names)
  assert open(os.path.join(c.args.out, "summary.md")).read() == "x"


def test_a_hang_is_killed_at_its_limit_and_a_stage_past_the_deadline_skipped(tmp_path):
  c = _campaign(tmp_path, ["--pack_reserve_s", "0"])
  t = time.perf_counter()
  rec = gc.run_item(c, "hang", ["bash", "-c", "sleep 60 & wait"], timeout_s=1.0, min_s=0.5)
  assert rec["status"] == "timeout" and time.perf_counter() - t < 10  # its child was killed too
  rec = gc.run_item(c, "fails", [sys.executable, "-c", "import sys; print('{\"a\": 1}'); "
                                 "sys.exit('boom')"], timeout_s=30.0)
  assert rec["status"] == "failed" and rec["rc"] == 1 and "boom" in rec["error"]
  assert rec["rows"] == [{"a": 1}]
  c.deadline = time.perf_counter() + 2.0
  rec = gc.run_item(c, "late", ["true"], timeout_s=30.0, min_s=5.0)
  assert rec["status"] == "skipped" and "deadline" in rec["error"]


def _dry_run(tmp_path, *extra, timeout=900):
  out, work = tmp_path / "out", tmp_path / "work"
  env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gpu_campaign.py"),
                         "--dry_run", f"--out={out}", f"--workdir={work}", *extra],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
  return proc.stdout, out


def _check_archive(out):
  path = out / "campaign.tar.gz"
  assert path.exists() and path.stat().st_size <= 16 * gc.MiB
  with tarfile.open(path) as tar:
    names = set(tar.getnames())
    timings = json.load(tar.extractfile("campaign/timings.json"))
  for i in range(3):  # the 3-seed GANmut run's report and figures, each seed apart
    for f in ("ganmut_metrics.json", "space.png", "interpolation.png", "gamut.png"):
      assert f"campaign/runs/ganmut/seed_{i}/{f}" in names
  for f in ("runs/tables.md", "runs/ganmut/seeds.md", "runs/ganmut/seeds.json", "summary.md",
            "logs/plan.log", "logs/train_ganmut.log"):
    assert f"campaign/{f}" in names
  assert not any("/checkpoints/" in n or n.endswith(".msgpack") for n in names)
  return timings


@pytest.mark.skipif(not os.environ.get("AFFECTJAX_SLOW"), reason="a 40 s CPU dry run: AFFECTJAX_SLOW=1")
def test_dry_run_packs_the_three_seed_run_and_a_summary_that_parses(tmp_path):
  # every stage but the timing items (AFFECTJAX_SLOW=1 runs them all): the plan stage still loads
  # and validates each item's config and flags exactly as tools/bench.py would parse them
  stdout, out = _dry_run(tmp_path, "--items=^$")
  timings = _check_archive(out)
  status = {r["name"]: r["status"] for r in timings["records"]}
  assert status["plan"] == "ok" and status["train_ganmut"] == "ok" and status["tables"] == "ok"
  assert timings["training"]["runs"]["ganmut"]["num_steps"] == 2
  parsed = gc.parse_summary(stdout)
  assert {r["item"] for r in parsed["items"]} >= {"plan", "env", "train_ganmut", "tables"}
  assert all(float(r["wall_s"]) >= 0 for r in parsed["items"])
  assert [r["training run"] for r in parsed["training"]] == ["ganmut"]
  claims = {r["claim (experiments/ganmut.py)"]: r["verdict"] for r in parsed["claims"]}
  assert "the learned directions follow valence-arousal better than chance" in claims
  # a verdict word, then (in newer tables) the test behind it
  assert {v.split(":")[0] for v in claims.values()} <= {"holds", "does NOT hold", "inconclusive"}
  assert len(timings["evaluator_acc_test"]) == 3  # the evaluator's accuracy beside each seed


@pytest.mark.skipif(not os.environ.get("AFFECTJAX_SLOW"), reason="minutes on CPU: AFFECTJAX_SLOW=1")
def test_slow_dry_run_of_every_timing_item(tmp_path):
  stdout, out = _dry_run(tmp_path, timeout=1800)
  timings = _check_archive(out)
  torch_ok = importlib.util.find_spec("torch") is not None
  for r in timings["records"]:
    if r["name"].startswith("peer_") and not torch_ok:
      assert r["status"] == "skipped", r
    elif r["name"] != "peer_ganmut_original":  # needs the original source, never in CI
      assert r["status"] == "ok", r
  benched = {r["name"] for r in timings["records"] if r["name"].startswith("bench_")}
  assert benched == {"bench_ganmut_fp32", "bench_ganmut_bf16", "bench_ganmut_train_k3",
                     "bench_dual_domain_fp32", "bench_dual_domain_bf16", "bench_rbvae_fp32",
                     "bench_rbvae_bf16", "bench_levasa_fp32", "bench_triplet_vae_fp32"}
  assert timings["training"]["runs"]["ganmut"]["basis"] == "measured K-seed step"
  assert gc.parse_summary(stdout)["items"]
