"""The triplet VAE: VAE, M1 and M2 (triplet_vae.md): method.py (validation, data preparation of
Sec. IV and V-A, the method with the validation-ELBO selection of Sec. V-C), objective.py (Eqs.
2-13), evaluate.py (Tables II-III, Figures 4-5, traversals)."""
from affectjax.methods.triplet_vae.method import (  # noqa: F401
    NEEDS,
    CHOICES, LAYOUTS, LOWER_EYELID_83, PHASES, RIGID_83, VALENCE_MARGIN, VARIANTS, Part, Prepared,
    PreparedSplits, TrainState, TripletSource, build_model, make_method, prepare, selection_key,
    uses_neutral, validate, validation_inputs)
from affectjax.methods.triplet_vae.objective import (  # noqa: F401
    PLAYER, Context, anneal, data_terms, eq11, triplet_terms, uses_triplets, validation_elbo)
