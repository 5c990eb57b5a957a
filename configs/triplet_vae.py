"""--config=configs/triplet_vae.py[:ARGS]: the config is affectjax/configs/triplet_vae.py (importable as
affectjax.configs.triplet_vae); this file lets the command line name it by this path."""
from affectjax.configs.triplet_vae import *  # noqa: F401,F403
from affectjax.configs.triplet_vae import get_config  # noqa: F401
