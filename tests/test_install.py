"""A non-editable `pip install .` works from another directory: the configs are importable as a
package, --config=configs/<method>.py finds the installed file, and no library code reads a file
of the repository."""
import json
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_non_editable_install_trains_from_another_directory(tmp_path):
  site, run, src = tmp_path / "site", tmp_path / "elsewhere", tmp_path / "src"
  run.mkdir()
  # from a copy: setuptools builds in the source tree (build/, *.egg-info), which would leave a
  # stale copy of deleted modules in the repository for the next install to pick up
  shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__", "runs", ".venv"))
  subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                  "--target", str(site), str(src)], check=True, cwd=run, capture_output=True)
  assert (site / "affectjax" / "nn" / "conv_kernels.cc").exists()  # the kernel's source ships
  env = dict(os.environ, PYTHONPATH=str(site), JAX_PLATFORMS="cpu")
  check = ("import affectjax, affectjax.configs as c; "
           "assert affectjax.__file__.startswith(%r), affectjax.__file__; "
           "print(c.get('levasa', 'continuous,tiny').method)" % str(site))
  out = subprocess.run([sys.executable, "-c", check], env=env, cwd=run, capture_output=True, text=True)
  assert out.returncode == 0 and out.stdout.strip() == "levasa", out.stderr[-2000:]
  wd = run / "wd"
  out = subprocess.run([sys.executable, "-m", "affectjax.main", "--config=configs/levasa.py:continuous,tiny",
                        f"--workdir={wd}", "--config.train.num_steps=2", "--config.train.log_every=1",
                        "--config.train.progress=False"],
                       env=env, cwd=run, capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
  assert json.load(open(wd / "config.json"))["method"] == "levasa"
  steps = [json.loads(line)["step"] for line in open(wd / "metrics.jsonl") if '"loss"' in line]
  assert steps and max(steps) == 2
