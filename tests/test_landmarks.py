"""Triplet VAE data side: landmark preprocessing (Sec. V-A), neutral frames, splits, MLPs."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from affectjax.data import landmarks as lm
from affectjax.nn.landmark_mlp import LandmarkVAE, paper_sizes


def _rotation(rng):
  q, r = np.linalg.qr(rng.standard_normal((3, 3)))
  q = q * np.sign(np.diag(r))
  return q if np.linalg.det(q) > 0 else -q


def _faces(n=4, seed=0):
  return np.random.default_rng(seed).standard_normal((n, 68, 3))


def test_normalise_eye_midpoint_and_interocular_distance():
  x = _faces() * 7.0 + 3.0
  y = lm.normalise(x)
  left, right = lm.eye_centres(y)
  np.testing.assert_allclose(0.5 * (left + right), 0.0, atol=1e-12)
  np.testing.assert_allclose(np.linalg.norm(right - left, axis=-1), 1.0)
  # The eyes are the lower-lid means (iBUG 40, 41 and 46, 47), and the shape is only scaled.
  np.testing.assert_allclose(lm.eye_centres(x)[0], x[:, [40, 41]].mean(1))
  iod = np.linalg.norm(x[:, [46, 47]].mean(1) - x[:, [40, 41]].mean(1), axis=-1)
  np.testing.assert_allclose(np.linalg.norm(y[:, 0] - y[:, 10], axis=-1),
                             np.linalg.norm(x[:, 0] - x[:, 10], axis=-1) / iod)


def test_known_rotation_is_undone():
  rng = np.random.default_rng(1)
  face = _faces(1)[0]
  rots = np.stack([_rotation(rng) for _ in range(3)])
  posed = 2.5 * np.einsum("nij,kj->nki", rots, face) + rng.standard_normal((3, 1, 3))
  want = lm.normalise(face)
  # Pose estimates given (the paper's procedure) ...
  np.testing.assert_allclose(lm.preprocess(posed, rotation=rots),
                             np.broadcast_to(want, posed.shape), atol=1e-10)
  # ... or Kabsch onto a reference in the frontal pose.
  np.testing.assert_allclose(lm.kabsch_rotation(face, posed), rots, atol=1e-10)
  np.testing.assert_allclose(lm.preprocess(posed, reference=face, rigid=None),
                             np.broadcast_to(want, posed.shape), atol=1e-10)
  # Without the rotation the result differs: the test would notice a no-op.
  assert np.abs(lm.preprocess(posed) - want).max() > 0.1


def test_kabsch_on_rigid_points_ignores_expression_and_stays_proper():
  rng = np.random.default_rng(2)
  neutral = _faces(1, seed=3)[0]
  expr = neutral.copy()
  moving = np.setdiff1d(np.arange(68), lm.RIGID_68)
  expr[moving] += 0.5 * rng.standard_normal((len(moving), 3))  # an "expression"
  rot = _rotation(rng)
  posed = expr @ rot.T
  np.testing.assert_allclose(lm.kabsch_rotation(neutral, posed, lm.RIGID_68), rot, atol=1e-10)
  aligned = lm.align_rotation(posed, neutral, lm.RIGID_68)
  np.testing.assert_allclose(lm.normalise(aligned), lm.normalise(expr), atol=1e-10)
  # A mirror image still gets a proper rotation (det +1), never a reflection.
  r = lm.kabsch_rotation(neutral, neutral * np.array([-1.0, 1.0, 1.0]))
  np.testing.assert_allclose(np.linalg.det(r), 1.0)


def test_synthetic_pose_rotation_matches_the_renderer():
  from affectjax.data.synthetic import faces, render
  ids = faces.sample_identities(0, 2, 0)
  au = np.zeros((2, 17), np.float32)
  au[:, 8] = 1.0  # AU12, a smile: the pose is undone for expressive faces too
  pose = {"roll": np.array([0.15, -0.1]), "yaw": np.array([0.12, -0.14]),
          "shift_x": np.array([0.02, -0.01]), "shift_y": np.array([0.0, 0.02]),
          "scale": np.array([1.05, 0.95])}
  frontal = {"roll": np.zeros(2), "yaw": np.zeros(2), "shift_x": np.zeros(2),
             "shift_y": np.zeros(2), "scale": np.ones(2)}
  posed = render.landmarks_batch(ids, au, au, pose)
  front = render.landmarks_batch(ids, au, au, frontal)
  rot = lm.synthetic_pose_rotation(pose["roll"], pose["yaw"])
  np.testing.assert_allclose(lm.preprocess(posed, rotation=rot), lm.preprocess(front), atol=2e-5)
  assert np.abs(lm.preprocess(posed) - lm.preprocess(front)).max() > 0.05


def test_training_mean_fit_on_train_applied_to_all():
  train, test = _faces(6, seed=4), _faces(3, seed=5) + 1.0
  mean = lm.fit_mean(train)
  np.testing.assert_allclose(lm.subtract_mean(train, mean).mean(0), 0.0, atol=1e-12)
  np.testing.assert_allclose(lm.subtract_mean(test, mean), test - train.mean(0))
  assert lm.flatten(test).shape == (3, 204)


def test_select_neutral_frames():
  base = _faces(1, seed=6)[0]
  direction = np.zeros_like(base)
  direction[:, 0] = 1.0 / np.sqrt(68)  # unit norm: frame distances equal offset differences
  offsets = [[0.0, 1.0, 2.0, 10.0, 11.0, 2.2], [0.0, 5.0, 6.0, 7.0, 20.0], [0.0, 1.0, 2.0]]
  frames = np.stack([base + o * direction for person in offsets for o in person])
  identity = np.repeat([0, 1, 2], [len(o) for o in offsets])
  au = np.zeros((len(frames), 3))
  au[5, 1] = 1.0  # person 0: the frame at 2.2 shows an AU, so it is no candidate
  au[11:, 0] = 1.0  # person 2: an AU in every frame but one ...
  au[12] = [0.0, np.nan, 0.0]  # ... whose unknown (NaN) AU does not count as absent
  got = lm.select_neutral_frames(frames, identity, au)
  # Person 0: among offsets 0, 1, 2, 10, 11 the summed distance is least at 2 (20, vs 21 at 1).
  # Person 1: among 0, 5, 6, 7, 20 it is least at 6 (22, vs 23 at 5 and 7). Person 2: none.
  np.testing.assert_array_equal(got, [2] * 6 + [8] * 5 + [-1] * 3)
  # Brute force: least summed distance among each person's all-absent frames.
  calm = np.all(au == 0, 1)
  for p in (0, 1):
    idx = np.flatnonzero((identity == p) & calm)
    f = frames[idx].reshape(len(idx), -1)
    d = np.sqrt(((f[:, None] - f[None]) ** 2).sum(-1)).sum(1)
    assert got[identity == p][0] == idx[np.argmin(d)]
  np.testing.assert_array_equal(lm.select_neutral_frames(frames, identity, calm), got)


def test_person_splits():
  ident = np.repeat(np.arange(100), 25)  # posed: 100 people x 25 faces, 80/10/10
  masks = lm.person_splits(ident, (0.8, 0.1, 0.1), seed=0)
  assert [len(np.unique(ident[m])) for m in masks] == [80, 10, 10]
  np.testing.assert_array_equal(sum(m.astype(int) for m in masks), 1)  # disjoint and complete
  ident = np.repeat(np.arange(41), 7)  # spontaneous: 41 people, 25/8/8
  masks = lm.person_splits(ident, (25, 8, 8), seed=1)
  assert [len(np.unique(ident[m])) for m in masks] == [25, 8, 8]
  np.testing.assert_array_equal(sum(m.astype(int) for m in masks), 1)
  again = lm.person_splits(ident, (25, 8, 8), seed=1)
  assert all(np.array_equal(a, b) for a, b in zip(masks, again))
  assert not np.array_equal(masks[0], lm.person_splits(ident, (25, 8, 8), seed=2)[0])
  # 7 people: 3.5, 1.75, 1.75 -> floors 3, 1, 1, the two largest remainders (0.75) get the rest.
  assert [m.sum() for m in lm.person_splits(np.arange(7), (0.5, 0.25, 0.25))] == [3, 2, 2]
  with pytest.raises(ValueError, match="people"):
    lm.person_splits(ident, (30, 8, 8))


def test_paper_sizes():
  f = paper_sizes([498, 480, 240, 120, 60, 30], [279, 300, 400, 300, 249], 249)
  assert f == {"encoder_hidden": (480, 240, 120, 60), "latent_dim": 30,
               "decoder_hidden": (300, 400, 300), "data_dim": 249}
  with pytest.raises(ValueError, match="neutral"):
    paper_sizes([249, 120, 30], [279, 249], 249)


def test_landmark_vae_paper_shapes():
  f = paper_sizes([498, 480, 240, 120, 60, 30], [279, 300, 400, 300, 249], 249)
  model = LandmarkVAE(**f)
  x = jax.ShapeDtypeStruct((4, 83, 3), jnp.float32)
  key = jax.random.key(0)
  params = jax.eval_shape(model.init, key, x, x, key)
  assert params["params"]["encoder"]["Dense_0"]["kernel"].shape == (498, 480)
  assert params["params"]["encoder"]["mu"]["kernel"].shape == (60, 30)
  assert params["params"]["decoder"]["Dense_0"]["kernel"].shape == (279, 300)
  assert params["params"]["decoder"]["mean"]["kernel"].shape == (300, 249)
  mu, logvar, z, mean = jax.eval_shape(lambda p, a: model.apply(p, a, a, key, num_samples=3),
                                       params, x)
  assert mu.shape == logvar.shape == (4, 30) and z.shape == (3, 4, 30) and mean.shape == (3, 4, 249)
  plain = LandmarkVAE(**f, conditional=False)
  p2 = jax.eval_shape(plain.init, key, x, None, key)
  assert p2["params"]["encoder"]["Dense_0"]["kernel"].shape == (249, 480)
  assert p2["params"]["decoder"]["Dense_0"]["kernel"].shape == (30, 300)


def _elu(v):
  return np.where(v > 0, v, np.expm1(np.minimum(v, 0)))


def test_landmark_vae_values_sampling_dropout_and_conditioning():
  model = LandmarkVAE(data_dim=12, latent_dim=3, encoder_hidden=(16,), decoder_hidden=(16,))
  apply = jax.jit(model.apply, static_argnames=("num_samples", "train", "method"))
  k = jax.random.split(jax.random.key(0), 3)
  rng = np.random.default_rng(0)  # numpy inputs: fewer small eager compiles
  x = rng.standard_normal((4, 4, 3)).astype(np.float32)
  y = rng.standard_normal((4, 4, 3)).astype(np.float32)
  params = jax.jit(model.init)(k[0], x, y, k[1])
  mu, logvar, z, mean = map(np.asarray, apply(params, x, y, k[1], num_samples=3))
  assert z.shape == (3, 4, 3) and mean.shape == (3, 4, 12)
  # Values, written out in numpy: mu = W_mu elu(W [x, y] + b) + b_mu (Eq. 3, one hidden layer),
  # z = mu + exp(logvar / 2) eps (Eq. 5), mean = W_out elu(W' [z, y] + b') + b_out (Eq. 2).
  pe, pd = params["params"]["encoder"], params["params"]["decoder"]
  xf, yf = x.reshape(4, 12), y.reshape(4, 12)
  h = _elu(np.concatenate([xf, yf], 1) @ pe["Dense_0"]["kernel"] + pe["Dense_0"]["bias"])
  np.testing.assert_allclose(mu, h @ pe["mu"]["kernel"] + pe["mu"]["bias"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(logvar, h @ pe["logvar"]["kernel"] + pe["logvar"]["bias"],
                             rtol=1e-5, atol=1e-6)
  eps = np.asarray(jax.random.normal(k[1], (3, 4, 3)))
  np.testing.assert_allclose(z, mu + np.exp(0.5 * logvar) * eps, rtol=1e-5, atol=1e-6)
  for s in range(3):  # the samples share the neutral faces
    h = _elu(np.concatenate([z[s], yf], 1) @ pd["Dense_0"]["kernel"] + pd["Dense_0"]["bias"])
    np.testing.assert_allclose(mean[s], h @ pd["mean"]["kernel"] + pd["mean"]["bias"],
                               rtol=1e-5, atol=1e-5)
  # Dropout off: deterministic whatever the dropout key; on: the key matters.
  enc = lambda train, key: apply(params, x, y, train=train, method=LandmarkVAE.encode,  # noqa: E731
                                 rngs={"dropout": key})[0]
  np.testing.assert_array_equal(enc(False, k[2]), enc(False, k[1]))
  np.testing.assert_allclose(enc(False, k[2]), mu, rtol=1e-6)
  assert np.abs(np.asarray(enc(True, k[2])) - mu).max() > 1e-4
  assert np.abs(np.asarray(enc(True, k[2])) - np.asarray(enc(True, k[1]))).max() > 1e-4
  # M1: another neutral face changes both q(z|x, y) and f(y, z).
  mu2 = apply(params, x, y + 1.0, k[1], num_samples=3)[0]
  assert np.abs(np.asarray(mu2) - mu).max() > 1e-3
  dec = lambda yy: apply(params, z[0], yy, method=LandmarkVAE.decode)  # noqa: E731
  np.testing.assert_allclose(dec(y), mean[0], rtol=1e-5, atol=1e-5)
  assert np.abs(np.asarray(dec(y + 1.0)) - mean[0]).max() > 1e-3
  with pytest.raises(ValueError, match="neutral"):
    apply(params, x, None, k[1])
  # The VAE baseline ignores a neutral face passed to it.
  plain = LandmarkVAE(data_dim=12, latent_dim=3, encoder_hidden=(16,), decoder_hidden=(16,),
                      conditional=False)
  p2 = jax.eval_shape(plain.init, k[0], x, None, k[1])
  assert p2["params"]["encoder"]["Dense_0"]["kernel"].shape == (12, 16)
  p2 = jax.tree.map(lambda a, b: b[: a.shape[0]] if a.ndim == 2 else b, p2, params)  # [x] rows
  h = _elu(xf @ pe["Dense_0"]["kernel"][:12] + pe["Dense_0"]["bias"])
  plain_mu = jax.jit(plain.apply, static_argnames="method")(p2, x, y, method=LandmarkVAE.encode)[0]
  np.testing.assert_allclose(plain_mu,
                             h @ pe["mu"]["kernel"] + pe["mu"]["bias"], rtol=1e-5, atol=1e-6)
