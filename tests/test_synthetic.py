"""Tests of the synthetic affect faces (tiny sizes: one render compile, 32x32 images)."""
import importlib
import os
import warnings

import numpy as np
import pytest

from affectjax.affect.affectnet_stats import VA_MEANS, VA_STDS
from affectjax.data import synthetic
from affectjax.data.example import EMOTIONS
from affectjax.data.synthetic import aus, faces, render
from affectjax.data.synthetic.generate import synthesize

SIZE = 32
COL = {name: i for i, name in enumerate(synthetic.FACTOR_NAMES)}
MIX = slice(COL["mix_neutral"], COL["mix_neutral"] + len(EMOTIONS))


@pytest.fixture(scope="module", autouse=True)
def _one_chunk_shape():
  with pytest.MonkeyPatch.context() as mp:
    mp.setattr(render, "CHUNK", 8)  # every render call compiles the same 8-image chunk
    yield


@pytest.fixture(scope="module")
def data(_one_chunk_shape):
  return synthetic.generate(0, 6, 20, SIZE)  # 120 images, in 8-image chunks


def _small(seed, **kw):
  return synthetic.generate(seed, 2, 4, SIZE, **kw)  # 8 images


def _landmarks(emotion, intensity, au26=None, n_ids=3):
  """Frontal landmarks [n_ids, 68, 3] of pure `emotion` faces (optionally AU26 overridden)."""
  ids = faces.sample_identities(5, n_ids)
  mix = np.zeros((n_ids, len(EMOTIONS)), np.float32)
  mix[:, EMOTIONS.index(emotion)] = 1.0
  left, right = aus.action_units(mix, np.full(n_ids, intensity, np.float32),
                                 np.ones((n_ids, aus.NUM_AUS), np.float32))
  if au26 is not None:
    left[:, aus.AU_INDEX["AU26"]] = right[:, aus.AU_INDEX["AU26"]] = au26
  pose, _ = faces.frontal(n_ids)
  return render.landmarks_batch(ids, left, right, pose)


def test_shapes_dtypes_ranges(data):
  n = 120
  assert data["image"].shape == (n, SIZE, SIZE, 3) and data["image"].dtype == np.uint8
  assert data["label"].shape == (n,) and data["label"].dtype == np.int32
  assert data["va"].shape == (n, 2) and data["va"].dtype == np.float32
  assert np.all(np.abs(data["va"]) <= 1)
  for key in ("landmarks", "neutral_landmarks"):
    assert data[key].shape == (n, synthetic.NUM_LANDMARKS, 3) and data[key].dtype == np.float32
    assert np.all((data[key][..., :2] > 0) & (data[key][..., :2] < 1))
  assert data["factors"].shape == (n, len(synthetic.FACTOR_NAMES))
  assert len(set(synthetic.FACTOR_NAMES)) == len(synthetic.FACTOR_NAMES)
  assert synthetic.AU_NAMES[:3] == ("AU1", "AU2", "AU4") and len(synthetic.AU_NAMES) == 17
  np.testing.assert_array_equal(data["identity"], np.repeat(np.arange(6), 20))
  assert data["image"].std() > 20  # not a blank canvas
  mix = data["factors"][:, MIX]
  np.testing.assert_allclose(mix.sum(-1), 1.0, atol=1e-6)
  aus_f = data["factors"][:, :17]
  assert aus_f.min() >= 0 and aus_f.max() <= 1


def test_deterministic_by_seed_and_different_across_seeds():
  a, b, c = _small(3), _small(3), _small(4)
  for key in a:
    np.testing.assert_array_equal(a[key], b[key])
  assert np.abs(a["image"].astype(int) - c["image"]).mean() > 5
  assert not np.allclose(a["factors"], c["factors"])
  shifted = _small(3, identity_offset=100)
  np.testing.assert_array_equal(shifted["identity"], a["identity"] + 100)


