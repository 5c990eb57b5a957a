"""A simulated pod: the README's pod command as 2 processes on one machine (jax.distributed on
127.0.0.1, CPU collectives over gloo) trains, checkpoints, resumes and reports, and ends on the
parameters of a 1-process run."""
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest
import orbax.checkpoint as ocp

from affectjax import train
from affectjax.nn import cpu
from conftest import REPO, load_config


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _main(workdir, steps, nproc, report=True):
  env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_CPU_COLLECTIVES_IMPLEMENTATION="gloo",
             XLA_FLAGS=os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=1")
  args = [sys.executable, "-m", "affectjax.main", "--config=configs/levasa.py:tiny",
          f"--workdir={workdir}", f"--config.train.num_steps={steps}",
          "--config.train.checkpoint_every=5", "--config.eval.max_train_examples=64",
          f"--config.train.report={report}"]
  port = _free_port()
  pod = ["--distributed", f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={nproc}"]
  procs = [subprocess.Popen(args + (pod + [f"--process_id={i}"] if nproc > 1 else []), cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
           for i in range(nproc)]
  logs = [p.communicate(timeout=600)[0] for p in procs]
  for p, log in zip(procs, logs):
    assert p.returncode == 0, log[-3000:]
  return logs


def _params(workdir, step):
  """The checkpoint's params, restored onto this (1-device) process whatever topology wrote them."""
  mgr = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"),
                              item_handlers=ocp.StandardCheckpointHandler())
  here = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=here),
                        mgr.item_metadata(step).tree)
  return jax.tree.leaves(mgr.restore(step, args=ocp.args.StandardRestore(target))["params"])


@pytest.mark.skipif(not os.environ.get("AFFECTJAX_SLOW"), reason="four 1-minute process launches; tests/test_contract.py checks every method on 8 devices: AFFECTJAX_SLOW=1")
def test_two_processes_train_checkpoint_resume_and_report_like_one(tmp_path, monkeypatch):
  pod = tmp_path / "pod"
  first = _main(pod, 10, 2, report=False)
  assert sorted(os.listdir(pod / "checkpoints")) == ["10", "5"]
  assert sum("outputs in" in log for log in first) == 2  # both processes finished
  logs = _main(pod, 20, 2)  # resumes at step 10
  assert all("resuming from the checkpoint at step 10" in log for log in logs)
  # the 1-process run, in this (1-device) process: the same config as the command line's
  solo = load_config("levasa", "tiny")
  solo.train.num_steps, solo.train.checkpoint_every, solo.train.report = 20, 5, False
  solo.eval.max_train_examples = 64
  monkeypatch.setattr(cpu, "ENABLED", False)  # a pod keeps lax's convolutions (nn.cpu.on_cpu)
  train.train_and_evaluate(solo, str(tmp_path / "solo"))
  a = np.concatenate([np.asarray(x).ravel() for x in _params(pod, 20)])
  b = np.concatenate([np.asarray(x).ravel() for x in _params(tmp_path / "solo", 20)])
  # as tests/test_train.py's 1-vs-8-device check: a few near-zero Adam gradients may flip sign
  lr = 5e-4  # configs/levasa.py
  assert np.abs(a - b).max() < 2 * 20 * lr and np.isclose(a, b, rtol=2e-4, atol=2e-6).mean() > 0.9999
  # process 0 wrote the workdir files, once per step; the report is there
  steps = [int(l.split('"step": ')[1].split(",")[0].rstrip("}")) for l in open(pod / "metrics.jsonl")]
  assert steps == sorted(steps) and steps.count(15) == 1
  assert (pod / "levasa_report.md").stat().st_size > 0
