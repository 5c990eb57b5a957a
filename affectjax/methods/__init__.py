"""One package per paper; each exposes `validate(config)`, `make_method(config, data) -> Method`
and `NEEDS`, the DatasetInfo capabilities it needs of the data (see base.py for the contract)."""
import importlib

from affectjax.methods.base import Method, Stream  # noqa: F401

# config.method -> module under affectjax.methods
REGISTRY = {
    "levasa": "levasa",
    "ganmut": "ganmut",
    "triplet_vae": "triplet_vae",
    "dual_domain": "dual_domain",
    "rbvae": "rbvae",
    "factor_vae": "factor_vae",  # Kim and Mnih 2018: docs/adding_a_method.md's worked example
}


def module_of(config):
  from affectjax.config import expect_one_of
  expect_one_of(config, "method", tuple(REGISTRY))
  return importlib.import_module(f"affectjax.methods.{REGISTRY[config.method]}")


def validate(config, num_devices: int) -> None:
  """Every check that can run before data is generated, read or compiled, in the loop's order:
  the shared fields, the data fields, then the method's own (ConfigError, one line each)."""
  from affectjax import config as config_lib
  from affectjax.data import sources
  module = module_of(config)
  config_lib.validate(config, num_devices)
  sources.validate(config)
  module.validate(config)
  info = sources.dataset_info(config.data)
  missing = [need for need in getattr(module, "NEEDS", ()) if not getattr(info, need)]
  config_lib.expect(not missing, f"config.data.name={info.name!r}: config.method={config.method!r} "
                    f"needs data with {', '.join(missing)} (affectjax.data.sources.DatasetInfo)")


def get(config, data, **overrides) -> Method:
  """Builds the Method named by config.method from the loaded splits (overrides: objective=)."""
  return module_of(config).make_method(config, data, **overrides)