def test_label_is_argmax_of_mixture_without_noise(data):
  f = data["factors"]
  intensity = f[:, COL["intensity"]]
  expected = np.where(intensity < synthetic.INTENSITY_THRESHOLD, 0, np.argmax(f[:, MIX], -1))
  np.testing.assert_array_equal(data["label"], expected)
  np.testing.assert_array_equal(data["label"], f[:, COL["clean_label"]].astype(int))
  assert 0 < np.mean(data["label"] == 0) < 0.5  # some neutral, not all
  assert len(np.unique(data["label"])) == 8


def test_label_noise_rate_and_structure():
  rng = np.random.default_rng(0)
  clean = rng.integers(0, 8, 200_000).astype(np.int32)
  noisy = aus.noisy_labels(rng, clean, 0.2)
  assert abs(np.mean(noisy != clean) - 0.2) < 0.005
  anger, disgust = EMOTIONS.index("anger"), EMOTIONS.index("disgust")
  flipped = noisy[(clean == anger) & (noisy != clean)]
  assert abs(np.mean(flipped == disgust) - 0.7) < 0.03  # confusion-structured, not uniform
  assert not np.any(flipped == EMOTIONS.index("happy"))
  d = _small(2, label_noise=0.5)
  rate = np.mean(d["label"] != d["factors"][:, COL["clean_label"]])
  assert rate > 0.0  # the noise reaches generate's labels
  np.testing.assert_array_equal(aus.noisy_labels(rng, clean, 0.0), clean)


def test_va_means_of_intense_pure_expressions():
  rng = np.random.default_rng(1)
  n = 4000
  for e in range(1, 8):
    mix = np.zeros((n, 8), np.float32)
    mix[:, e] = 1
    va = aus.valence_arousal(mix, np.full(n, 1.0, np.float32), rng.standard_normal((n, 2)))
    np.testing.assert_allclose(va.mean(0), VA_MEANS[e], atol=0.03)
    np.testing.assert_allclose(va.std(0), VA_STDS[e], atol=0.03)
  faint = aus.valence_arousal(mix, np.zeros(n, np.float32), rng.standard_normal((n, 2)))
  np.testing.assert_allclose(faint.mean(0), VA_MEANS[0], atol=0.02)


def test_va_follows_labels_in_generated_data(data):
  f = data["factors"]
  true_va = f[:, [COL["valence"], COL["arousal"]]]
  assert np.abs(data["va"] - true_va).mean() < 0.08  # only va_noise=0.05 apart
  happy = (data["label"] == 1) & (f[:, COL["intensity"]] > 0.6)
  sad = (data["label"] == 2) & (f[:, COL["intensity"]] > 0.6)
  assert data["va"][happy, 0].mean() > 0.3 > -0.3 > data["va"][sad, 0].mean()


def test_mouth_corners_follow_happy_and_sad():
  neutral, happy, sad = (_landmarks(e, 1.0) for e in ("neutral", "happy", "sad"))
  corners = [48, 54]  # image y points down: higher is smaller
  assert np.all(happy[:, corners, 1] < neutral[:, corners, 1] - 0.005)
  assert np.all(sad[:, corners, 1] > neutral[:, corners, 1] + 0.005)
  # Only the mouth moves in happy's AU12 part; the jaw outline (0-16) stays where it is.
  np.testing.assert_allclose(happy[:, :17], neutral[:, :17], atol=1e-6)
  # Contempt is one-sided: the right corner (54) rises more than the left (48).
  contempt = _landmarks("contempt", 1.0)
  lift = neutral[:, corners, 1] - contempt[:, corners, 1]
  assert np.all(lift[:, 1] > lift[:, 0] + 0.005)


def test_au26_opens_the_mouth_and_au1_raises_inner_brows():
  gaps = [(lm[:, 66, 1] - lm[:, 62, 1]) for lm in
          (_landmarks("neutral", 0.0, au26=a) for a in (0.0, 0.5, 1.0))]
  assert np.all(gaps[0] < gaps[1]) and np.all(gaps[1] < gaps[2])
  assert np.all(gaps[2] > 0.05)
  neutral, surprise = _landmarks("neutral", 0.0), _landmarks("surprise", 1.0)
  assert np.all(surprise[:, [21, 22], 1] < neutral[:, [21, 22], 1] - 0.01)  # inner brow ends up


