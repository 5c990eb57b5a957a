"""GANmut evaluation: Sec. 5.2 paths, Table 3 codes, the Sec. 5.3 ERE grids, Method.generate and
the report's numbers against direct computations on a tiny untrained model."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from affectjax.errors import UserError
from affectjax.evaluate import gan_metrics as gm
from affectjax import train
from affectjax.methods import ganmut
from affectjax.methods.ganmut import classifier as clf, evaluate as ev
from conftest import load_config


def _space(arg=""):
  return ganmut.space_of(load_config("ganmut", arg))


def test_ere_grids_follow_the_paper():
  lin = _space().ere_grid()
  r = np.linalg.norm(lin, axis=1)
  assert lin.shape == (1 + 20 * 21, 2)  # the origin + radii 0.05..1 x angles 2 pi k / 21
  np.testing.assert_allclose(np.unique(np.round(r, 6))[1:], np.arange(1, 21) * 0.05, atol=1e-6)
  ang = np.unique(np.round(np.mod(np.arctan2(lin[1:, 1], lin[1:, 0]), 2 * np.pi), 6))
  np.testing.assert_allclose(np.diff(ang), 2 * np.pi / 21, atol=1e-5)
  sq = _space("gaussian").ere_grid()
  assert sq.shape == (21 * 21, 2) and sq.min() == -1 and np.isclose(sq.max(), 1)
  assert _space("stargan").ere_grid().shape == (7, 7)


def test_interpolation_paths_and_class_codes():
  steps = np.linspace(0, 1, 11)
  lin = _space()
  params = {"theta": jnp.array([0.1, 0.7, 1.5, 2.0, 3.0, 4.0])}
  z = np.asarray(lin.emotion_code(params, 3, steps))
  np.testing.assert_allclose(np.linalg.norm(z, axis=1), steps, atol=1e-6)  # rho_j = 0.1 j
  np.testing.assert_allclose(np.arctan2(z[1:, 1], z[1:, 0]), 1.5, atol=1e-6)  # along theta_3
  np.testing.assert_allclose(np.asarray(lin.emotion_code(params, 0, steps)), 0.0)
  codes = np.asarray(lin.class_codes(params, np.array([0, 2])))
  np.testing.assert_allclose(codes, [[0, 0], [np.cos(0.7), np.sin(0.7)]], atol=1e-6)

  g = _space("gaussian")
  w = np.random.default_rng(0).normal(size=(7, 2))
  gs = {"w": jnp.array(w), "log_eigs": jnp.zeros((7, 2)), "angle": jnp.zeros(7)}
  zg = np.asarray(g.emotion_code(gs, 4, steps))
  np.testing.assert_allclose(zg[[0, -1]], np.tanh(w[[0, 4]]), atol=1e-6)  # mu_0 -> mu_4
  d = np.tanh(w[1:]) - np.tanh(w[0])
  np.testing.assert_allclose(np.asarray(g.directions(gs)), np.arctan2(d[:, 1], d[:, 0]), atol=1e-6)
  zs = np.asarray(_space("stargan").emotion_code({}, 2, steps))
  np.testing.assert_allclose(zs[:, 0], 1 - steps, atol=1e-6)
  np.testing.assert_allclose(zs[:, 2], steps, atol=1e-6)
  np.testing.assert_allclose(zs.sum(1), 1.0, atol=1e-6)


def _splits(n_train=96, n_test=64, size=16, seed=0):
  """Faces whose class c is a bright bar at rows 2c, 2c+1, with VA on a circle by class."""
  from affectjax.data.source import ArraySource
  from affectjax.data.sources import Splits
  rng = np.random.default_rng(seed)

  def part(n):
    labels = np.arange(n).astype(np.int32) % 7
    img = rng.normal(0, 0.2, (n, size, size, 3)).astype(np.float32) - 0.5
    for i, c in enumerate(labels):
      img[i, 2 * c:2 * c + 2] = 0.9
    ang = labels * 2 * np.pi / 7
    va = 0.5 * np.c_[np.cos(ang), np.sin(ang)] * (labels > 0)[:, None] + rng.normal(0, 0.01, (n, 2))
    return ArraySource({"image": np.clip(img, -1, 1), "label": labels, "va": va.astype(np.float32)})

  return Splits(part(n_train), part(n_test), {})


def _tiny_method(arg="tiny,original"):
  c = load_config("ganmut", arg)
  c.data.image_size, c.model.d_repeat_num = 16, 3
  return c, ganmut.make_method(c, _splits())


def test_generate_is_g_on_rgb_images_and_draws_random_codes_without_one():
  c, m = _tiny_method()  # BGR training, vector directions
  x = jnp.asarray(_splits().test.gather(np.arange(4))["image"])
  state = m.init(jax.random.PRNGKey(0), {"data": {"image": x, "label": jnp.zeros(4, jnp.int32)}})
  gen, _ = ganmut.networks(c)
  z = jnp.array([[0.0, 0.0], [0.5, 0.1], [-0.3, 0.8], [1.0, 0.0]])
  want = gen.apply({"params": state.params["g"]["net"]}, x[..., ::-1], z)[..., ::-1]
  got = m.generate(state, {"image": x, "code": z}, jax.random.PRNGKey(1))
  np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-6)
  key = jax.random.PRNGKey(5)
  zr = ganmut.space_of(c).random_codes(key, state.params["g"]["space"], jnp.zeros(4, jnp.int32))
  np.testing.assert_allclose(np.asarray(m.generate(state, {"image": x}, key)),
                             np.asarray(m.generate(state, {"image": x, "code": zr}, key)), atol=1e-6)


def test_report_numbers_match_direct_computations(tmp_path):
  c, m = _tiny_method("tiny")
  c.eval.smooth_images, c.eval.classifier_steps = 2, 5
  data = _splits()
  with jax.threefry_partitionable(False):
    state = m.init(jax.random.PRNGKey(0), {"data": data.train.gather(np.arange(2))})
    state = jax.tree.map(np.asarray, state)
    with pytest.raises(UserError, match="evaluator classifier is not in"):
      m.report(state, data, str(tmp_path))  # outside the loop, before the prerequisite
    train.train_prerequisites(m, str(tmp_path))  # what the loop does before a run's first step
    out = m.report(state, data, str(tmp_path))
  saved = json.load(open(tmp_path / "ganmut_metrics.json"))
  assert saved["space"] == "linear" and saved["fed"] == out["fed"]
  x = data.test.gather(np.arange(64))
  # identity: mean |G(x, origin) - x| through Method.generate
  g0 = m.generate(state, {"image": x["image"], "code": np.zeros((64, 2), np.float32)}, None)
  np.testing.assert_allclose(out["id_l1_neutral"], np.mean(np.abs(np.asarray(g0) - x["image"])),
                             rtol=1e-5)
  # FED at equal sizes on every test face; ERE over every batch of 16, with its uniform reference
  assert out["fed_n"] == 32 and out["fed_real"] >= 0 and out["fed"] >= 0
  assert out["ere_targets"] == 64 // 16
  params, model = clf.load(c, str(tmp_path), data)
  p = clf.run(clf.classify_fn(model), params, x["image"], 64)[0]
  for setting, k in (("1", 3), ("2", 2)):
    t = gm.ambiguous_targets(p, k)
    np.testing.assert_allclose(out[f"ere_uniform_{setting}"], np.mean((p[t] - 1 / 7) ** 2), rtol=1e-5)
    assert 0 <= out[f"ere_{setting}"] <= 2 / 7 and 0 <= out[f"ere_real_{setting}"] <= 2 / 7
  for e in range(1, 7):
    assert 0.1 - 1e-9 <= out[f"smooth_{e}"] <= 1.0 and 0 <= out[f"monotone_{e}"] <= 1
  # the learned directions against the true VA angles (2 pi c / 7) and the AU prototypes
  err, _ = gm.angular_agreement(np.asarray(state.params["g"]["space"]["theta"]),
                                np.arange(1, 7) * 2 * np.pi / 7)
  np.testing.assert_allclose(out["angle_err_deg"], err, atol=0.5)  # VA noise 0.01
  protos = ev.au_prototypes(7)
  np.testing.assert_allclose(out["au_sim_r"], gm.similarity_agreement(
      np.asarray(state.params["g"]["space"]["theta"]), protos), rtol=1e-9)
  assert -1 <= out["au_sim_r_true_va"] <= 1 and 0 < out["angle_err_chance_deg"] < 180
