"""--config=configs/levasa.py[:ARGS]: the config is affectjax/configs/levasa.py (importable as
affectjax.configs.levasa); this file lets the command line name it by this path."""
from affectjax.configs.levasa import *  # noqa: F401,F403
from affectjax.configs.levasa import get_config  # noqa: F401
