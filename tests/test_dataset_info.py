"""DatasetInfo: what each dataset offers, known from config.data before anything is read; methods
check capabilities (methods.validate's NEEDS, the triplet VAE's triplet kinds), not names."""
import pytest

from affectjax import methods
from affectjax.config import ConfigError
from affectjax.data import sources
from conftest import load_config, with_fields


def _info(name, **data):
  c = load_config("levasa", "tiny")
  c.data.name = name
  for k, v in data.items():
    c.data[k] = v
  return sources.dataset_info(c.data)


def test_capabilities_follow_the_views_and_the_builders():
  full, affectnet_like, imfdb_like, afew_like = (_info("synthetic_faces", view=v) for v in sources.VIEWS)
  assert full.landmarks and full.rendered and full.has_labels and full.has_va
  assert "AU12" in full.au_factors and set(full.au_factors) <= set(full.factor_names)
  assert not affectnet_like.landmarks and affectnet_like.has_va
  assert imfdb_like.has_labels and not imfdb_like.has_va
  assert afew_like.has_va and not afew_like.has_labels
  assert full.va_reference == "synthetic_faces" and _info("affectnet").va_reference == "affectnet_published"
  bp4d, bu3dfe = _info("bp4d"), _info("bu3dfe")
  assert bp4d.landmarks and not bp4d.has_images and not bp4d.has_labels and bp4d.au_factors == bp4d.factor_names
  assert bu3dfe.landmarks and bu3dfe.has_labels and bu3dfe.factor_names == ("intensity",) and not bu3dfe.au_factors
  assert _info("style_digits").factor_targets and _info("mnist_style").factor_targets
  assert not _info("aff_wild").has_labels and _info("aff_wild").has_va


def test_loaded_splits_carry_the_same_info():
  c = load_config("levasa", "tiny")
  splits = sources.load(c)
  assert splits.info == sources.dataset_info(c.data)
  assert splits.probe_fit is None  # only the style digits have a second held-out split


def _triplet(name, **fields):
  c = load_config("triplet_vae", "tiny,m2")
  c.data.name = name
  return with_fields(c, **fields)


@pytest.mark.parametrize("config,match", [
    (lambda: _triplet("bp4d", triplets__kind="artificial"), r"kind='artificial' needs labels and intensities; bp4d"),
    (lambda: _triplet("bu3dfe", triplets__kind="crowd"), r"kind='crowd' needs action units; bu3dfe"),
    (lambda: _triplet("bu3dfe", triplets__kind="artificial", eval__task="valence_sign"), r"true valence, not bu3dfe"),
    (lambda: _triplet("synthetic_faces", data__view="affectnet_like"), r"view 'affectnet_like': the triplet VAE needs 3D landmarks"),
    (lambda: _triplet("affectnet"), r"'affectnet': the triplet VAE needs 3D landmarks"),
])
def test_the_triplet_vae_asks_capabilities(config, match):
  with pytest.raises(ConfigError, match=match):
    methods.validate(config(), 1)


def test_needs_is_checked_for_every_method():
  c = load_config("ganmut", "tiny")
  c.data.name = "bp4d"  # 3D landmarks only: no images, no labels
  with pytest.raises(ConfigError, match=r"config.method='ganmut' needs data with has_images, has_labels"):
    methods.validate(c, 1)
  for name in methods.REGISTRY:  # every method's default data offers what it needs
    methods.validate(load_config(name, "tiny"), 1)
