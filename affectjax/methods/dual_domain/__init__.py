"""Dual-domain affect fusion (dual_domain_fusion.md) and the GANmut evaluator it trains:
method.py (validation, the method, SWA's post-step), labels.py (noise, Eqs. 1-3 and 5, VA-only
data), objective.py (Eqs. 4-9, the state), evaluate.py (the SWA model, metrics, figures)."""
from affectjax.methods.dual_domain.evaluate import (  # noqa: F401
    eval_variables, metrics_of, predict_fn, predictions)
from affectjax.methods.dual_domain.labels import (  # noqa: F401
    affectnet_gmm, clean_label_index, prepare, read, read_fields)
from affectjax.methods.dual_domain.method import NEEDS, CHOICES, build_model, make_method, validate  # noqa: F401
from affectjax.methods.dual_domain.objective import (  # noqa: F401
    PLAYER, Context, TrainState, eq9, net_variables, targets_of, variables)
