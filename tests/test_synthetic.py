"""Tests of the synthetic affect faces (tiny sizes: one render compile, 32x32 images)."""
import importlib
import os
import warnings

import numpy as np
import pytest

from affectjax.affect.affectnet_stats import VA_MEANS, VA_STDS
from affectjax.data import synthetic
from affectjax.data.example import EMOTIONS
from affectjax.data.synthetic import aus, faces, geometry, render
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


# --- Presets and knobs (issue 9) ---------------------------------------------------------------

# generate(3, 2, 4, 32, identity_offset=100_000) as the generator produced it before the presets
# and knobs existed (8-image chunks): the 'hard' preset must reproduce it.
_HARD_LABELS = [1, 1, 4, 6, 0, 6, 0, 2]
_HARD_IMAGE_SUMS = [311527, 343229, 297921, 329206, 347968, 274389, 300283, 380186]
_HARD_VA = [[0.165842, 0.015943], [-0.024289, 0.183049], [-0.141553, 0.173952],
            [0.010939, 0.122455], [-0.158148, 0.143967], [-0.181084, 0.55338],
            [-0.003272, -0.002897], [-0.580201, -0.030084]]
_HARD_LANDMARK_SUM, _HARD_FACTOR_SUM = 696.8218782879412, 61.095777579408605


def _config(**data):
  from affectjax.config import base_config
  c = base_config()
  for k, v in data.items():
    c.data[k] = v
  return c


def test_hard_preset_reproduces_the_generator_before_presets():
  import hashlib
  from affectjax.data.synthetic import presets
  d = synthetic.generate(3, 2, 4, SIZE, identity_offset=100_000, **presets.PRESETS["hard"])
  np.testing.assert_array_equal(d["label"], _HARD_LABELS)
  np.testing.assert_allclose(d["va"], _HARD_VA, atol=2e-6)
  assert abs(float(d["landmarks"].astype(np.float64).sum()) - _HARD_LANDMARK_SUM) < 1e-3
  assert abs(float(d["factors"].astype(np.float64).sum()) - _HARD_FACTOR_SUM) < 1e-3
  sums = d["image"].reshape(8, -1).astype(np.int64).sum(-1)
  assert np.all(np.abs(sums - _HARD_IMAGE_SUMS) <= 40)  # a few uint8 roundings at most
  if hashlib.sha256(d["image"].tobytes()).hexdigest()[:16] != "624ceb77dd2128db":
    warnings.warn("hard preset images differ from the fingerprint in rounding only")
  # The config route resolves 'hard' to exactly these arguments (generate's own defaults).
  from affectjax.data import sources
  import inspect
  defaults = {k: p.default for k, p in inspect.signature(synthetic.generate).parameters.items()}
  opts = sources.synthetic_options(_config(preset="hard").data, 0, "full")
  assert {k: opts[k] for k in presets.KNOBS} == {k: defaults[k] for k in presets.KNOBS}


def test_base_config_defaults_are_the_calibrated_preset_and_custom_uses_the_knobs():
  from affectjax.data.synthetic import presets
  c = _config()
  assert c.data.preset == "calibrated"
  assert {k: c.data[k] for k in presets.KNOBS} == presets.PRESETS["calibrated"]
  assert {k: c.data[k] for k in presets.SIZES["calibrated"]} == presets.SIZES["calibrated"]
  train_ids = round((1 - c.data.test_fraction) * c.data.num_identities)
  assert train_ids >= 300
  assert presets.options(c.data) == presets.PRESETS["calibrated"]
  assert presets.options(_config(preset="custom").data) == presets.PRESETS["calibrated"]
  assert presets.options(_config(preset="custom", zoom=1.1).data)["zoom"] == 1.1
  assert presets.options(_config(preset="hard").data) == presets.PRESETS["hard"]


