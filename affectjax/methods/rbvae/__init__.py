"""Rb-VAE, sRb-VAE and the baselines of Table 1 (rbvae.md): method.py (validation, networks and
players, the reference set and the probe splits, the method), objective.py (Eq. 3, Eqs. 8-10, the
VAE family reusable with any encoder and decoder), evaluate.py (Table 1's probes, Figs. 3-4, the
report)."""
from affectjax.methods.rbvae.evaluate import (  # noqa: F401
    DIGIT_COLUMNS, FACTOR_RANGES, evaluate, figures, normalized_factors,
    reconstruction_check, report, table_row_markdown)
from affectjax.methods.rbvae.method import (  # noqa: F401
    NEEDS,
    ADVERSARIAL, CHOICES, PHASE, REFERENCE_BASED, VARIANTS, evaluation, make_method, networks,
    neutral_mask, player_names, players, prepare_data, reference_mask, resolve_num_steps, validate)
from affectjax.methods.rbvae.objective import (  # noqa: F401
    DEFAULTS, MODEL_PLAYERS, Context, encode, eq3, generate, negative_elbo, srbvae, svae, vae,
    vae_settings)
