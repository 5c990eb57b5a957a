"""GANmut, GGANmut and the StarGAN baseline (ganmut.md): method.py (validation, networks, the
conditional space, the method), objective.py (L_D and L_G, Eqs. 1-10), evaluate.py (Sec. 5's
FED, smoothness, ERE, accuracy), figures.py, classifier.py (the evaluator classifier, a
prerequisite run)."""
from affectjax.methods.ganmut.method import (  # noqa: F401
    NEEDS,
    CHOICES, PHASES, SPACES, code_dim, g_lr_scales, init_space, make_method, networks, phases,
    players, space_of, validate)
from affectjax.methods.ganmut.objective import D, G, Context, d_objective, g_objective, prep  # noqa: F401
