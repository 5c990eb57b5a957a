"""Dual-domain affect fusion (../shared/papers/dual_domain_fusion.md) and the GANmut evaluator.

--config=configs/dual_domain.py[:ARGS], ARGS a comma-separated list of:
  euclid (default) | gmm | onehot   the labels: Euclid or GMM fusion (Eqs. 2-4, alpha 0.5) or
                                    the one-hot baseline
  noise10 | noise20 | noise30       that share of the training labels flipped to another class (Sec. 5.1)
  original   the public code's behaviour (REFERENCE.md): plain-distance Euclid labels, noise drawn
             with replacement, no SWA, no step decay, weight decay 1e-5, CCC averaged over batches
  small      32x32 faces, a narrow ResNet-18, 600 steps: a CPU run of a few minutes
  tiny       a seconds-long run for tests and smoke checks
  evaluator  the classifier GANmut's Sec. 5 metrics use (methods/ganmut/classifier.py): VGG
             backbone, one-hot cross-entropy only, horizontal flips, Adam 1e-3, no SWA
  bf16       bfloat16 compute (parameters stay float32)
Default: the paper's ResNet-18 at 224x224, batch 256, Adam 2.5e-4 halved every 30 epochs, SWA
over the last 10 of 50 epochs (950 steps = 50 epochs of the 4,800 synthetic training faces; for
AffectNet's 287,651 training images use --config.train.num_steps=56200): a GPU job.
Real data: --config.data.name=affectnet --config.data.manual_dir=/path/to/AffectNet.
Aff-Wild (VA only): --config.data.name=aff_wild takes its class labels from AffectNet's GMM
(Sec. 4.1): the published statistics, or --config.labels.affectnet_stats=/path/to/AffectNet.
"""
import ml_collections

from affectjax.config import base_config

