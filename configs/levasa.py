"""LeVAsa and the Vanilla VAE (../shared/papers/levasa.md).

--config=configs/levasa.py[:ARGS], ARGS a comma-separated list of:
  continuous (default) | discrete | vanilla   the model (Sec. 2.2, Sec. 3's five models)
  afew        train on the AFEW-like set (discrete VA only) instead of the IMFDB-like set
              (labels only, VA by annotation transfer from the AffectNet-like reference set)
  original    the public code's behaviour (REFERENCE.md): plain KL, broadcast-MSE VA loss
              without heads (continuous), linear heads + CE (discrete), its conv shapes, and
              a Vanilla VAE trained on reconstruction only
  tiny        a seconds-long run for tests and smoke checks
"""
import ml_collections

from affectjax.config import base_config


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  args = set(a for a in arg.split(",") if a)
  models = args & {"continuous", "discrete", "vanilla"}
  unknown = args - {"continuous", "discrete", "vanilla", "afew", "original", "tiny"}
  if unknown or len(models) > 1:
    raise ValueError(f"configs/levasa.py: bad argument {arg!r}; use one of continuous|discrete|vanilla "
                     "plus optional afew, original, tiny")
  variant = models.pop() if models else "continuous"
  if "afew" in args and variant == "continuous":
    raise ValueError("configs/levasa.py: AFEW has discrete VA only; use discrete or vanilla with afew")

  c = base_config()
  c.method = "levasa"
  c.variant = variant

  # LeVAsa Algorithm 1 (methods/levasa.py prepare_data): VA for a labels-only dataset sampled
  # from a reference set's ellipses.
  c.data.annotation_transfer = ml_collections.ConfigDict()
  c.data.annotation_transfer.enabled = False
  # auto: the AffectNet-like synthetic set on synthetic data, AffectNet's published stats otherwise
  c.data.annotation_transfer.reference = "auto"  # | synthetic_faces | affectnet_published
  c.data.annotation_transfer.levels = 0  # >0: discretise round(levels * va) / levels (Alg. 1 line 5)

  # Data: IMFDB-like (labels only) + annotation transfer, or AFEW-like (discrete VA only).
  if "afew" in args:
    c.data.view = "afew_like"
  else:
    c.data.view = "imfdb_like"
    c.data.annotation_transfer.enabled = True  # Vanilla too: its alignment is measured against it
    c.data.annotation_transfer.levels = 10 if variant == "discrete" else 0

  c.model = ml_collections.ConfigDict()
  c.model.arch = "paper"  # paper | original (the public code's 3x3 VALID convs + BatchNorm)
  c.model.chunk_sizes = (32, 32, 32)  # z_v, z_a, z_z
  c.model.head = "mlp"  # mlp (the paper's non-linear projection heads) | linear (the code's)
  c.model.head_hidden = 64

  c.loss = ml_collections.ConfigDict()
  c.loss.fn = ""  # '' -> Eq. 3 (methods/levasa.py loss_fn) | 'package.module:function', same signature
  c.loss.kl = "squared"  # Eq. 1 | plain (the code: KL not squared)
  c.loss.kl_weight = 0.05  # lambda_KL (Eq. 3); L_R is a sum of squared errors over H*W*C pixels
  c.loss.va_weight = 0.0 if variant == "vanilla" else 100.0  # lambda_C (Eq. 3)
  c.loss.va_loss = {"continuous": "mse", "discrete": "bce", "vanilla": "mse"}[variant]  # Eq. 2
  c.loss.va_levels = 10  # discrete VA: round(10 v) in -10..10, K = 21 classes

  c.optim.lr = 5e-4
  c.train.batch_size = 64
  c.train.num_steps = 1500
  c.train.log_every = 100
  c.train.checkpoint_every = 500

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 256
  c.eval.paper_metric = True  # also report Table 1 with the original code's metric definitions
  c.eval.probe_seed = 0
  c.eval.max_train_examples = 4000  # training rows encoded for the probes (0: all)

  if "original" in args:
    c.model.arch = "original"
    c.loss.kl = "plain"
    if variant == "continuous":
      c.loss.va_loss = "broadcast_mse"
    elif variant == "discrete":
      c.loss.va_loss, c.model.head = "ce", "linear"
    else:
      c.loss.kl_weight = 0.0  # the code's Vanilla VAE logs the KL but does not train on it
    c.optim.lr = 1e-4
  if "tiny" in args:
    c.data.num_identities = 6
    c.data.images_per_identity = 20
    c.data.image_size = 32
    c.model.chunk_sizes = (4, 4, 8)
    c.train.batch_size = 16
    c.train.num_steps = 20
    c.train.log_every = 5
    c.train.checkpoint_every = 10
    c.train.progress = False
    c.eval.batch_size = 32
  return c