def test_neutral_landmarks_fixed_per_identity_without_pose_jitter():
  d = _small(7, pose_jitter=0.0)
  for i in np.unique(d["identity"]):
    nl = d["neutral_landmarks"][d["identity"] == i]
    np.testing.assert_array_equal(nl, np.broadcast_to(nl[0], nl.shape))
  assert not np.allclose(d["neutral_landmarks"][0], d["neutral_landmarks"][-1])  # two people
  jittered = _small(7)
  assert not np.allclose(jittered["neutral_landmarks"][0], jittered["neutral_landmarks"][1])
  # z is a real depth: the nose tip (30) stands out further than the eye corners (36, 45).
  assert np.all(d["landmarks"][:, 30, 2] > d["landmarks"][:, [36, 45], 2].max(-1))


def _pure_faces(emotions):
  ids = faces.sample_identities(9, 1)
  mix = np.eye(8, dtype=np.float32)[[EMOTIONS.index(e) for e in emotions]]
  pose, light = faces.frontal(len(emotions))
  return synthesize(ids, np.zeros(len(emotions), int), mix, np.ones(len(emotions)), pose, light,
                    SIZE)


def test_emotions_differ_in_the_mouth_not_the_background():
  emotions = ["neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "contempt"]
  images, lms, _, _ = _pure_faces(emotions)
  img = images.astype(np.float32)
  mouth = lms[:, 48:68, :2].reshape(-1, 2) * SIZE
  x0, y0 = np.floor(mouth.min(0)).astype(int)
  x1, y1 = np.ceil(mouth.max(0)).astype(int)
  spread = img.std(0).mean(-1)  # per-pixel variation across the emotions
  assert spread[y0:y1, x0:x1].mean() > 10
  assert spread[:4, :4].mean() < 0.5  # background corner untouched by expression
  # The open mouth of surprise is dark where its landmarks say the opening is.
  s = emotions.index("surprise")
  cx, cy = (lms[s, 62, :2] + lms[s, 66, :2]) / 2 * SIZE
  assert img[s, int(cy), int(cx)].mean() < 0.5 * img[0, int(cy), int(cx)].mean()


def test_neutral_faces_stable_identities():
  a = synthetic.neutral_faces(0, 3, SIZE)
  b = synthetic.neutral_faces(0, 5, SIZE)
  assert a.shape == (3, SIZE, SIZE, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(a, b[:3])  # a person does not depend on how many are drawn
  assert np.abs(a[0].astype(int) - a[1]).mean() > 3  # identities differ


def test_cache_round_trip_and_corrupt_file(tmp_path, monkeypatch):
  kw = dict(seed=1, num_identities=2, images_per_identity=4, image_size=SIZE)
  first = synthetic.load_or_generate(str(tmp_path), **kw)
  files = [f for f in os.listdir(tmp_path) if f.endswith(".npz")]
  assert len(files) == 1 and not [f for f in os.listdir(tmp_path) if f.startswith(".tmp")]
  gen_module = importlib.import_module("affectjax.data.synthetic.generate")

  def boom(**_):
    raise AssertionError("should have been read from the cache")
  monkeypatch.setattr(gen_module, "generate", boom)
  second = synthetic.load_or_generate(str(tmp_path), **kw)
  for key in first:
    np.testing.assert_array_equal(first[key], second[key])
  monkeypatch.undo()
  path = tmp_path / files[0]
  path.write_bytes(path.read_bytes()[:100])  # truncated, as by a crash mid-copy
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    third = synthetic.load_or_generate(str(tmp_path), **kw)
  assert any("unreadable" in str(w.message) for w in caught)
  np.testing.assert_array_equal(third["image"], first["image"])
  other = synthetic.load_or_generate(str(tmp_path), **dict(kw, seed=2))
  assert not np.array_equal(other["image"], first["image"])
  assert len([f for f in os.listdir(tmp_path) if f.endswith(".npz")]) == 2


def test_emotion_grid_png(tmp_path):
  path = tmp_path / "grid.png"
  synthetic.save_emotion_grid(str(path), seed=0, identities=1, intensities=(1.0,), image_size=SIZE)
  assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
