"""`python -m affectjax.apply` on each method's tiny run: the user's images (three sizes and modes)
and landmark files plus one corrupt file; outputs checked against the networks the runs trained."""
import csv
import dataclasses
import hashlib
import os

import jax
import numpy as np
import pytest
from PIL import Image

from affectjax import train
from affectjax.apply import Options, apply, inputs as io
from affectjax.apply.__main__ import main as cli
from affectjax.errors import UserError
from conftest import load_config

GOOD = ("a.png", "b.jpg", "c.png")


def _train(tmp_path_factory, name, arg, **over):
  """The method's tiny config trained by the real loop (its final evaluation skipped: these tests
  only need the checkpoint); returns (workdir, the trained state on the host)."""
  c = load_config(name, arg)
  c.train.report = False
  for k, v in over.items():
    sec, f = k.split("__")
    c[sec][f] = v
  wd = str(tmp_path_factory.mktemp(name))
  real = train.setup

  def no_eval(config, **kw):
    s = real(config, **kw)
    s.method = dataclasses.replace(s.method, evaluate=None, report=None)
    return s

  # the non-partitionable PRNG: XLA:CPU compiles GANmut's partitionable one far slower
  with pytest.MonkeyPatch.context() as mp, jax.threefry_partitionable(False):
    mp.setattr(train, "setup", no_eval)
    state, _ = train.train_and_evaluate(c, wd)
  return wd, train.host_state(state)


