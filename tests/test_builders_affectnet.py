"""AffectNet builder on a fixture in the real format: header traps, mixed files, bad rows, crops."""
import os

import numpy as np
import pytest

import fixtures_real as fx
from affectjax.data import builders
from affectjax.data.builders import affectnet
from affectjax.data.builders.report import MissingDataError

TRAIN_SKIPS = {"bad_face_box": 2, "bad_label": 1, "bad_landmarks": 1, "class_no_face": 1,
               "class_none": 1, "class_uncertain": 1, "invalid_va": 1, "label_out_of_range": 1,
               "malformed_row": 1, "missing_image": 1, "unreadable_image": 2, "va_out_of_range": 1}


@pytest.fixture(scope="module")
def manual(tmp_path_factory):
  fx.limit_tf_threads()
  root = tmp_path_factory.mktemp("affectnet")
  fx.write_affectnet(str(root / "manual"), validation_header="hash")
  return root


@pytest.fixture(scope="module")
def splits(manual):
  return builders.load_splits(fx.data_config("affectnet", manual / "manual", manual / "tfds"))


def by_source(source):
  names = source.sources()
  return {n: source.gather(np.array([i])) for i, n in enumerate(names)}


def test_kept_rows_and_skip_counts(splits):
  assert splits.train.sources() == ["1/a.jpg", "1/b.png", "2/c.tif", "2/d.bmp", "4/past.png",
                                    "4/renamed.jpg"]
  assert splits.test.sources() == ["6/v1.jpg", "6/v2.png"]  # validation.csv is the test split
  rep = splits.metadata["report"]
  assert rep["train"]["skipped"] == TRAIN_SKIPS
  assert rep["train"]["adjusted"] == {"face_box_padded": 1, "image_extension_differs": 1}
  assert rep["test"]["skipped"] == {"class_uncertain": 1}
  assert rep["train"]["label_histogram"] == {"0": 1, "1": 1, "2": 1, "3": 1, "4": 1, "7": 1}


def test_labels_and_va(splits):
  ex = by_source(splits.train)
  expect = {"1/a.jpg": (1, (0.5, 0.25)), "1/b.png": (0, (-0.125, 0.0625)), "2/c.tif": (2, (-0.75, -0.5)),
            "2/d.bmp": (7, (-0.5, 0.5)), "4/past.png": (3, (0.25, 0.75)), "4/renamed.jpg": (4, (-0.25, 0.875))}
  for name, (label, va) in expect.items():
    assert int(ex[name]["label"][0]) == label, name
    np.testing.assert_allclose(ex[name]["va"][0], va, atol=1e-6)
  assert set(by_source(splits.test)) == {"6/v1.jpg", "6/v2.png"}


def test_canonical_batch(splits):
  b = splits.train.gather(np.array([0, 1, 2]))
  assert b["image"].shape == (3, 20, 20, 3) and b["image"].dtype == np.float32
  assert b["landmarks"].shape == (3, 68, 3) and np.all(b["landmarks"][..., 2] == 0)
  assert np.all(b["identity"] == -1) and np.all(np.isnan(b["neutral_landmarks"]))
  assert b["image"].min() >= -1 and b["image"].max() <= 1


def test_crop_puts_the_marker_in_place(splits):
  ex = by_source(splits.train)
  for name, bg in (("1/b.png", (60, 160, 60)), ("2/d.bmp", fx.BG)):
    img = ex[name]["image"][0]  # box 20x20 -> 20x20: the crop is an exact copy
    np.testing.assert_allclose(img[5:7, 3:5], np.broadcast_to(fx.to_float(fx.MARKER), (2, 2, 3)), atol=1e-6)
    np.testing.assert_allclose(img[0, 0], fx.to_float(bg), atol=1e-6)
    np.testing.assert_allclose(img[3, 5], fx.to_float(bg), atol=1e-6)  # swapped x/y would land here
    np.testing.assert_allclose(img[4, 3], fx.to_float(bg), atol=1e-6)  # one row up
  gray = ex["2/c.tif"]["image"][0]  # grayscale TIFF: PIL's luma of the marker is 89, background 200
  assert np.allclose(gray[..., 0], gray[..., 2])
  np.testing.assert_allclose([gray[5, 3, 0], gray[6, 4, 0], gray[0, 0, 0], gray[3, 5, 0]],
                             fx.to_float([89, 89, 200, 200]), atol=1e-6)
  past = ex["4/past.png"]["image"][0]  # box columns 30..49 of a 40-wide image: right half is padding
  np.testing.assert_allclose(past[5:7, 3:5], np.broadcast_to(fx.to_float(fx.MARKER), (2, 2, 3)), atol=1e-6)
  assert np.all(past[:, 10:] == -1) and np.all(past[:, :10] > -1)


