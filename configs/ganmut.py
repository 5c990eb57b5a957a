"""--config=configs/ganmut.py[:ARGS]: the config is affectjax/configs/ganmut.py (importable as
affectjax.configs.ganmut); this file lets the command line name it by this path."""
from affectjax.configs.ganmut import *  # noqa: F401,F403
from affectjax.configs.ganmut import get_config  # noqa: F401
