"""Rb-VAE, sRb-VAE and the unsupervised baselines of Table 1 (../shared/papers/rbvae.md).

--config=configs/rbvae.py[:ARGS], ARGS a comma-separated list of:
  srbvae (default) | rbvae | vae | beta_vae | svae | dip_vae_i | dip_vae_ii   Table 1's rows
  faces   the synthetic faces: neutral images (clean label 0) are the reference set, expressive
          ones the unlabelled set (Sec. 5.1's AffectNet setting); default: style digits (App. C.1)
  small   a CPU run (32x32, narrower networks) that finishes within 15 minutes on 2 cores; on
          style digits also filled strokes (no edge map) and Adam at 3e-4 (see below)
  tiny    a seconds-long run for tests and smoke checks

Default sizes are the paper's (Sec. 5.2, App. D): 64x64 images, widths (256, 256, 128, 64, 32),
32 latents per encoder, Laplace lambda = 0.01, Adam(1e-4, 0.5, 0.99, 1e-8), batch 36 (per stream),
30 epochs (digits) / 20 epochs (faces) of the unlabelled set (config.train.epochs). The epochs
become steps once the data is loaded (methods/rbvae/method.py resolve_num_steps: ceil(epochs * unlabelled
/ batch), set into config.train.num_steps), so the schedule follows the data actually loaded: the
paper's MNIST (60k unlabelled images, when prepared in config.data.tfds_dir) gives
30 * 60000 / 36 = 50000 steps; scikit-learn's digits give 1258 unlabelled images, hence 1049
steps, which train.num_steps holds here (the default data's value). To train a fixed number of
steps, set config.train.epochs=0 and config.train.num_steps.
Probe splits (Sec. 5.3): on MNIST its test set's two halves, each digit styled once (5k images
each, the paper's); on scikit-learn's digits 4 styles of each held-out digit (data.probe_copies=0:
this automatic choice, affectjax.data.digits.AUTO_PROBE_COPIES).
"""
import math

import ml_collections

from affectjax.config import base_config

VARIANTS = ("vae", "beta_vae", "svae", "dip_vae_i", "dip_vae_ii", "rbvae", "srbvae")
FACES_NEUTRAL_FRACTION = 0.15  # synthetic faces: expected share of neutral images (generate's default)


def epochs_to_steps(epochs: float, num_unlabelled: int, batch_size: int) -> int:
  """Steps of `epochs` passes over the unlabelled set (the reference set is sampled alongside)."""
  return max(1, math.ceil(epochs * num_unlabelled / batch_size))


