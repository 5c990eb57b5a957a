"""End to end: three LeVAsa steps on an AffectNet-format fixture through the normal command line."""
import os
import subprocess
import sys

import fixtures_real as fx

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_levasa_trains_on_affectnet_fixture(tmp_path):
  fx.write_affectnet_bench(str(tmp_path / "manual"), 24, 32)
  env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
             XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
             TF_CPP_MIN_LOG_LEVEL="2")
  cmd = [sys.executable, "-m", "affectjax.main", "--config=configs/levasa.py:tiny",
         f"--workdir={tmp_path / 'wd'}", "--config.data.name=affectnet",
         f"--config.data.manual_dir={tmp_path / 'manual'}", f"--config.data.tfds_dir={tmp_path / 'tfds'}",
         "--config.data.image_size=32",
         "--config.train.num_steps=3", "--config.train.batch_size=8"]
  r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "done:" in r.stdout + r.stderr
  assert os.path.isdir(tmp_path / "tfds" / "affectjax_affectnet")  # read through the builder
