"""Safe resume: a workdir of another config is refused untouched; an unreadable newest checkpoint is
moved aside and the run resumes from the newest readable one (exact resume of every method: test_contract.py);
a loss passed the way the README says replaces the default."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from affectjax import train
from conftest import REPO, levasa_tiny


_levasa = levasa_tiny


def _tree_files(root):
  return {os.path.join(d, f): os.path.getmtime(os.path.join(d, f))
          for d, _, fs in os.walk(root) for f in fs}


def test_a_config_with_other_state_shapes_is_refused_and_nothing_is_touched(tmp_path):
  workdir = str(tmp_path)
  train.train_and_evaluate(_levasa(train__num_steps=10), workdir)
  before = _tree_files(workdir)
  with pytest.raises(train.WorkdirError) as e:
    train.train_and_evaluate(_levasa(train__num_steps=10, model__head_hidden=7), workdir)
  message = str(e.value)
  assert "model.head_hidden: 64 -> 7" in message and "new --workdir" in message
  assert "\n" not in message
  assert _tree_files(workdir) == before  # no file written, moved or deleted


def test_an_unreadable_newest_checkpoint_is_moved_aside_and_the_older_one_resumes(tmp_path):
  whole = train.train_and_evaluate(_levasa(), str(tmp_path / "whole"))[0]
  workdir = tmp_path / "damaged"
  train.train_and_evaluate(_levasa(), str(workdir))  # checkpoints at steps 10 and 20
  for d, _, files in os.walk(workdir / "checkpoints" / "20"):
    for f in files:  # every file of the newest checkpoint overwritten with garbage
      with open(os.path.join(d, f), "wb") as fh:
        fh.write(b"\x00garbage")
  with pytest.warns(UserWarning, match=r"checkpoint at step 20 .* cannot be read"):
    resumed = train.train_and_evaluate(_levasa(), str(workdir))[0]
  # resumed from step 10 and retrained steps 11-20: the same parameters as the uninterrupted run
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, whole.params),
               jax.tree.map(np.asarray, resumed.params))
  moved = os.listdir(workdir / "checkpoints_unreadable")
  assert len(moved) == 1 and moved[0].startswith("20_")  # kept, not deleted
  assert sorted(os.listdir(workdir / "checkpoints")) == ["10", "20"]


_MY_LOSS = '''
from affectjax.methods import levasa

from affectjax.objective import Out

def recon_only(params, aux, batch, key, step, ctx):
  """Eq. 3 without the KL and VA terms: what kl_weight = va_weight = 0 computes."""
  out = levasa.eq3(params, aux, batch, key, step, ctx)
  return Out({"vae": out.metrics["recon"]}, dict(out.metrics, loss=out.metrics["recon"]), out.aux)
'''


def test_a_loss_passed_as_the_readme_says_replaces_the_default(tmp_path):
  (tmp_path / "my_losses.py").write_text(_MY_LOSS)
  # (Python's objective= is tests/test_contract.py's injection, on every method)
  # command line: --config.loss.fn=module:function
  env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
  res = subprocess.run([sys.executable, "-m", "affectjax.main", "--config=configs/levasa.py:tiny",
                        f"--workdir={tmp_path / 'cli'}", "--config.train.num_steps=5",
                        "--config.train.report=False", "--config.loss.fn=my_losses:recon_only"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert res.returncode == 0, res.stderr[-2000:]
  rows = [json.loads(l) for l in open(tmp_path / "cli" / "metrics.jsonl") if '"loss"' in l]
  assert rows[-1]["loss"] == pytest.approx(rows[-1]["recon"])  # the logged loss is recon only
  bad = subprocess.run([sys.executable, "-m", "affectjax.main", "--config=configs/levasa.py:tiny",
                        f"--workdir={tmp_path / 'bad'}", "--config.loss.fn=no_such_module:f"],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
  assert bad.returncode == 1
  assert bad.stderr.strip().splitlines()[-1].startswith("affectjax: error: config.loss.fn='no_such_module:f'")
