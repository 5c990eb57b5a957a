"""AFEW-VA, Aff-Wild, IMFDB, BU-3DFE, BP4D and MorphSet builders on fixtures in their real formats."""
import numpy as np

import fixtures_real as fx
from affectjax.data import builders


def build(tmp_path_factory, name, writer, **kw):
  fx.limit_tf_threads()
  root = tmp_path_factory.mktemp(name)
  writer(str(root / "manual"))
  return builders.load_splits(fx.data_config(name, root / "manual", root / "tfds", **kw))


def rows(s):
  """{source name: one-example batch} over both splits."""
  out = {}
  for split in (s.train, s.test):
    for i, n in enumerate(split.sources()):
      out[n] = split.gather(np.array([i]))
  return out


def skipped(s):
  total = {}
  for split in ("train", "test"):
    for k, v in s.metadata["report"].get(split, {}).get("skipped", {}).items():
      total[k] = total.get(k, 0) + v
  return total


def test_afew_va(tmp_path_factory):
  s = build(tmp_path_factory, "afew_va", fx.write_afew_va, image_size=24)
  ex = rows(s)
  assert set(ex) == {"001/00000", "001/00001", "002/00001", "003/00000"}
  assert skipped(s) == {"va_out_of_range": 1, "bad_landmarks": 1, "missing_image": 1, "bad_va": 1}
  assert s.metadata["skipped_before_split"] == {"clip_without_json": 1}
  np.testing.assert_allclose(ex["001/00000"]["va"][0], [0.5, -1.0])  # -10..10 -> [-1, 1]
  np.testing.assert_allclose(ex["001/00001"]["va"][0], [0.25, 1.0])
  np.testing.assert_allclose(ex["003/00000"]["va"][0], [0.0, 0.7], atol=1e-6)
  assert {int(ex[n]["identity"][0]) for n in ("001/00000", "002/00001")} == {0} and ex["003/00000"]["identity"][0] == 1
  assert len(s.test) in (1, 3) and len(s.train) + len(s.test) == 4  # one of the two actors held out
  img = ex["001/00000"]["image"][0]  # landmark box (8, 18, 24, 24): marker (19, 29) -> crop (11, 11)
  np.testing.assert_allclose(img[11:13, 11:13], np.broadcast_to(fx.to_float(fx.MARKER), (2, 2, 3)), atol=1e-6)
  np.testing.assert_allclose(img[10, 11], fx.to_float(fx.BG), atol=1e-6)
  lm = ex["001/00000"]["landmarks"][0]
  np.testing.assert_allclose(lm[0], [4, 20, 0], atol=1e-4)
  np.testing.assert_allclose(lm[-1], [20, 4, 0], atol=1e-4)


def test_aff_wild(tmp_path_factory):
  s = build(tmp_path_factory, "aff_wild", fx.write_aff_wild, image_size=10)
  assert s.train.sources() == ["train/105/0", "train/105/1", "train/106/0", "train/106/1"]
  assert s.test.sources() == ["test/200/0", "test/200/1"]
  assert s.metadata["report"]["train"]["skipped"] == {"va_out_of_range": 1, "missing_image": 1,
                                                      "va_length_mismatch": 1}
  b = s.train.gather(np.arange(4))
  np.testing.assert_allclose(b["va"], [[0.5, 0.1], [-0.25, 0.2], [0.3, -0.3], [0.3, -0.3]], atol=1e-6)
  np.testing.assert_allclose(s.test.gather(np.arange(2))["va"], [[-1, 1], [1, -1]])
  img = b["image"][2]  # bbox (6, 2, 10, 10) -> 10x10 exact copy: marker (10, 6) -> crop (4, 4)
  np.testing.assert_allclose(img[4:6, 4:6], np.broadcast_to(fx.to_float(fx.MARKER), (2, 2, 3)), atol=1e-6)
  np.testing.assert_allclose(img[[0, 3, 6], [0, 4, 4]], np.broadcast_to(fx.to_float(fx.BG), (3, 3)), atol=1e-6)
  assert list(b["identity"]) == [0, 0, 1, 1]


