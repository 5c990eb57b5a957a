"""Dual-domain fusion: augmentation, label preparation, the Eq. 9 objective and its injection, SWA,
one prediction of the test split for evaluate and report, the AffectNet CLI run, and the GANmut
evaluator trained once through the loop, cached and reused."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import ndimage

import fixtures_real as fx
from conftest import REPO, load_config, with_fields
from affectjax import train
from affectjax.config import ConfigError
from affectjax.data.augment import augment
from affectjax.methods import dual_domain as dd
from affectjax.methods.dual_domain import evaluate as dd_eval


def tiny(arg="tiny", **overrides):
  return with_fields(load_config("dual_domain", arg), **overrides)


# ---------------------------------------------------------------- augmentation

def test_augment_is_identity_at_zero_strength_and_keeps_shapes():
  x = jax.random.uniform(jax.random.key(0), (3, 9, 11, 3), minval=-1, maxval=1)
  np.testing.assert_array_equal(augment(jax.random.key(1), x), x)
  full = augment(jax.random.key(1), x, flip_prob=0.5, brightness=0.4, contrast=0.4,
                    saturation=0.4, degrees=30, translate=0.2, scale=0.2)
  assert full.shape == x.shape and full.dtype == x.dtype
  assert np.all(np.abs(np.asarray(full)) <= 1.0) and not np.allclose(full, x)
  np.testing.assert_array_equal(augment(jax.random.key(2), x, flip_prob=1.0), x[:, :, ::-1])


def test_augment_affine_matches_scipy_bilinear():
  x = np.asarray(jax.random.uniform(jax.random.key(3), (2, 10, 12, 3), minval=-1, maxval=1))
  key = jax.random.key(4)
  out = np.asarray(augment(key, x, degrees=40, translate=0.15, scale=0.3))
  # the same draws as augment (keys 4-6 of the 7-way split), then scipy's bilinear sampler
  ks = jax.random.split(key, 7)
  angle = np.deg2rad(np.asarray(jax.random.uniform(ks[4], (2,), minval=-40, maxval=40)))
  shift = np.asarray(jax.random.uniform(ks[5], (2, 2), minval=-0.15, maxval=0.15)) * [10, 12]
  zoom = np.asarray(jax.random.uniform(ks[6], (2,), minval=0.7, maxval=1.3))
  yy, xx = np.meshgrid(np.arange(10.0), np.arange(12.0), indexing="ij")
  for i in range(2):
    py, px = yy - 4.5 - shift[i, 0], xx - 5.5 - shift[i, 1]
    sy = (np.cos(angle[i]) * py - np.sin(angle[i]) * px) / zoom[i] + 4.5
    sx = (np.sin(angle[i]) * py + np.cos(angle[i]) * px) / zoom[i] + 5.5
    for ch in range(3):
      ref = ndimage.map_coordinates(x[i, :, :, ch], [sy, sx], order=1, mode="grid-constant", cval=-1)
      np.testing.assert_allclose(out[i, :, :, ch], ref, atol=1e-5)


# ---------------------------------------------------------------- labels, step, SWA

@pytest.fixture(scope="module")
def setup():
  return train.setup(tiny("tiny,gmm,noise20"))


def test_prepare_flips_exactly_the_rate_and_keeps_the_given_labels(setup):
  t = setup.data.train
  given = t.fields["label_given"]
  noisy = t.fields["label"]
  np.testing.assert_array_equal(given, t.base.arrays["label"])
  n_known = np.sum(given >= 0)
  assert np.sum(noisy != given) == round(0.2 * n_known)
  p = t.fields["p_va"]
  np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
  counts = np.bincount(noisy, minlength=8)
  weights = setup.method.evaluate.keywords["info"]["class_weights"]
  np.testing.assert_allclose(weights[counts > 0], counts.max() / counts[counts > 0], rtol=1e-6)


def test_loss_is_eq9_against_numpy(setup):
  s = setup
  state = train.init_state(s)
  batch = {k: np.asarray(v) for k, v in train.first_batch(s)["data"].items()}
  cfg, info = s.config, s.method.evaluate.keywords["info"]
  model = s.method.evaluate.keywords["model"]
  batch["target"] = np.asarray(dd.targets_of(cfg, batch["label"], batch["p_va"]))

  ctx = dd.Context(model, cfg, jnp.asarray(info["class_weights"]))

  @jax.jit
  def both(params, stats, batch):  # one compile: the loss and the network's outputs it scores
    out = dd.eq9(params, stats, {"data": batch}, None, jnp.int32(0), ctx)
    logits, va_pred, _ = model.apply({"params": params[dd.PLAYER], "batch_stats": stats},
                                     batch["image"], train=True, mutable=["batch_stats"])[0]
    return out.losses[dd.PLAYER], out.metrics, logits, va_pred

  loss, metrics, logits, va_pred = both(state.params, state.aux, batch)
  logits, va_pred = np.asarray(logits, np.float64), np.asarray(va_pred, np.float64)
  w, y, lab = info["class_weights"], batch["target"].astype(np.float64), batch["label"]
  onehot = np.eye(8)[lab]
  np.testing.assert_allclose(y, 0.5 * onehot + 0.5 * batch["p_va"], atol=1e-6)  # Eq. 4
  logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  ce = np.mean(-np.sum(w * y * logp, -1))  # Eq. 6
  p = np.exp(logp)
  cos = np.mean((y @ w) * (1 - np.sum(p * y, -1) / np.linalg.norm(p, axis=-1) / np.linalg.norm(y, axis=-1)))
  l2 = np.mean(w[lab] * np.sum((va_pred - batch["va"]) ** 2, -1))  # Eq. 8
  np.testing.assert_allclose(float(loss), ce + cos + l2, rtol=2e-4)  # Eq. 9
  np.testing.assert_allclose([metrics["ce"], metrics["cos"], metrics["l2"]], [ce, cos, l2], rtol=2e-4)


def test_steps_learn_and_swa_averages_the_last_params(setup):
  s = setup
  state = train.init_state(s)
  step = train.compile_step(s)
  batches = train.input_batches(s, 0)
  seen, losses = [], []
  for i in range(s.config.train.num_steps):  # 6 steps; SWA from step 3, every step
    state, m = step(state, train.to_global(s, next(batches)))
    losses.append(float(m["loss"]))
    seen.append(jax.tree.map(np.asarray, state.params[dd.PLAYER]))
  assert all(np.isfinite(losses))
  assert int(state.swa.count) == 4
  mean = jax.tree.map(lambda *p: np.mean(np.stack(p), 0), *seen[2:])
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
               jax.tree.map(np.asarray, state.swa.params), mean)
  # the evaluation uses the SWA weights with BatchNorm statistics recomputed for them
  local = train.host_state(state)
  variables, used = dd.eval_variables(local, s.data, model=s.method.evaluate.keywords["model"],
                                      config=s.config)
  assert used
  jax.tree.map(np.testing.assert_array_equal, variables["params"], local.swa.params)
  assert not np.allclose(variables["batch_stats"]["bn1"]["mean"], local.aux["bn1"]["mean"])
  # represent: named features of the last weights
  images = s.data.test.gather(np.arange(3))["image"]
  feats = s.method.represent(local, {"image": images})
  assert list(feats) == ["features"] and feats["features"].shape == (3, 16)
  logits = s.method.evaluate.keywords["model"].apply(dd.variables(local), images)[0]
  assert np.array_equal(np.argmax(logits, -1),
                        dd.predictions(dd.variables(local), s.data.test, model=s.method.evaluate.keywords[
                            "model"], config=s.config, limit=3)["probs"].argmax(-1))


def test_evaluate_and_report_predict_the_test_split_once_per_state(setup, tmp_path, monkeypatch):
  s = setup
  state = train.init_state(s)
  step = train.compile_step(s)
  batches = train.input_batches(s, 0)
  for _ in range(4):  # SWA from step 3: the evaluated model is the average
    state, _ = step(state, train.to_global(s, next(batches)))
  local = train.host_state(state)
  calls = []
  real = dd_eval.predictions
  monkeypatch.setattr(dd_eval, "predictions", lambda *a, **k: calls.append(1) or real(*a, **k))
  ev = s.method.evaluate(local, s.data, str(tmp_path))
  assert len(calls) == 2 and ev["swa_models"] == 2.0  # the SWA model and the last weights
  rep = s.method.report(local, s.data, str(tmp_path))
  assert len(calls) == 2  # the report reuses the SWA model's predictions
  assert {k: rep[k] for k in ("accuracy", "f1", "ece")} == {k: ev[k] for k in ("accuracy", "f1", "ece")}
  other = local.replace(swa=local.swa.replace(params=jax.tree.map(lambda p: p + 1.0, local.swa.params)))
  s.method.report(other, s.data, str(tmp_path))  # another seed's state at the same step
  assert len(calls) == 3  # its own predictions, not the first state's


CALLS = []


def doubled(params, aux, batch, key, step, ctx):
  """An injected objective: Eq. 9 times two (records the batch fields it was given)."""
  CALLS.append(sorted(batch["data"]))
  out = dd.eq9(params, aux, batch, key, step, ctx)
  return out._replace(losses={k: 2 * v for k, v in out.losses.items()})


def test_objective_is_injected_from_the_config_and_from_python(setup):
  from affectjax.data.sources import Splits
  c = tiny("tiny,gmm,noise20")
  c.loss.fn = "test_dual_domain:doubled"
  dd.validate(c)
  loaded = Splits(setup.data.train.base, setup.data.test, setup.data.metadata,
                  info=setup.data.info)  # before prepare
  batch = train.first_batch(setup)
  key = jax.random.key(1)
  state = jax.eval_shape(setup.method.init, jax.random.key(0), batch)
  for m in (dd.make_method(c, loaded), dd.make_method(setup.config, loaded, objective=doubled)):
    CALLS.clear()
    jax.eval_shape(m.train_step, state, batch, key)  # traces, no compile
    assert CALLS == [["image", "label", "p_va", "target", "va"]]  # augmented, fused (Eq. 4)
  CALLS.clear()
  jax.eval_shape(setup.method.train_step, state, batch, key)
  assert CALLS == []  # the default is Eq. 9 itself
  c.loss.fn = "affectjax.losses:no_such_objective"
  with pytest.raises(ConfigError, match=r"^config.loss.fn='affectjax.losses:no_such_objective': "
                                        r"affectjax.losses has no function 'no_such_objective'"):
    dd.validate(c)


def test_init_from_torchvision_npz_keeps_the_backbone_and_a_fresh_va_head(tmp_path, setup):
  from flax import traverse_util
  from test_resnet import _to_torch_layout
  c = tiny("tiny,gmm")
  rng = np.random.default_rng(3)
  shapes = dd.build_model(c).init(jax.random.key(7), jnp.zeros((1, 16, 16, 3)), train=False)
  donor = jax.tree.map(lambda v: rng.normal(size=v.shape).astype(np.float32), shapes)
  np.savez(tmp_path / "r18.npz", **_to_torch_layout(donor))
  c.model.init_npz = str(tmp_path / "r18.npz")
  dd.validate(c)
  m = dd.make_method(c, setup.data)
  state = m.init(jax.random.key(0), {"data": setup.data.train.gather(np.arange(2))})
  got = traverse_util.flatten_dict(dd.variables(state))
  for path, want in traverse_util.flatten_dict(donor).items():
    if "va_head" in path:
      assert not np.allclose(got[path], want)  # not in a torchvision checkpoint: initialised
    else:
      np.testing.assert_array_equal(np.asarray(got[path]), want, err_msg="/".join(path))


def test_step_decay_schedule():
  from affectjax import optim
  o = tiny().optim
  o.decay_every, o.decay_factor = 10, 0.5
  lr = optim.schedule(o, 100)
  np.testing.assert_allclose([lr(0), lr(9), lr(10), lr(29), lr(30)],
                             o.lr * np.array([1, 1, 0.5, 0.25, 0.125]), rtol=1e-6)


def test_bad_config_is_one_line():
  c = tiny(labels__alpha=1.5)
  with pytest.raises(ConfigError, match=r"^config.labels.alpha=1.5 must be in \[0, 1\]$"):
    dd.validate(c)
  with pytest.raises(ConfigError, match=r"^config.model.init_npz='/no/such.npz': no such file"):
    dd.validate(tiny(model__init_npz="/no/such.npz"))
  c = tiny(optim__decay_factor=0.0)
  from affectjax import methods
  with pytest.raises(ConfigError, match=r"config.optim.decay_factor=0.0 must be in \(0, 1\]"):
    methods.validate(c, 1)


# ---------------------------------------------------------------- the command line on AffectNet

def test_cli_trains_on_the_affectnet_fixture(tmp_path):
  fx.write_affectnet_bench(str(tmp_path / "manual"), 24, 32)
  env = dict(os.environ, TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
             TF_CPP_MIN_LOG_LEVEL="2")
  wd = tmp_path / "wd"
  cmd = [sys.executable, "-m", "affectjax.main", "--config=configs/dual_domain.py:tiny,gmm,noise10",
         f"--workdir={wd}", "--config.data.name=affectnet",
         f"--config.data.manual_dir={tmp_path / 'manual'}", f"--config.data.tfds_dir={tmp_path / 'tfds'}",
         "--config.train.num_steps=3", "--config.train.batch_size=8", "--config.eval.bn_batches=1",
         "--config.eval.gradcam_images=2"]
  r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  assert "done:" in r.stdout
  assert os.path.isdir(tmp_path / "tfds" / "affectjax_affectnet")
  import json
  m = json.load(open(wd / "dual_domain_metrics.json"))
  assert 0.0 <= m["accuracy"] <= 1.0 and np.isfinite(m["rmse_v"]) and np.isfinite(m["ece"])
  assert "accuracy_clean" not in m  # real data: no ground truth beyond its labels
  assert os.path.exists(wd / "reliability.png") and os.path.exists(wd / "gradcam.png")


# ---------------------------------------------------------------- the GANmut evaluator

def test_evaluator_is_trained_once_cached_and_reused(tmp_path, monkeypatch):
  """GANmut's evaluator is this method's 'evaluator' config, a prerequisite the loop trains once."""
  import types
  from affectjax.methods.ganmut import classifier as clf
  c = load_config("ganmut", "tiny")
  c.eval.classifier_steps = 4
  c.eval.classifier_dir = str(tmp_path / "shared")
  needs = types.SimpleNamespace(prerequisites=[clf.prerequisite(c)])
  train.train_prerequisites(needs, str(tmp_path / "run1"))
  variables, model = clf.load(c, str(tmp_path / "run1"))
  d = clf.cache_dir(c, str(tmp_path / "run1"))
  assert os.path.dirname(d) == str(tmp_path / "shared")
  assert os.path.exists(os.path.join(d, clf.VARIABLES))
  assert os.path.exists(os.path.join(d, "metrics.jsonl"))  # trained by the loop
  x = np.asarray(jax.random.uniform(jax.random.key(0), (5, 16, 16, 3), minval=-1, maxval=1))
  probs, feats = clf.run(clf.classify_fn(model), variables, x, 4)
  assert probs.shape == (5, 7) and feats.shape == (5, 256)
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)

  def no_training(*a, **k):
    raise AssertionError("the cached evaluator was trained again")

  monkeypatch.setattr(train, "train_and_evaluate", no_training)
  train.train_prerequisites(needs, str(tmp_path / "run2"))  # another run, same classifier
  again, _ = clf.load(c, str(tmp_path / "run2"))
  jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.asarray, variables),
               jax.tree.map(np.asarray, again))
  c.train.progress = True  # not part of the key
  assert clf.cache_dir(c, "x") == d
  # K seeds in one run share the run's default evaluator directory, not one per seed_<i>/
  c.eval.classifier_dir = ""
  run = tmp_path / "k_seeds"
  (run / "checkpoints").mkdir(parents=True)
  assert clf.cache_dir(c, str(run / "seed_1")) == clf.cache_dir(c, str(run))
  assert os.path.dirname(clf.cache_dir(c, str(run))) == str(run / "evaluator")
  assert clf.cache_dir(c, str(tmp_path / "seed_1")) != clf.cache_dir(c, str(tmp_path))  # no run there
  c.eval.classifier_dir = str(tmp_path / "shared")
  c.eval.classifier_lr = 5e-4  # another classifier: another directory
  assert clf.cache_dir(c, "x") != d
