"""--config=configs/dual_domain.py[:ARGS]: the config is affectjax/configs/dual_domain.py (importable as
affectjax.configs.dual_domain); this file lets the command line name it by this path."""
from affectjax.configs.dual_domain import *  # noqa: F401,F403
from affectjax.configs.dual_domain import get_config  # noqa: F401
