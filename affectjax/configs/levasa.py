"""LeVAsa and the Vanilla VAE (../shared/papers/levasa.md).

--config=configs/levasa.py[:ARGS], ARGS a comma-separated list of:
  continuous (default) | discrete | vanilla   the model (Sec. 2.2, Sec. 3's five models)
  afew        train on the AFEW-like set (discrete VA only) instead of the IMFDB-like set
              (labels only, VA by annotation transfer from the AffectNet-like reference set)
  original    the public code's behaviour (REFERENCE.md): plain KL, broadcast-MSE VA loss
              without heads (continuous), linear heads + CE (discrete), its conv shapes, and
              a Vanilla VAE trained on reconstruction only
  tiny        a seconds-long run for tests and smoke checks
  paper_length  the original's training length for a GPU: about 26,000 steps (100 epochs of
              ~34k images at batch 128, Adam 1e-4); the default (1,500 steps) is a CPU smoke run
"""
import ml_collections

from affectjax.config import base_config


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  args = set(a for a in arg.split(",") if a)
  models = args & {"continuous", "discrete", "vanilla"}
  unknown = args - {"continuous", "discrete", "vanilla", "afew", "original", "tiny", "paper_length"}
  if unknown or len(models) > 1:
    raise ValueError(f"configs/levasa.py: bad argument {arg!r}; use one of continuous|discrete|vanilla "
                     "plus optional afew, original, tiny, paper_length")
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
  # Loss scale. The paper gives no weights; the public code (REFERENCE.md, Model_Training_*.ipynb)
  # trains  L_R' + 0.5 KL' + 0.3 L_C  with  L_R' = mean over the P = H*W*C pixel values of
  # (x01 - x01_hat)^2 on [0, 1] images and  KL' = (per-example KL summed over the latent dims) / P.
  # Here L_R = sum over P of (x - x_hat)^2 on [-1, 1] = 4 P L_R'. Multiplying the code's objective
  # by 4 P keeps its balance on this scale:
  #   lambda_KL = 0.5 * 4 P / P = 2.0            (independent of the image size)
  #   lambda_C  = 0.3 * 4 P     = 1.2 P          (14,745.6 at 64x64x3; 3,686.4 at 32x32x3)
  # The conversion is exact for loss.kl='plain' (the code's KL); the default squares each chunk's
  # KL (Eq. 1), a term the code never had, with the same lambda_KL. lambda_C follows
  # data.image_size when the config is built (set loss.va_weight yourself when overriding the
  # image size on the command line). L_C here is per example (MSE of a head, or BCE summed over
  # the K levels), as the code's per-batch mean of its VA loss.
  c.loss.kl_weight = KL_WEIGHT  # lambda_KL (Eq. 3)
  c.loss.va_weight = 0.0 if variant == "vanilla" else va_weight(c.data.image_size)  # lambda_C (Eq. 3)
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
  c.eval.reference_rows = True  # chance, pixel-PCA baseline and ceiling rows (CNN, true factors)
  # The supervised CNN ceiling (evaluate/cnn_ceiling.py), one run per report on the pooled pixels:
  # Adam steps at most, validation every N steps, evaluations without improvement before stopping.
  c.eval.ceiling_max_steps = 2000
  c.eval.ceiling_eval_every = 100
  c.eval.ceiling_patience = 4
  c.eval.ceiling_batch_size = 64
  c.eval.energy_examples = 2000  # test faces re-rendered neutral for the expression energy (0: all)

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
    c.eval.ceiling_max_steps = 20
    c.eval.ceiling_eval_every = 10
    c.eval.ceiling_patience = 1
    c.eval.ceiling_batch_size = 16
  if "paper_length" in args:  # the original's length and optimiser (REFERENCE.md): for a GPU
    c.train.batch_size = 128
    c.train.num_steps = 26_000
    c.optim.lr = 1e-4
    c.train.log_every = 500
    c.train.checkpoint_every = 2000
  if variant != "vanilla":
    c.loss.va_weight = va_weight(c.data.image_size)  # lambda_C at the final image size
  return c


KL_WEIGHT = 2.0  # the code's 0.5 on KL / P, times 4 P (see get_config)


def va_weight(image_size: int, channels: int = 3) -> float:
  """lambda_C on this implementation's scale: the code's 0.3 times 4 P, P = H*W*C (get_config)."""
  return 0.3 * 4 * image_size * image_size * channels
