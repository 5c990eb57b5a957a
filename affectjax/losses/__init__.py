"""Pure losses shared across methods, at stable import paths (affectjax.losses.<name>).

Split by family into submodules; everything public is re-exported here.
"""
from affectjax.losses.vae import *  # noqa: F401,F403
from affectjax.losses.gan import *  # noqa: F401,F403
from affectjax.losses.likelihood import *  # noqa: F401,F403
from affectjax.losses.triplet import *  # noqa: F401,F403
from affectjax.losses.classification import *  # noqa: F401,F403
from affectjax.losses.density_ratio import *  # noqa: F401,F403
from affectjax.losses.disentangle import *  # noqa: F401,F403