@pytest.mark.parametrize("field,value,message", [
    ("preset", "easy", "config.data.preset='easy': expected one of 'calibrated', 'hard', 'custom'"),
    ("pose_jitter", -0.1, "config.data.pose_jitter=-0.1 must be in [0, 3]"),
    ("light_jitter", 2.5, "config.data.light_jitter=2.5 must be in [0, 2]"),
    ("intensity_min", 0.1, "config.data.intensity_min=0.1 must be in [0.15, 1]"),
    ("intensity_max", 0.4, "config.data.intensity_max=0.4 must be in [intensity_min=0.5, 1]"),
    ("neutral_fraction", 1.5, "config.data.neutral_fraction=1.5 must be in [0, 1]"),
    ("compound_fraction", -1.0, "config.data.compound_fraction=-1.0 must be in [0, 1]"),
    ("va_noise", 2.0, "config.data.va_noise=2.0 must be in [0, 1]"),
    ("zoom", 3.0, "config.data.zoom=3.0 must be in [0.5, 2]"),
    ("colour_variety", 1.5, "config.data.colour_variety=1.5 must be in [0, 1]"),
])
def test_knob_validation_one_line(field, value, message):
  from affectjax.config import ConfigError
  from affectjax.data import sources
  c = _config(preset="custom")
  c.data[field] = value
  with pytest.raises(ConfigError) as e:
    sources.validate(c)
  assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_a_knob_set_under_a_named_preset_is_an_error_not_ignored():
  from affectjax.config import ConfigError
  from affectjax.data import sources
  sources.validate(_config())
  sources.validate(_config(preset="hard"))
  sources.validate(_config(preset="custom", zoom=1.0, pose_jitter=2.0))
  for preset, fixed in (("calibrated", 1.4), ("hard", 1.0)):
    with pytest.raises(ConfigError, match=r"^config.data.zoom=1.2 takes effect only with "
                       rf"config.data.preset='custom' \(preset '{preset}' sets it to {fixed}\)$"):
      sources.validate(_config(preset=preset, zoom=1.2))


def test_cache_key_changes_with_every_option():
  from affectjax.data.synthetic import cache, presets
  base = dict(seed=1, num_identities=2, images_per_identity=4, image_size=SIZE)
  paths = {cache.cache_path("/c", **base)}
  changes = {k: v + 0.05 for k, v in presets.PRESETS["hard"].items()}
  changes.update(seed=2, num_identities=3, images_per_identity=5, image_size=16, label_noise=0.1,
                 identity_offset=7, prototypes="variant")
  for name, value in changes.items():
    paths.add(cache.cache_path("/c", **dict(base, **{name: value})))
  assert len(paths) == 1 + len(changes)
  # Defaults passed explicitly (and 1 for 1.0) name the same file as leaving them out.
  explicit = dict(base, **dict(presets.PRESETS["hard"], zoom=1), label_noise=0)
  assert cache.cache_path("/c", **explicit) == cache.cache_path("/c", **base)
  calibrated = cache.cache_path("/c", **dict(base, **presets.PRESETS["calibrated"]))
  assert calibrated not in {cache.cache_path("/c", **base)}


def test_expression_knobs_are_honoured():
  from affectjax.data.synthetic.generate import draw
  p = draw(5, 400, 10, neutral_fraction=0.4, compound_fraction=0.0, intensity_min=0.6,
           intensity_max=0.8)
  neutral = p["clean"] == 0
  assert abs(neutral.mean() - 0.4) < 0.025  # 4,000 draws: 3.2 standard errors
  t = p["intensity"]
  assert np.all(t[neutral] < synthetic.INTENSITY_THRESHOLD)
  assert t[~neutral].min() >= 0.6 and t[~neutral].max() <= 0.8
  assert abs(np.median(t[~neutral]) - 0.7) < 0.01
  np.testing.assert_array_equal(p["mix"].max(-1), 1.0)  # no compound faces
  mixed = draw(5, 400, 10, compound_fraction=0.5)["mix"]
  assert abs(np.mean(mixed.max(-1) < 1) - 0.5) < 0.03
  va = draw(5, 100, 10, va_noise=0.0)
  np.testing.assert_array_equal(va["va"], va["va_true"])
  noisy = draw(5, 100, 10, va_noise=0.2)
  resid = (noisy["va"] - noisy["va_true"])[np.all(np.abs(noisy["va"]) < 1, -1)]
  assert abs(resid.std() - 0.2) < 0.01