def test_landmarks_follow_the_crop(splits):
  ex = by_source(splits.train)
  i = np.arange(68)
  want = np.stack([1 + 0.25 * i, 2 + 0.2 * i, 0 * i], 1)  # box origin (8, 4) subtracted
  np.testing.assert_allclose(ex["1/b.png"]["landmarks"][0], want, atol=1e-4)
  np.testing.assert_allclose(ex["4/past.png"]["landmarks"][0], want, atol=1e-4)


def test_va_stats_over_train(splits):
  st = splits.metadata["va_stats"]
  np.testing.assert_allclose(st["priors"], [1 / 6] * 5 + [0, 0, 1 / 6])
  np.testing.assert_allclose(st["means"][1], [0.5, 0.25])
  np.testing.assert_allclose(st["means"][7], [-0.5, 0.5])
  assert np.all(np.isnan(st["means"][5])) and st["covs"].shape == (8, 2, 2)
  assert splits.metadata["num_classes"] == 8 and splits.metadata["image_size"] == 20


def test_seven_classes_keep_none_and_scaled_crop(manual):
  s = builders.load_splits(fx.data_config("affectnet", manual / "manual", manual / "tfds",
                                          image_size=40, num_classes=7, keep_none=True))
  names = s.train.sources()
  assert "2/d.bmp" not in names and "3/e.jpg" in names
  rep = s.metadata["report"]["train"]["skipped"]
  assert rep["class_contempt"] == 1 and "class_none" not in rep
  none = s.train.gather(np.array([names.index("3/e.jpg")]))
  assert none["label"][0] == -1
  np.testing.assert_allclose(none["va"][0], [0.1, -0.2], atol=1e-6)  # class 8 keeps its real VA
  b = s.train.gather(np.array([names.index("1/b.png")]))
  i = np.arange(68)
  np.testing.assert_allclose(b["landmarks"][0, :, :2], 2 * np.stack([1 + 0.25 * i, 2 + 0.2 * i], 1), atol=1e-3)
  red = b["image"][0, ..., 0] - b["image"][0, ..., 1]  # marker is 2x2 at (3, 5) -> 4x4 at (6, 10)
  assert np.unravel_index(np.argmax(red), red.shape)[0] in (10, 11, 12, 13)
  assert np.unravel_index(np.argmax(red), red.shape)[1] in (6, 7, 8, 9)
  assert s.metadata["va_stats"]["priors"].shape == (7,)


@pytest.mark.parametrize("header", ["none", "plain", "hash"])
def test_validation_header_is_detected(tmp_path, header):
  fx.write_affectnet(str(tmp_path), validation_header=header)
  cols, rows, has_header = affectnet.read_csv(str(tmp_path / "validation.csv"))
  assert has_header == (header != "none") and len(rows) == 3
  assert cols["subDirectory_filePath"] == 0 and cols["arousal"] == 8 and rows[0][0] == "6/v1.jpg"


def test_missing_inputs_are_one_clear_error(tmp_path):
  with pytest.raises(MissingDataError, match=str(tmp_path / "absent")):
    builders.load_splits(fx.data_config("affectnet", tmp_path / "absent", tmp_path / "tfds"))
  fx.write_affectnet(str(tmp_path / "m"))
  os.remove(tmp_path / "m" / "validation.csv")
  with pytest.raises(MissingDataError, match="validation.csv"):
    builders.load_splits(fx.data_config("affectnet", tmp_path / "m", tmp_path / "tfds"))
  with pytest.raises(ValueError, match="unknown builder option"):
    builders.load_splits(fx.data_config("affectnet", tmp_path / "m", tmp_path / "tfds", bogus=1))