def test_imfdb(tmp_path_factory):
  s = build(tmp_path_factory, "imfdb", fx.write_imfdb, image_size=8)
  ex = rows(s)
  labels = {n.split("/")[-1]: int(e["label"][0]) for n, e in ex.items()}
  assert labels == {"A_1.jpg": 1, "A_2.jpg": 6, "A_3.jpg": 2, "K_1.jpg": 0, "K_2.jpg": 4,
                    "R_1.jpg": 3, "R_2.jpg": 5}
  assert skipped(s) == {"label_not_an_emotion": 1, "missing_image": 1}
  assert s.metadata["skipped_before_split"] == {"duplicate_row": 1, "malformed_row": 1}
  assert all(np.all(np.isnan(e["va"])) for e in ex.values())  # IMFDB has no VA
  test_actors = {n.split("/")[0] for n in s.test.sources()}
  assert len(test_actors) == 1 and not test_actors & {n.split("/")[0] for n in s.train.sources()}
  img = ex["Kajol/DDLJ/K_1.jpg"]["image"][0]  # 24 wide x 32 high, marker at column 5, row 20
  red = img[..., 0] - img[..., 1]
  r, c = np.unravel_index(np.argmax(red), red.shape)
  assert r == 5 and c in (1, 2)  # x scaled by 8/24, y by 8/32


def test_bu3dfe(tmp_path_factory):
  s = build(tmp_path_factory, "bu3dfe", fx.write_bu3dfe)
  ex = rows(s)
  assert set(ex) == {f"{p}_{e}_F3D.bnd" for p, r in (("F0001", "WH"), ("M0002", "AE"))
                     for e in (f"NE00{r}", f"AN01{r}", f"HA04{r}")}
  assert skipped(s) == {"no_neutral": 2, "bad_landmarks": 1}
  assert s.metadata["skipped_before_split"] == {"unrecognised_file_name": 1}
  e = ex["M0002_HA04AE_F3D.bnd"]
  assert e["label"][0] == 1 and e["factors"][0, 0] == 4 and e["landmarks"].shape == (1, 83, 3)
  np.testing.assert_allclose(e["landmarks"][0], fx.bnd_points(5), atol=1e-4)  # the index column dropped
  np.testing.assert_allclose(e["neutral_landmarks"][0], fx.bnd_points(1), atol=1e-4)
  assert ex["F0001_AN01WH_F3D.bnd"]["label"][0] == 6 and ex["F0001_NE00WH_F3D.bnd"]["label"][0] == 0
  assert e["image"].shape == (1, 1, 1, 3) and len(s.test) == 3  # one subject held out


def test_bp4d(tmp_path_factory):
  s = build(tmp_path_factory, "bp4d", fx.write_bp4d)
  ex = rows(s)
  assert set(ex) == {"F001_T1_0001", "F001_T1_0002", "F001_T1_0003", "F001_T2_0007", "M002_T1_0001"}
  assert skipped(s) == {"bad_au_value": 1, "missing_landmarks": 1}
  f = ex["F001_T1_0003"]["factors"][0]  # AU1 = 1, AU2 = 9 (unknown), the rest 0
  assert s.metadata["factor_names"][:2] == ("AU1", "AU2") and f[0] == 1 and np.isnan(f[1])
  assert np.all(f[2:] == 0) and len(f) == 12
  np.testing.assert_allclose(ex["F001_T1_0003"]["landmarks"][0], fx.bnd_points(5), atol=1e-4)
  np.testing.assert_allclose(ex["F001_T2_0007"]["neutral_landmarks"][0], fx.bnd_points(0), atol=1e-4)
  np.testing.assert_allclose(ex["M002_T1_0001"]["neutral_landmarks"][0], fx.bnd_points(1), atol=1e-4)


def test_morphset(tmp_path_factory):
  s = build(tmp_path_factory, "morphset", fx.write_morphset)
  assert s.train.sources() == ["img/a.png", "img/b.png", "img/c.png"]
  assert s.test.sources() == ["img/a.png"]
  rep = s.metadata["report"]
  assert rep["train"]["skipped"] == {"label_out_of_range": 1, "missing_image": 1}
  assert rep["test"]["skipped"] == {"va_out_of_range": 1}
  b = s.train.gather(np.arange(3))
  assert list(b["label"]) == [1, 6, -1]
  np.testing.assert_allclose(b["va"][:2], [[0.5, 0.25], [-0.5, 0.75]])
  assert np.all(np.isnan(b["va"][2]))
  assert "va_stats" in s.metadata
