"""The PyTorch converters against PyTorch itself on random weights (skipped where torch is absent:
pip install -e ".[torch]"): tools/convert_ganmut_checkpoint.py against a module with the original
GANmut generator's layout, tools/convert_torchvision_resnet18.py against torchvision's resnet18."""
import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool(name):
  spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


# Runs a tool as a user would from a checkout that is not pip-installed: the repository is taken
# off sys.path (and any editable-install finder off sys.meta_path) before the script starts.
UNINSTALLED = """
import os, runpy, sys
repo = {repo!r}
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.getcwd()) != repo]
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
for m in [m for m in sys.modules if m == "affectjax" or m.startswith("affectjax.")]:
  del sys.modules[m]
sys.argv = [{script!r}] + {args!r}
runpy.run_path({script!r}, run_name="__main__")
"""


def _run_uninstalled(tmp_path, script, args):
  code = UNINSTALLED.format(repo=REPO, script=os.path.join(REPO, "tools", script), args=args)
  env = dict(os.environ, PYTHONPATH="")
  out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=900)
  assert out.returncode == 0, out.stderr[-2000:]
  return out.stdout


def _max_diff(text, name):
  return float(re.search(rf"{name} ([0-9.e+-]+)", text).group(1))


@pytest.mark.parametrize("space", ["linear", "gaussian"])
def test_ganmut_checkpoint_matches_pytorch(space, tmp_path):
  cg = _tool("convert_ganmut_checkpoint")
  sd = {k: v.numpy() for k, v in cg.random_state_dict(space, conv_dim=8, repeat_num=2).items()}
  wd = str(tmp_path / "run")
  cg.convert(sd, wd, image_size=16, step=7)
  diffs = cg.check(sd, wd, image_size=16)
  print(f"{space}: max |affectjax - PyTorch| {diffs}")
  assert diffs["generator"] < 1e-4 and diffs["codes"] < 1e-6
  if space == "gaussian":
    assert diffs["covariances"] < 1e-5
  # the converted run is one that apply reads: an edit at a point is G at that code
  from affectjax.apply import Options, apply
  from PIL import Image
  Image.fromarray(np.full((20, 24, 3), 90, np.uint8)).save(tmp_path / "face.png")
  s = apply(wd, str(tmp_path / "face.png"), str(tmp_path / "out"),
            Options(point=(0.3, -0.2), progress=False), log=lambda m: None)
  assert s.processed and os.path.exists(tmp_path / "out" / "face.x_0.3_y_-0.2.png")


def test_ganmut_converter_script_without_install(tmp_path):
  out = _run_uninstalled(tmp_path, "convert_ganmut_checkpoint.py",
                         ["5-G.ckpt", "run", "--random", "linear", "--image_size", "16", "--check"])
  assert "wrote run: linear GANmut, 7 classes" in out and "step 5" in out
  assert _max_diff(out, "generator") < 1e-4


def test_resnet18_converter_matches_torchvision(tmp_path):
  torchvision = pytest.importorskip("torchvision")
  torch.manual_seed(0)
  model = torchvision.models.resnet18(weights=None)
  with torch.no_grad():  # non-trivial BatchNorm statistics and affines, as a trained network has
    for m in model.modules():
      if isinstance(m, torch.nn.BatchNorm2d):
        m.running_mean.normal_(0, 0.1)
        m.running_var.uniform_(0.5, 1.5)
        m.weight.uniform_(0.5, 1.5)
        m.bias.normal_(0, 0.1)
  torch.save(model.state_dict(), tmp_path / "r18.pth")
  # the output named without .npz: np.savez appends it, and the message and the check use that
  out = _run_uninstalled(tmp_path, "convert_torchvision_resnet18.py", ["r18.pth", "r18", "--check"])
  assert "to r18.npz" in out and os.path.exists(tmp_path / "r18.npz")
  diff = float(re.search(r"logits: ([0-9.e+-]+)", out).group(1))
  print(f"resnet18: max |affectjax - torchvision| of the logits {diff}")
  assert diff < 1e-3
  assert "re-initialised: ['fc.weight', 'fc.bias']" in out
