"""Metrics, probes, tables and figures. The stable API of DESIGN.md is re-exported here."""
from affectjax.evaluate.frechet import frechet_distance  # noqa: F401
from affectjax.evaluate.gan_metrics import smoothness_score  # noqa: F401
from affectjax.evaluate.affect_metrics import concordance_cc, expected_calibration_error  # noqa: F401
