"""--config=configs/factor_vae.py[:ARGS]: the config is affectjax/configs/factor_vae.py (importable as
affectjax.configs.factor_vae); this file lets the command line name it by this path."""
from affectjax.configs.factor_vae import *  # noqa: F401,F403
from affectjax.configs.factor_vae import get_config  # noqa: F401
