"""--config=configs/rbvae.py[:ARGS]: the config is affectjax/configs/rbvae.py (importable as
affectjax.configs.rbvae); this file lets the command line name it by this path."""
from affectjax.configs.rbvae import *  # noqa: F401,F403
from affectjax.configs.rbvae import get_config  # noqa: F401