def faces_unlabelled(data) -> int:
  """Expected number of expressive training images of the synthetic faces."""
  train_ids = data.num_identities - max(1, round(data.test_fraction * data.num_identities))
  return int(train_ids * data.images_per_identity * (1 - FACES_NEUTRAL_FRACTION))


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  from affectjax.data import digits

  args = set(a for a in arg.split(",") if a)
  models = args & set(VARIANTS)
  unknown = args - set(VARIANTS) - {"faces", "small", "tiny"}
  if unknown or len(models) > 1 or {"small", "tiny"} <= args:
    raise ValueError(f"configs/rbvae.py: bad argument {arg!r}; use one of {'|'.join(VARIANTS)} "
                     "plus optional faces, and small or tiny")
  c = base_config()
  c.method = "rbvae"
  c.variant = models.pop() if models else "srbvae"
  faces = "faces" in args

  c.data.name = "synthetic_faces" if faces else "style_digits"
  c.data.image_size = 64  # App. C.1 (digits); the synthetic faces' default (the paper: 96)
  c.data.reference = "auto"  # auto | is_reference | neutral (methods/rbvae/method.py CHOICES)
  # style digits (affectjax.data.digits.digit_splits)
  c.data.num_digits = 0  # 0: all of scikit-learn's 1797 digits (or MNIST when in data.tfds_dir)
  c.data.probe_fraction = 0.3  # digits held out for the two probe splits (Sec. 5.3)
  c.data.probe_copies = 0  # styles per probe digit; 0: 1 on MNIST (Sec. 5.3: 5k each), 4 on sklearn
  c.data.edges = True  # App. C.1: keep only the digit's boundaries

  c.model = ml_collections.ConfigDict()
  c.model.z_dim = 32  # Sec. 5.2: 32 latents per encoder
  c.model.e_dim = 32
  c.model.channels = (256, 256, 128, 64, 32)  # widths from 4x4 to the image's resolution
  c.model.base_size = 4
  c.model.encoder_hidden = 256
  c.model.disc_hidden = 512
  c.model.disc_latent_hidden = 512
  c.model.disc_dropout = 0.25  # App. D
  c.model.dtype = "float32"  # float32 | bfloat16 (compute dtype; parameters stay float32)

  c.loss = ml_collections.ConfigDict()
  c.loss.fn = ""  # '' -> the variant's objectives | 'package.module:function' (rbvae_loss's signature)
  c.loss.laplace_scale = 0.01  # Sec. 5.2: lambda
  c.loss.beta = 4.0  # beta-VAE's KL weight (Table 1's footnote: swept in [1, 50])
  c.loss.dip_lambda = 10.0  # DIP-VAE lambda_od (swept in [1, 50])
  c.loss.dip_lambda_d = 0.0  # 0: Kumar et al.'s default (10 lambda_od for I, lambda_od for II)
  c.loss.recon_weight = 1.0  # Sec. 4.3: weight of Eq. 10's explicit reconstruction terms (sVAE too)
  c.loss.sample_x = True  # generated images x_hat ~ Laplace(G(z, e), lambda) (Alg. 1 l.12-13)

  c.optim.lr = 1e-4  # Sec. 5.2: Adam(1e-4, 0.5, 0.99, 1e-8) for every player
  c.optim.b1 = 0.5
  c.optim.b2 = 0.99
  c.optim.eps = 1e-8
  c.train.batch_size = 36  # Sec. 5.2 (per stream: 36 unlabelled + 36 reference images a step)
  c.train.epochs = 20.0 if faces else 30.0  # Sec. 5.2: 20 epochs (AffectNet), 30 (MNIST); 0: num_steps
  c.train.log_every = 50
  c.train.checkpoint_every = 500

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 128
  c.eval.num_figure_rows = 6  # rows of the Fig. 3 / Fig. 4 grids (0: no figures)
  c.eval.max_probe_examples = 0  # 0: every example of the probe splits

  if "tiny" in args:
    c.data.image_size = 8
    c.data.num_digits = 60
    c.data.probe_copies = 1
    c.data.num_identities = 12  # 4 test people: 2 per probe half, as identity leakage needs
    c.data.images_per_identity = 12
    c.data.test_fraction = 0.34
    c.model.z_dim = c.model.e_dim = 4
    c.model.channels = (8, 8)
    c.model.encoder_hidden = 16
    c.model.disc_hidden = c.model.disc_latent_hidden = 16
    c.train.batch_size = 8
    c.train.epochs = 0  # num_steps as given
    c.train.num_steps = 4
    c.train.log_every = 2
    c.train.checkpoint_every = 4
    c.train.progress = False
    c.eval.batch_size = 32
    c.eval.num_figure_rows = 3
    return c
  if "small" in args:  # CPU: 32x32, narrower networks, the paper's latents, batch and optimiser
    c.data.image_size = 32
    c.model.channels = (32, 32, 16, 16)
    c.model.encoder_hidden = 128
    c.model.disc_hidden = c.model.disc_latent_hidden = 128
    c.data.num_identities = 40
    c.data.images_per_identity = 50
    if not faces:
      # Two departures for 1,049 CPU steps (the paper: 50,000 on MNIST), chosen without the
      # scored split: sRb-VAE, seed 100 (not a verdict seed), edges x lr in {True, False} x
      # {1e-4, 3e-4}; rule fixed before looking: the lowest MAE of e on the fit split's
      # selection rows (evaluate's select/main/mae_avg) among settings whose reference-image
      # reconstruction beats the best constant image (training images). Measured:
      #   edges True:  lr 1e-4 select 0.0806, reference MAE 0.1139 vs constant 0.1123 (not learnt)
      #                lr 3e-4 select 0.0750, reference MAE 0.1128 vs constant 0.1123 (not learnt)
      #   edges False: lr 1e-4 select 0.0650, reference MAE 0.0470 vs constant 0.1482
      #                lr 3e-4 select 0.0574, reference MAE 0.0421 vs constant 0.1482  <- chosen
      # (the same setting an earlier choice on seed 0's scored split had made). Every row of
      # Table 1 uses it; it was chosen on sRb-VAE alone.
      c.data.edges = False
      c.optim.lr = 3e-4
  # The default data's step count (made exact from the data loaded, methods/rbvae/method.py)
  num_unl = faces_unlabelled(c.data) if faces else digits.num_unlabelled(1797, c.data.probe_fraction)
  c.train.num_steps = epochs_to_steps(c.train.epochs, num_unl, c.train.batch_size)
  return c