def test_zero_pose_jitter_gives_identical_landmarks_for_one_identity_and_expression():
  ids = {k: v[np.zeros(6, int)] for k, v in faces.sample_identities(2, 1).items()}  # one person
  left, right = aus.action_units(np.eye(8, dtype=np.float32)[[1] * 6], np.ones(6, np.float32),
                                 np.ones((6, aus.NUM_AUS), np.float32))
  rng = np.random.default_rng(0)
  still = render.landmarks_batch(ids, left, right, faces.sample_pose(rng, 6, 0.0))
  np.testing.assert_array_equal(still, np.broadcast_to(still[0], still.shape))
  moving = render.landmarks_batch(ids, left, right, faces.sample_pose(rng, 6, 0.5))
  spread = np.abs(moving - moving[:1]).max(axis=(1, 2))[1:]
  assert np.all(spread > 1e-3)
  half = faces.sample_pose(np.random.default_rng(1), 6, 0.5)
  full = faces.sample_pose(np.random.default_rng(1), 6, 1.0)
  np.testing.assert_allclose(half["roll"], 0.5 * full["roll"], rtol=1e-6)
  np.testing.assert_allclose(half["scale"] - 1, 0.5 * (full["scale"] - 1), rtol=1e-6)
  light = faces.sample_light(np.random.default_rng(1), 6, 0.0)
  for name, value in faces.frontal(1)[1].items():
    np.testing.assert_array_equal(light[name], value[0])


def test_zoom_scales_the_face_about_its_anchor():
  a = synthetic.generate(4, 2, 4, SIZE, pose_jitter=0.5)
  b = synthetic.generate(4, 2, 4, SIZE, pose_jitter=0.5, zoom=1.5)
  np.testing.assert_array_equal(a["label"], b["label"])  # same draws, only the framing differs
  for lm_key in ("landmarks", "neutral_landmarks"):
    extent = lambda lm: lm[..., :2].max(1) - lm[..., :2].min(1)  # noqa: E731
    np.testing.assert_allclose(extent(b[lm_key]), 1.5 * extent(a[lm_key]), rtol=1e-4)
  # The anchor (a face point at ZOOM_ANCHOR_Y on the midline) keeps its image position: the
  # landmarks' affine map p -> c + 1.5 (p - c) has its fixed point c near the nose and mouth.
  centre = (b["landmarks"][..., :2] - 1.5 * a["landmarks"][..., :2]) / (1 - 1.5)
  np.testing.assert_allclose(centre, centre[:, :1].repeat(68, 1), atol=1e-4)  # one per image
  f = a["factors"]
  expect_y = (geometry.CENTRE[1] + f[:, COL["shift_y"]]
              - faces.ZOOM_ANCHOR_Y * geometry.UNIT * f[:, COL["scale"]])
  np.testing.assert_allclose(centre[:, 0, 1], expect_y, atol=0.003)  # up to the small roll
  np.testing.assert_allclose(centre[:, 0, 0], 0.5 + f[:, COL["shift_x"]], atol=0.01)
  np.testing.assert_allclose(b["factors"][:, COL["scale"]], 1.5 * f[:, COL["scale"]], rtol=1e-6)


def test_colour_variety_zero_shares_colours_and_keeps_geometry():
  full = faces.sample_identities(0, 5)
  none = faces.sample_identities(0, 5, colour_variety=0.0)
  half = faces.sample_identities(0, 5, colour_variety=0.5)
  for name in ("skin", "hair", "iris", "bg", "shirt", "lips", "brow"):
    np.testing.assert_allclose(none[name], np.broadcast_to(none[name][0], none[name].shape),
                               atol=1e-6)
    assert full[name].std(0).sum() > 0.02
  np.testing.assert_allclose(half["skin"].std(0), 0.5 * full["skin"].std(0), rtol=1e-4)
  for name in ("head_a", "eye_x", "mouth_w", "hairline"):
    np.testing.assert_array_equal(none[name], full[name])
