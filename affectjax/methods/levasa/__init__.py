"""LeVAsa and the Vanilla VAE (levasa.md): method.py (validation, the method, Algorithm 1's
annotation transfer), objective.py (Eqs. 1-3), evaluate.py (the tables, references and figures)."""
from affectjax.methods.levasa.method import (  # noqa: F401
    NEEDS,
    CHOICES, VARIANTS, build_model, make_method, num_va_levels, prepare_data, transfer_va, validate)
from affectjax.methods.levasa.objective import PLAYER, Context, eq3, va_regularisation, variables  # noqa: F401
