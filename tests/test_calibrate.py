"""Tests of tools/calibrate_faces.py: its numbers on a tiny preset against a NumPy hand-check."""
import importlib.util
import os

import numpy as np
import pytest

from affectjax.config import base_config
from affectjax.data import sources, synthetic
from affectjax.data.example import EMOTIONS
from affectjax.data.synthetic import faces, geometry, render
from affectjax.data.synthetic.generate import synthesize

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COL = {name: i for i, name in enumerate(synthetic.FACTOR_NAMES)}


def _tool():
  spec = importlib.util.spec_from_file_location(
      "calibrate_faces", os.path.join(REPO, "tools", "calibrate_faces.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope="module", autouse=True)
def _one_chunk_shape():
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(render, "CHUNK", 8)
    yield


def _tiny(**knobs):
  c = base_config()
  c.data.preset = "custom"
  c.data.num_identities = 10
  c.data.images_per_identity = 4
  c.data.image_size = 16
  for k, v in knobs.items():
    c.data[k] = v
  return c


def _hand_energies(c, idx):
  """Expression and nuisance energies of images idx, from generate()'s output alone (NumPy)."""
  opts = sources.synthetic_options(c.data, c.seed, "full")
  d = synthetic.generate(**opts)
  f = d["factors"][idx]
  ids = faces.sample_identities(opts["seed"], c.data.num_identities, 0, c.data.colour_variety)
  pose = {k: f[:, COL[k]] for k in faces.POSE_NAMES}  # as rendered (zoom included)
  light = {k: f[:, COL[k]] for k in faces.LIGHT_NAMES}
  n = len(idx)
  zero = np.zeros((n, len(EMOTIONS)), np.float32)
  neutral, _, _, _ = synthesize(ids, d["identity"][idx], zero, np.zeros(n), pose, light, 16)
  pose0, light0 = faces.frontal(n)
  pose0 = faces.zoomed(pose0, c.data.zoom, geometry.UNIT)
  frontal, _, _, _ = synthesize(ids, d["identity"][idx], zero, np.zeros(n), pose0, light0, 16)
  x, x0, x00 = (a.astype(np.float64) / 255 for a in (d["image"][idx], neutral, frontal))
  energy = lambda a, b: ((a - b) ** 2).sum((1, 2, 3)) / (x ** 2).sum((1, 2, 3))  # noqa: E731
  changed = (np.abs(x - x0) > 0.1).any(-1).mean((1, 2))
  return energy(x, x0), energy(x0, x00), changed, f[:, COL["clean_label"]].astype(int)


def test_energies_match_a_numpy_hand_check():
  tool = _tool()
  c = _tiny(zoom=1.3, pose_jitter=0.7, colour_variety=0.5)
  out = tool.energies(c.data, c.seed, 12)
  expr, nuis, changed, clean = _hand_energies(c, out["indices"])
  assert out["energy_images"] == 12
  np.testing.assert_allclose(out["expression_energy_mean"], expr.mean(), rtol=1e-6)
  np.testing.assert_allclose(out["expression_energy_median"], np.median(expr), rtol=1e-6)
  np.testing.assert_allclose(out["nuisance_energy"], nuis.mean(), rtol=1e-6)
  x = synthetic.generate(**sources.synthetic_options(c.data, c.seed, "full"))["image"]
  x01 = x[out["indices"]].astype(np.float64) / 255
  xpm = x[out["indices"]].astype(np.float64) / 127.5 - 1  # the models' scale
  diff_pm = expr * (x01 ** 2).sum((1, 2, 3)) * 4  # |x - x0|^2 rescaled to [-1, 1]
  np.testing.assert_allclose(out["expression_energy_mean_pm1"],
                             np.mean(diff_pm / (xpm ** 2).sum((1, 2, 3))), rtol=1e-6)
  np.testing.assert_allclose(out["pixels_changed_gt_0.1"], changed.mean(), rtol=1e-6)
  for e, value in out["expression_energy"].items():
    np.testing.assert_allclose(value, expr[clean == EMOTIONS.index(e)].mean(), rtol=1e-6)
  assert set(out["expression_energy"]) == {EMOTIONS[k] for k in np.unique(clean)}
  assert expr[clean != 0].min() > 0 and nuis.min() > 0  # expressions and jitter do show
  # Without any jitter the nuisance energy is exactly 0; faint (neutral) faces change little.
  still = tool.energies(_tiny(pose_jitter=0.0, light_jitter=0.0, neutral_fraction=1.0).data, 0, 8)
  assert still["nuisance_energy"] == 0.0 and set(still["expression_energy"]) == {"neutral"}
  assert still["expression_energy_mean"] < 0.2 * expr[clean != 0].mean()


def test_probe_accuracy_closed_forms():
  tool = _tool()
  rng = np.random.default_rng(0)
  y = rng.integers(0, 4, 200)
  onehot = np.eye(4)[y] + 0.01 * rng.standard_normal((200, 4))
  assert tool.probe_accuracy(onehot[:150], y[:150], onehot[150:], y[150:]) == 1.0
  noise = rng.standard_normal((200, 3))
  assert tool.probe_accuracy(noise[:150], y[:150], noise[150:], y[150:]) < 0.5


def test_measure_quick_on_a_tiny_preset(monkeypatch):
  from affectjax.evaluate import cnn_ceiling
  tool = _tool()
  c = _tiny(intensity_min=0.8, neutral_fraction=0.25)
  c.data.num_identities = 20
  seen = {}
  real_fit = cnn_ceiling.fit

  def spy(images, heads, train_idx, val_idx, **kw):
    seen.update(images=images, heads=heads, train=train_idx, val=val_idx)
    net = real_fit(images, heads, train_idx, val_idx, **kw)
    seen["history"] = net.history
    return net

  monkeypatch.setattr(cnn_ceiling, "fit", spy)
  out = tool.measure(c, quick=True)
  d = sources.synthetic_arrays(c.data, c.seed, "full")
  train, test = sources.split_by_identity(d["identity"], c.data.test_fraction, c.seed)
  # The one CNN (affectjax.evaluate.cnn_ceiling), with an emotion head on the stored uint8 images,
  # trained and stopped on the training identities only (two of them held out for stopping).
  assert "nn.Conv" not in open(os.path.join(REPO, "tools", "calibrate_faces.py")).read()
  assert seen["images"].dtype == np.uint8 and set(seen["heads"]) == {"emotion"}
  assert sorted(np.concatenate([seen["train"], seen["val"]]).tolist()) == train.tolist()
  assert not set(d["identity"][seen["val"]]) & set(d["identity"][seen["train"]])
  steps, losses = zip(*seen["history"])
  assert out["cnn_best_step"] == steps[int(np.argmin(losses))] and out["cnn_steps"] == steps[-1]
  ids = out["identities"]
  assert ids["train"] == 16 and ids["test"] == 4 and ids["cnn_validation"] == 2
  assert out["images"]["train"] == len(train) == 64 and out["images"]["test"] == len(test)
  assert out["images"]["cnn_validation"] == 8
  t = d["factors"][:, COL["intensity"]]
  assert out["intensity_below_0.3"] == pytest.approx(np.mean(t < 0.3))
  majority = np.bincount(d["label"][train]).argmax()
  assert out["chance_majority"] == pytest.approx(np.mean(d["label"][test] == majority))
  assert out["options"]["intensity_min"] == 0.8 and out["preset"] == "custom"
  assert 0 < out["cnn_steps"] <= 60 and 0 <= out["cnn_heldout_accuracy"] <= 1
  assert out["probe_au_accuracy"] > out["chance_majority"]  # the true AUs name the emotion
  assert out["energy_images"] == 32