LABELS = ("euclid", "gmm", "onehot")
NOISE = {"noise10": 0.1, "noise20": 0.2, "noise30": 0.3}
FLAGS = ("original", "small", "tiny", "evaluator", "bf16")


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  args = [a for a in arg.split(",") if a]
  kinds = [a for a in args if a in LABELS]
  noises = [a for a in args if a in NOISE]
  unknown = [a for a in args if a not in LABELS + tuple(NOISE) + FLAGS]
  if unknown or len(kinds) > 1 or len(noises) > 1:
    raise ValueError(f"configs/dual_domain.py: bad argument {arg!r}; use one of {'|'.join(LABELS)}, "
                     f"one of {'|'.join(NOISE)}, plus optional {', '.join(FLAGS)}")
  flags = set(args)

  c = base_config()
  c.method = "dual_domain"
  c.variant = arg or "euclid"
  c.data.image_size = 224  # Sec. 4.2
  c.data.num_classes = 8  # AffectNet's eight classes (Table 1)

  c.model = ml_collections.ConfigDict()
  c.model.backbone = "resnet18"  # resnet18 (Sec. 4.2) | vgg (the GANmut evaluator family)
  c.model.widths = (64, 128, 256, 512)  # ResNet-18's stages (vgg: one entry per block)
  c.model.stem = "auto"  # auto: 7x7/2 + pool at >= 112 px, else one 3x3/1 conv | imagenet | small
  c.model.va_head = True  # Linear(512, 2) + tanh
  c.model.feature_dim = 256  # vgg: the penultimate dense layer
  c.model.dtype = "float32"  # float32 | bfloat16 compute
  c.model.init_npz = ""  # torchvision ResNet-18 ImageNet weights as .npz (nn/resnet.py)

  c.labels = ml_collections.ConfigDict()
  c.labels.kind = "onehot" if "onehot" in flags else ("gmm" if "gmm" in flags else "euclid")
  c.labels.alpha = 0.5  # Eq. 4 (Sec. 4.2: 0.5; the public code's beta defaults to 1)
  c.labels.within_std = True  # Sec. 4.2: mu_k, Sigma_k "computed within one standard deviation"
  c.labels.euclid_distance = "squared"  # Eq. 3 | plain (the public code)
  c.labels.stats_from = "noisy"  # class statistics of the labels trained on | clean (before noise)
  # VA-only data (Aff-Wild): Sec. 4.1 borrows AffectNet's pi_k, mu_k, Sigma_k for the argmax labels
  # (train and test) and p(y | x)_GMM | refit: Eq. 1 refit on the derived labels (affectjax before)
  c.labels.va_only_stats = "affectnet"
  # where AffectNet's statistics come from: '' the published ones (affect/affectnet_stats.py;
  # REFERENCE.md) | the user's AffectNet manual_dir (its builder's) | a .npz (priors, means, covs)
  c.labels.affectnet_stats = ""

  c.loss = ml_collections.ConfigDict()
  # '' -> Eq. 9 (methods/dual_domain/objective.py eq9) | 'package.module:function', an objective
  # of affectjax.objective's contract (params {'net': ...}, aux = BatchNorm statistics)
  c.loss.fn = ""
  c.loss.ce_weight = 1.0  # Eq. 9
  c.loss.cos_weight = 1.0
  c.loss.l2_weight = 1.0
  c.loss.weighted_l2 = True  # Eq. 8 (False: plain L2, Figure 5's comparison)
  c.loss.class_weighting = True  # Eq. 5 (False: W_k = 1)

  # ASSUMPTION: the paper names the augmentations but not their strengths; torchvision-style values.
  c.aug = ml_collections.ConfigDict()
  c.aug.flip_prob = 0.5
  c.aug.brightness = 0.2
  c.aug.contrast = 0.2
  c.aug.saturation = 0.2
  c.aug.degrees = 10.0
  c.aug.translate = 0.1
  c.aug.scale = 0.1

  c.swa = ml_collections.ConfigDict()
  c.swa.enabled = True  # Sec. 4.2
  c.swa.start = 0.8  # ASSUMPTION: average over the last 10 of 50 epochs (a fraction of num_steps)
  c.swa.every = 0  # steps between averaged snapshots; 0: once per epoch (torch's usual use)

  c.optim.name = "adam"
  c.optim.lr = 2.5e-4
  c.optim.schedule = "step_decay"
  c.optim.decay_every_epochs = 30.0  # x decay_factor every 30 epochs (converted to steps from the
  c.optim.decay_every = 1000  # training split's size); decay_every (steps) when the above is 0
  c.optim.decay_factor = 0.5

  c.train.batch_size = 256
  c.train.num_steps = 950
  c.train.log_every = 50
  c.train.checkpoint_every = 500
  c.train.label_noise = NOISE[noises[0]] if noises else 0.0  # Sec. 5.1, injected from a key
  c.train.noise_mode = "paper"  # paper: exactly that share, never to the same class | original

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 256
  c.eval.bn_batches = 20  # training batches that re-estimate BatchNorm for the SWA weights
  c.eval.max_test = 0  # 0: the whole test split
  c.eval.ccc_batch = 0  # 0: CCC over the whole set (the paper) | B: averaged over batches (code)
  c.eval.figures = True
  c.eval.gradcam_images = 8

  if "original" in flags:
    c.labels.euclid_distance = "plain"
    c.train.noise_mode = "original"
    c.swa.enabled = False
    c.optim.schedule = "constant"
    c.optim.weight_decay = 1e-5
    c.eval.ccc_batch = 256
  if "small" in flags or "tiny" in flags:
    c.data.image_size = 32
    c.model.widths = (16, 32, 64, 128)
    c.train.batch_size = 64
    c.train.num_steps = 600  # 8 epochs of 4,800 faces
    c.train.log_every = 50
    c.train.checkpoint_every = 300
    c.optim.lr = 1e-3  # ASSUMPTION: a short run needs a larger step than the paper's 50 epochs
    c.optim.decay_every_epochs = 4.8  # the paper's 30/50 of the run
    c.swa.every = 10  # a few epochs only: a snapshot every 10 steps of the last fifth
    c.eval.bn_batches = 10
  if "tiny" in flags:
    c.data.image_size = 16
    c.data.num_identities = 6
    c.data.images_per_identity = 20
    c.model.widths = (8, 8, 16, 16)
    c.train.batch_size = 16
    c.train.num_steps = 6
    c.train.log_every = 3
    c.train.checkpoint_every = 6
    c.train.progress = False
    c.optim.decay_every_epochs = 1.0
    c.swa.start = 0.5
    c.swa.every = 1
    c.eval.batch_size = 32
    c.eval.bn_batches = 2
    c.eval.gradcam_images = 4
  if "evaluator" in flags:  # GANmut's evaluator (ganmut.md Sec. 5; methods/ganmut/classifier.py)
    c.variant = arg
    c.data.image_size = 128 if not ("small" in flags or "tiny" in flags) else c.data.image_size
    c.data.num_classes = 7
    c.model.backbone = "vgg"
    c.model.widths = (32, 64, 128, 256) if not ("small" in flags or "tiny" in flags) else (8, 16)
    c.model.va_head = False
    c.labels.kind = "onehot"
    c.loss.cos_weight = 0.0
    c.loss.l2_weight = 0.0
    c.loss.class_weighting = False
    for name in ("brightness", "contrast", "saturation", "degrees", "translate", "scale"):
      c.aug[name] = 0.0  # horizontal flips only: expressions are near symmetric
    c.swa.enabled = False
    c.optim.lr = 1e-3
    c.optim.schedule = "constant"
    c.train.batch_size = 64
    c.train.num_steps = 3000
    c.train.checkpoint_every = 1000
    c.train.log_every = 100
    c.train.report = False
    c.eval.figures = False
  if "bf16" in flags:
    c.model.dtype = "bfloat16"
  return c