def _digest(folder):
  return {n: hashlib.sha256(open(os.path.join(folder, n), "rb").read()).hexdigest()
          for n in sorted(os.listdir(folder))}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
  """a.png RGB 40x30, b.jpg grayscale 23x23, c.png RGBA 20x16 (a transparent left half),
  d.jpg a corrupt JPEG."""
  d = tmp_path_factory.mktemp("images")
  rng = np.random.default_rng(0)
  Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(d / "a.png")
  Image.fromarray(rng.integers(0, 256, (23, 23), dtype=np.uint8), "L").save(d / "b.jpg")
  rgba = rng.integers(0, 256, (16, 20, 4), dtype=np.uint8)
  rgba[..., 3] = 255
  rgba[:, :10, 3] = 0
  Image.fromarray(rgba, "RGBA").save(d / "c.png")
  (d / "d.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
  return str(d)


def _apply_twice(workdir, folder, tmp_path, options):
  """Two runs into two folders: (summary, out1, out2); the inputs unchanged."""
  before = _digest(folder)
  outs = []
  for i in range(2):
    out = str(tmp_path / f"out{i}")
    s = apply(workdir, folder, out, dataclasses.replace(options, progress=False),
              log=lambda m: None)
    outs.append(out)
  assert _digest(folder) == before  # inputs untouched
  return s, outs[0], outs[1]


def _check_summary(s, folder, corrupt="d.jpg"):
  assert sorted(os.path.basename(f) for f in s.processed) == sorted(
      n for n in os.listdir(folder) if n != corrupt)
  assert list(map(os.path.basename, s.skipped)) == [corrupt]
  assert "1 skipped" in s.line() and "3 of 4 files processed" in s.line()


def _same_npz(a, b):
  x, y = np.load(a), np.load(b)
  assert sorted(x.files) == sorted(y.files)
  for k in x.files:
    np.testing.assert_array_equal(x[k], y[k], err_msg=k)  # deterministic on a rerun


# ---------------------------------------------------------------- input handling (no model)

def test_read_image_sizes_and_modes(images):
  a = io.read_image(os.path.join(images, "a.png"), 16)
  assert a.pixels.shape == (16, 16, 3) and a.original_size == (40, 30)
  b = io.read_image(os.path.join(images, "b.jpg"), 16).pixels
  np.testing.assert_array_equal(b[..., 0], b[..., 1])  # grayscale replicated to RGB
  c = io.read_image(os.path.join(images, "c.png"), 16).pixels  # 20x16: cropped, not resized
  src = np.asarray(Image.open(os.path.join(images, "c.png")), np.float32)
  assert np.all(c[:, :8] == 1.0)  # columns 2..9 of the original are transparent: white
  np.testing.assert_allclose(c[:, 8:], src[:, 10:18, :3] / 127.5 - 1, atol=1e-6)  # centre crop
  with pytest.raises(io.Skip, match="unreadable image"):
    io.read_image(os.path.join(images, "d.jpg"), 16)
  assert "3 of 3 images centre-cropped" in io.resize_line(
      {n: io.read_image(os.path.join(images, n), 16) for n in GOOD}, 16)


# ---------------------------------------------------------------- GANmut, GGANmut, StarGAN

@pytest.fixture(scope="module", params=["tiny", pytest.param("stargan,tiny", marks=pytest.mark.skipif(
    not os.environ.get("AFFECTJAX_SLOW"), reason="one more tiny training (StarGAN): AFFECTJAX_SLOW=1"))])
def ganmut_run(request, tmp_path_factory):
  return request.param, *_train(tmp_path_factory, "ganmut", request.param, train__num_steps=2,
                                train__checkpoint_every=2)


def _generator(config, state, x, code):
  """G(x, z) as the training step computes it (methods/ganmut: gen.apply on params["g"]["net"])."""
  from affectjax.methods import ganmut
  gen, _ = ganmut.networks(config)
  return np.asarray(gen.apply({"params": state.params["g"]["net"]}, x, code))


def test_ganmut_edits(ganmut_run, images, tmp_path):
  from affectjax.apply.run import read_config
  from affectjax.methods import ganmut
  arg, wd, state = ganmut_run
  config = read_config(wd)
  space = ganmut.space_of(config)
  params = state.params["g"]["space"]
  s, o1, o2 = _apply_twice(wd, images, tmp_path, Options(emotion="happy", intensity=0.0,
                                                         strip=True, gamut=True))
  _check_summary(s, images)
  for n in GOOD:
    stem = n.split(".")[0]
    for f in (f"{stem}.happy_0.png", f"{stem}.strip.png", f"{stem}.gamut.png"):
      assert Image.open(os.path.join(o1, f)).size[0] >= 16
    _same_npz(os.path.join(o1, f"{stem}.strip.npz"), os.path.join(o2, f"{stem}.strip.npz"))
  _same_npz(os.path.join(o1, "edits.happy_0.npz"), os.path.join(o2, "edits.happy_0.npz"))
  ed = np.load(os.path.join(o1, "edits.happy_0.npz"))
  assert sorted(ed["files"]) == sorted(GOOD) and ed["images"].shape == (3, 16, 16, 3)
  x = ed["inputs"]
  neutral = _generator(config, state, x, np.repeat(np.asarray(space.class_codes(params, [0])), 3, 0))
  np.testing.assert_allclose(ed["images"], neutral, atol=1e-5)  # intensity 0: the neutral output
  # intensity 1 is the training's code for the emotion at full strength
  full = apply(wd, images, str(tmp_path / "full"), Options(emotion="sad", progress=False),
               log=lambda m: None)
  assert len(full.processed) == 3
  ed1 = np.load(tmp_path / "full" / "edits.sad_1.npz")
  code = np.asarray(space.class_codes(params, np.full(3, 2)))
  np.testing.assert_allclose(ed1["code"], code[0], atol=1e-7)
  np.testing.assert_allclose(ed1["images"], _generator(config, state, ed1["inputs"], code), atol=1e-5)
  assert not np.allclose(ed1["images"], neutral, atol=1e-3)  # the edit does change the face
  # the strip runs from the neutral output to the full emotion, one row per emotion
  st = np.load(os.path.join(o1, "a.strip.npz"))
  c = config.data.num_classes
  assert st["images"].shape == (c - 1, 11, 16, 16, 3) and st["strengths"][[0, -1]].tolist() == [0, 1]
  i = list(ed["files"]).index("a.png")
  xa = np.repeat(x[i:i + 1], c - 1, 0)
  np.testing.assert_allclose(st["images"][:, 0], _generator(
      config, state, xa, np.repeat(np.asarray(space.class_codes(params, [0])), c - 1, 0)), atol=1e-5)
  np.testing.assert_allclose(st["images"][:, -1], _generator(
      config, state, xa, np.asarray(space.class_codes(params, np.arange(1, c)))), atol=1e-5)
  g = np.load(os.path.join(o1, "a.gamut.npz"))
  assert g["images"].shape == ((49 if space.code_dim == 2 else c), 16, 16, 3)
  if space.code_dim == 2:  # --point and --angle/--rho reach the same code
    p = apply(wd, os.path.join(images, "a.png"), str(tmp_path / "pt"),
              Options(point=(0.0, 0.5), progress=False), log=lambda m: None)
    q = apply(wd, os.path.join(images, "a.png"), str(tmp_path / "pol"),
              Options(angle=np.pi / 2, rho=0.5, progress=False), log=lambda m: None)
    assert p.outputs[0].endswith("a.x_0_y_0.5.png") and len(q.processed) == 1
    np.testing.assert_allclose(np.load(tmp_path / "pt" / "edits.x_0_y_0.5.npz")["images"],
                               np.load(tmp_path / "pol" / "edits.angle_1.5708_rho_0.5.npz")["images"],
                               atol=1e-5)
  else:
    with pytest.raises(UserError, match="one-hot"):
      apply(wd, images, str(tmp_path / "x"), Options(point=(0.1, 0.1)), log=lambda m: None)


def test_ganmut_never_overwrites_inputs(ganmut_run, tmp_path):
  _, wd, _ = ganmut_run
  d = tmp_path / "in"
  d.mkdir()
  Image.new("RGB", (16, 16), (10, 20, 30)).save(d / "x.png")
  Image.new("RGB", (16, 16), (40, 50, 60)).save(d / "x.happy_1.png")  # the name x's edit would get
  before = _digest(d)
  with pytest.raises(UserError, match="overwrite an input"):
    apply(wd, str(d), str(d), Options(emotion="happy", progress=False), log=lambda m: None)
  assert _digest(d)["x.happy_1.png"] == before["x.happy_1.png"]


def test_errors_are_one_line(ganmut_run, images, tmp_path, capsys):
  _, wd, _ = ganmut_run
  with pytest.raises(UserError, match="applies to a rbvae run"):
    apply(wd, images, str(tmp_path / "o"), Options(style_from=os.path.join(images, "a.png")))
  with pytest.raises(UserError, match="--emotion=sleepy: expected one of neutral, happy"):
    apply(wd, images, str(tmp_path / "o"), Options(emotion="sleepy", progress=False),
          log=lambda m: None)
  empty = tmp_path / "untrained"
  empty.mkdir()
  (empty / "config.json").write_text(open(os.path.join(wd, "config.json")).read())
  assert cli([f"--workdir={empty}", f"--input={images}", f"--output={tmp_path / 'o'}",
              "--emotion=happy"]) == 1
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and err[0].startswith("affectjax: error:") and "no checkpoint" in err[0]
  assert cli([f"--workdir={wd}", f"--input={images}", f"--output={tmp_path / 'o'}"]) == 1
  assert "a GANmut run edits faces" in capsys.readouterr().err


# ---------------------------------------------------------------- LeVAsa and the Vanilla VAE

@pytest.mark.parametrize("variant", [
    "continuous",
    # the Vanilla VAE differs only in having no heads (no VA columns): one more training
    pytest.param("vanilla", marks=pytest.mark.skipif(not os.environ.get("AFFECTJAX_SLOW"),
                                                     reason="one more tiny training: AFFECTJAX_SLOW=1"))])
def test_levasa_latents(variant, images, tmp_path_factory, tmp_path):
  from affectjax.methods import levasa
  wd, state = _train(tmp_path_factory, "levasa", f"{variant},tiny", train__num_steps=2,
                     train__checkpoint_every=2)
  s, o1, o2 = _apply_twice(wd, images, tmp_path, Options())
  _check_summary(s, images)
  _same_npz(os.path.join(o1, "latents.npz"), os.path.join(o2, "latents.npz"))
  assert open(os.path.join(o1, "latents.csv")).read() == open(os.path.join(o2, "latents.csv")).read()
  z = np.load(os.path.join(o1, "latents.npz"))
  config = load_config("levasa", f"{variant},tiny")
  sizes = tuple(config.model.chunk_sizes)
  assert [z[k].shape for k in ("z_v", "z_a", "z_z")] == [(3, n) for n in sizes]
  x = np.stack([io.read_image(os.path.join(images, f), config.data.image_size).pixels
                for f in z["files"]])
  model = levasa.build_model(config)
  variables = levasa.variables(state.params[levasa.PLAYER], state.aux)
  mu, _ = model.apply(variables, x, method=model.encode)
  np.testing.assert_allclose(np.concatenate([z["z_v"], z["z_a"], z["z_z"]], 1), mu, atol=1e-5)
  rows = list(csv.DictReader(open(os.path.join(o1, "latents.csv"))))
  assert [r["file"] for r in rows] == list(z["files"])
  if variant == "vanilla":
    assert "va" not in z.files and "valence" not in rows[0]
  else:
    r_v, r_a = model.apply(variables, mu, method=model.heads)
    np.testing.assert_allclose(z["va"], np.concatenate([r_v, r_a], 1), atol=1e-5)
    np.testing.assert_allclose([float(r["arousal"]) for r in rows], z["va"][:, 1], rtol=1e-5)


# ---------------------------------------------------------------- dual-domain

def test_dual_domain_predictions(images, tmp_path_factory, tmp_path):
  from affectjax.affect.emotions import EMOTIONS
  wd, _ = _train(tmp_path_factory, "dual_domain", "tiny", train__num_steps=4,
                 train__checkpoint_every=4)
  s, o1, o2 = _apply_twice(wd, images, tmp_path, Options())
  _check_summary(s, images)
  _same_npz(os.path.join(o1, "predictions.npz"), os.path.join(o2, "predictions.npz"))
  p = np.load(os.path.join(o1, "predictions.npz"))
  c = load_config("dual_domain", "tiny").data.num_classes
  assert p["probs"].shape == (3, c) and p["va"].shape == (3, 2)
  np.testing.assert_allclose(p["probs"].sum(1), 1.0, atol=1e-5)
  assert np.all(np.abs(p["va"]) <= 1)
  rows = list(csv.DictReader(open(os.path.join(o1, "predictions.csv"))))
  assert list(rows[0]) == ["file"] + [f"p_{e}" for e in EMOTIONS[:c]] + ["predicted", "valence",
                                                                          "arousal"]
  assert [r["predicted"] for r in rows] == [EMOTIONS[i] for i in p["probs"].argmax(1)]


# ---------------------------------------------------------------- Rb-VAE / sRb-VAE

def test_rbvae_codes_and_style_transfer(images, tmp_path_factory, tmp_path):
  wd, state = _train(tmp_path_factory, "rbvae", "srbvae,tiny")
  style = os.path.join(images, "a.png")
  s, o1, o2 = _apply_twice(wd, images, tmp_path, Options(style_from=style))
  _check_summary(s, images)
  for f in ("codes.npz", "style_transfer.npz"):
    _same_npz(os.path.join(o1, f), os.path.join(o2, f))
  c = load_config("rbvae", "srbvae,tiny")
  codes = np.load(os.path.join(o1, "codes.npz"))
  assert codes["z"].shape == (3, c.model.z_dim) and codes["e"].shape == (3, c.model.e_dim)
  tr = np.load(os.path.join(o1, "style_transfer.npz"))
  i = list(codes["files"]).index("a.png")
  np.testing.assert_allclose(tr["e_style"], codes["e"][i], atol=1e-6)  # e of the style image
  size = c.data.image_size
  assert tr["images"].shape[:3] == (3, size, size)
  assert os.path.exists(os.path.join(o1, "b.style_from_a.png"))
  with pytest.raises(UserError, match="applies to a ganmut run"):
    apply(wd, images, str(tmp_path / "x"), Options(emotion="happy"))


# ---------------------------------------------------------------- triplet VAE

def _write_bnd(path, pts, index=False):
  with open(path, "w") as f:
    for i, p in enumerate(pts):
      f.write((f"{i} " if index else "") + " ".join(f"{v:.6f}" for v in p) + "\n")


def test_triplet_vae_embeddings(tmp_path_factory, tmp_path):
  from affectjax.data import sources
  wd, _ = _train(tmp_path_factory, "triplet_vae", "m1,tiny", train__num_steps=4,
                 train__checkpoint_every=4)
  c = load_config("triplet_vae", "m1,tiny")
  ex = sources.load(c).test.gather(np.arange(2))
  d = tmp_path / "landmarks"
  d.mkdir()
  _write_bnd(d / "a.bnd", ex["landmarks"][0])
  _write_bnd(d / "b.bndplus", ex["landmarks"][1], index=True)
  np.save(d / "c.npy", ex["landmarks"][0])  # the same face as a.bnd, another format
  (d / "d.bnd").write_text("1 2 3\nnot numbers\n")
  neutral = tmp_path / "neutral.bnd"
  _write_bnd(neutral, ex["neutral_landmarks"][0])
  with pytest.raises(UserError, match="--neutral=FILE"):
    apply(wd, str(d), str(tmp_path / "x"), Options(progress=False), log=lambda m: None)
  s, o1, o2 = _apply_twice(wd, str(d), tmp_path, Options(neutral=str(neutral)))
  _check_summary(s, str(d), corrupt="d.bnd")
  _same_npz(os.path.join(o1, "embeddings.npz"), os.path.join(o2, "embeddings.npz"))
  e = np.load(os.path.join(o1, "embeddings.npz"))
  assert list(e["files"]) == ["a.bnd", "b.bndplus", "c.npy"]
  assert e["z"].shape == (3, c.model.latent_dim) and np.isfinite(e["z"]).all()
  np.testing.assert_allclose(e["z"][0], e["z"][2], atol=1e-5)  # .bnd and .npy of one face
  assert not np.allclose(e["z"][0], e["z"][1], atol=1e-4)
