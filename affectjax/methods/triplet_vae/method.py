"""The triplet VAE: VAE, M1 and M2 on 3D landmarks (../shared/papers/triplet_vae.md).

VAE: q(z | x), p(x | z) with symmetric fully connected ELU networks. M1 (Sec. III-A): both
networks also take the person's neutral face y, p(x | y, z) = N(f(y, z), sigma^2 I) (Eqs. 1-5).
M2 (Sec. III-B): M1 with the prior p(Z) = p_T(Z | S) p_N(Z) (Eqs. 6-7), p_T the weighted softplus
triplet prior with topological variance gamma, trained on data batches of B faces and triplet
batches of V triplets (Eq. 11, objective.py). beta anneals the KL linearly from 0 to 1 (Eq. 13);
variant m2 anneals the KL only, m2_prior the whole prior. The model with the highest validation
ELBO, checked every config.eval.select_every steps, is kept in the state (best_params) and is the
one represented and evaluated (Sec. V-C): the post-step after the library step.

Data preparation (Sec. IV, V-A) happens in make_method on the host: landmarks rotated to the
neutral (frontal) pose, centred between the eyes, inter-ocular distance 1, minus the training mean;
the training split's people divided into train/validation (test: the loaded test split); artificial
triplets from labels and intensities (posed data) or simulated crowd triplets from AU intensities.
The result travels typed as Method.data (PreparedSplits.prepared), not in its metadata.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np

from affectjax import objective as objective_lib
from affectjax import optim
from affectjax.affect import triplets as trip_lib
from affectjax.config import check_choices, expect
from affectjax.data import landmarks as lm
from affectjax.data import source as source_lib
from affectjax.data.source import ArraySource
from affectjax.data import sources
from affectjax.data.sources import DatasetInfo, Splits
from affectjax.methods.base import Method, Stream
from affectjax.methods.triplet_vae import evaluate as tv_eval
from affectjax.methods.triplet_vae.objective import (
    PLAYER, Context, eq11, flat, uses_triplets, validation_elbo)
from affectjax.nn.landmark_mlp import LandmarkVAE

VARIANTS = ("vae", "m1", "m2", "m2_prior")
NEEDS = ("landmarks",)  # 3D landmarks and neutral faces; validate checks the triplets' needs
CHOICES = {
    "variant": VARIANTS,
    "triplets.kind": ("artificial", "crowd"),
    "loss.scaling": ("per_point", "literal"),
    "eval.task": ("emotion", "valence_sign"),
}
PHASES = ("main",)  # one phase: Eq. 11 updates the player 'vae' (config.loss.fn replaces it)

# BU-3DFE / BP4D 83-point layout (0-based): each eye contour is 8 points (0-7 and 8-15) with the
# corners at 0, 4 and 8, 12 and the lower lid at 5-7 and 13-15; the nose is 36-47. The datasets'
# documentation gives this order; check it against a real copy (config.data.eye_points overrides).
LOWER_EYELID_83 = ((5, 6, 7), (13, 14, 15))
RIGID_83 = (0, 4, 8, 12) + tuple(range(36, 48))
LAYOUTS = {68: (lm.LOWER_EYELID_68, lm.RIGID_68), 83: (LOWER_EYELID_83, RIGID_83)}
VALENCE_MARGIN = 0.2  # eval.task='valence_sign': faces with |valence| < this are unlabelled


@flax.struct.dataclass
class TrainState:
  """affectjax.objective.State's four fields (params and opt_state keyed by the player 'vae';
  aux None) and the selection's running best (Sec. V-C)."""
  step: jax.Array
  params: Any
  opt_state: Any
  aux: Any
  best_params: Any  # {'vae': ...}: the model with the highest validation ELBO so far
  best_elbo: jax.Array
  best_step: jax.Array


def uses_neutral(config) -> bool:
  return config.variant != "vae"


def validate(config):
  """The triplet VAE's own fields; one ConfigError line each (before any data is read)."""
  check_choices(config, CHOICES)
  m, l, t, e = config.model, config.loss, config.triplets, config.eval
  expect(m.latent_dim > 0, f"config.model.latent_dim={m.latent_dim} must be > 0")
  for name in ("encoder_hidden", "decoder_hidden"):
    expect(all(int(w) > 0 for w in m[name]), f"config.model.{name}={tuple(m[name])}: widths must be > 0")
  expect(0.0 <= m.dropout_rate < 1.0, f"config.model.dropout_rate={m.dropout_rate} must be in [0, 1)")
  expect(l.variance > 0, f"config.loss.variance={l.variance} must be > 0")
  expect(l.gamma > 0, f"config.loss.gamma={l.gamma} must be > 0")
  expect(l.num_samples >= 1, f"config.loss.num_samples={l.num_samples} (L) must be >= 1")
  expect(l.triplet_samples >= 1, f"config.loss.triplet_samples={l.triplet_samples} (M) must be >= 1")
  expect(l.anneal_steps >= 0, f"config.loss.anneal_steps={l.anneal_steps} must be >= 0")
  expect(t.batch_size >= 1, f"config.triplets.batch_size={t.batch_size} (V) must be >= 1")
  for name in ("num_train", "num_val", "num_test", "per_image"):
    expect(t[name] >= 1, f"config.triplets.{name}={t[name]} must be >= 1")
  expect(t.votes >= 1 and t.votes % 2 == 1, f"config.triplets.votes={t.votes} must be odd (no ties)")
  expect(t.noise >= 0, f"config.triplets.noise={t.noise} must be >= 0")
  expect(0.0 < config.data.val_fraction < 1.0,
         f"config.data.val_fraction={config.data.val_fraction} must be in (0, 1)")
  expect(e.select_every >= 1, f"config.eval.select_every={e.select_every} must be >= 1")
  expect(e.max_val_examples >= 1, f"config.eval.max_val_examples={e.max_val_examples} must be >= 1")
  expect(e.batch_size >= 1, f"config.eval.batch_size={e.batch_size} must be >= 1")
  info = sources.dataset_info(config.data)  # capabilities, not names
  expect(info.landmarks,
         f"config.data.name={info.name!r}"
         + (f" view {config.data.view!r}" if info.rendered else "")
         + ": the triplet VAE needs 3D landmarks and neutral faces (synthetic_faces' 'full' view, bu3dfe, bp4d)")
  expect(not (t.kind == "artificial" and not (info.has_labels and "intensity" in info.factor_names)),
         f"config.triplets.kind='artificial' needs labels and intensities; {info.name} has neither: use 'crowd'")
  expect(not (t.kind == "crowd" and not info.au_factors),
         f"config.triplets.kind='crowd' needs action units; {info.name} has none: use 'artificial'")
  expect(not (e.task == "valence_sign" and not info.rendered),
         f"config.eval.task='valence_sign' needs the synthetic faces' true valence, not {info.name}")
  objective_lib.check_config(config, PHASES)


# ---------------------------------------------------------------- data preparation (Sec. IV, V-A)

@dataclasses.dataclass
class TripletSource:
  """The 'triplets' stream: triplet t's three faces (ref, +, -) and their neutral faces.

  gather -> {'landmarks': [b, 3, K, 3], 'neutral_landmarks': [b, 3, K, 3], 'weight': [b]}."""
  triplets: np.ndarray
  weights: np.ndarray
  landmarks: np.ndarray
  neutral: np.ndarray

  def __len__(self) -> int:
    return len(self.triplets)

  def gather(self, indices) -> dict:
    t = self.triplets[np.asarray(indices)]
    return {"landmarks": self.landmarks[t], "neutral_landmarks": self.neutral[t],
            "weight": self.weights[np.asarray(indices)]}


@dataclasses.dataclass
class Part:
  """One prepared split: preprocessed faces, annotations and its triplets (numpy)."""
  landmarks: np.ndarray  # [N, K, 3] float32, preprocessed, minus the training mean
  neutral: np.ndarray  # [N, K, 3] the same for each face's neutral face
  label: np.ndarray  # [N] int, -1 unknown (emotion or valence sign, eval.task)
  intensity: np.ndarray  # [N] float (expression degree; 0 unknown)
  factors: np.ndarray  # [N, F] regression targets (true AUs / intensity), NaN unknown
  identity: np.ndarray  # [N] int
  triplets: dict  # {'artificial' | 'crowd': (triplets [T, 3], weights [T])}

  def arrays(self) -> dict:
    return {"landmarks": self.landmarks, "neutral_landmarks": self.neutral}


def _read_all(split, keys) -> dict:
  if isinstance(split, ArraySource):
    return {k: np.asarray(split.arrays[k]) for k in keys}
  return {k: source_lib.read_field(split, k) for k in keys}


def _factor(info: DatasetInfo, factors, name):
  names = tuple(info.factor_names)
  return factors[:, names.index(name)] if name in names else None


def _raw(config, split, info: DatasetInfo) -> dict:
  """Landmarks and annotations of a split, pose undone and normalised (before the mean)."""
  d = _read_all(split, ("landmarks", "neutral_landmarks", "label", "identity", "factors"))
  x, y = d["landmarks"].astype(np.float64), d["neutral_landmarks"].astype(np.float64)
  k = x.shape[1]
  eyes, rigid = LAYOUTS.get(k, (None, None))
  if config.data.eye_points:
    left, right = config.data.eye_points.split(";")
    eyes = (tuple(int(i) for i in left.split(",")), tuple(int(i) for i in right.split(",")))
  if eyes is None:
    raise ValueError(f"{k} landmarks per face: no eye layout known; set config.data.eye_points")
  ok = np.all(np.isfinite(x.reshape(len(x), -1)), 1) & np.all(np.isfinite(y.reshape(len(y), -1)), 1)
  if not ok.all():
    print(f"triplet_vae: {int((~ok).sum())} faces without finite landmarks or neutral face skipped")
  d = {key: v[ok] for key, v in d.items()}
  x, y = x[ok], y[ok]
  factors = d["factors"].astype(np.float64).reshape(len(x), -1)
  if info.rendered:  # the renderer's pose is the data's pose estimate
    rot = lm.synthetic_pose_rotation(_factor(info, factors, "roll"), _factor(info, factors, "yaw"))
    x, y = lm.preprocess(x, rotation=rot, eyes=eyes), lm.preprocess(y, rotation=rot, eyes=eyes)
  else:  # no pose estimates in the files: Kabsch onto the person's neutral face (rigid points)
    x, y = lm.preprocess(x, reference=y, rigid=rigid, eyes=eyes), lm.preprocess(y, eyes=eyes)
  label = emotion = d["label"].astype(np.int64).reshape(-1)
  if info.rendered:  # AU intensities first among the renderer's factors
    intensity = _factor(info, factors, "intensity")
    targets = factors[:, :len(info.au_factors)]
    au = targets
    if config.eval.task == "valence_sign":
      v = _factor(info, factors, "valence")
      label = np.where(np.abs(v) >= VALENCE_MARGIN, (v > 0).astype(np.int64), -1)
  elif not info.au_factors:  # bu3dfe: the expression's intensity only
    intensity = _factor(info, factors, "intensity")
    targets, au = intensity[:, None], None
  else:  # bp4d: AU occurrences (NaN unknown); unknown counts as absent for the simulated crowd
    intensity = np.zeros(len(x))
    targets = factors
    au = np.nan_to_num(factors, nan=0.0)
  return {"x": x, "y": y, "label": label, "intensity": np.nan_to_num(intensity), "targets": targets,
          "au": au, "emotion": emotion, "identity": d["identity"].astype(np.int64).reshape(-1)}


def _take(raw: dict, mask) -> dict:
  return {k: (None if v is None else v[mask]) for k, v in raw.items()}


def _triplet_seed(seed: int, split: int, kind: int) -> int:
  return (int(seed) * 1_000_003 + 7919 * split + 104_729 * kind + 11) % 2**31


def _part(config, info: DatasetInfo, raw: dict, mean, split_no: int, num_triplets: int) -> Part:
  t = config.triplets
  trips = {}
  if info.has_labels and (raw["emotion"] >= 0).sum() >= 3:  # labelled (posed): the three rules
    trips["artificial"] = (trip_lib.artificial_triplets(_triplet_seed(config.seed, split_no, 0),
                                                       raw["emotion"], raw["intensity"], num_triplets),
                           np.ones(num_triplets, np.float32))
  if raw["au"] is not None and len(raw["x"]) >= 3:
    trips["crowd"] = trip_lib.crowd_triplets(_triplet_seed(config.seed, split_no, 1), raw["au"],
                                             n_per_image=t.per_image, votes=t.votes, noise=t.noise)
  return Part(landmarks=lm.subtract_mean(raw["x"], mean).astype(np.float32),
              neutral=lm.subtract_mean(raw["y"], mean).astype(np.float32),
              label=raw["label"], intensity=raw["intensity"].astype(np.float64),
              factors=np.asarray(raw["targets"], np.float64), identity=raw["identity"],
              triplets=trips)


@dataclasses.dataclass
class Prepared:
  train: Part
  val: Part
  test: Part
  mean: np.ndarray  # [K, 3] the training mean (added back to draw faces)
  metadata: dict
  info: DatasetInfo


def prepare(config, splits: Splits) -> Prepared:
  """Sec. IV and V-A on the host: the three person-wise parts, the training mean, the triplets."""
  md, info = dict(splits.metadata), splits.info
  train_raw = _raw(config, splits.train, info)
  test_raw = _raw(config, splits.test, info)
  people = np.unique(train_raw["identity"])
  if len(people) < 2:
    raise ValueError(f"triplet_vae: the training split has {len(people)} person(s); train and "
                     "validation need at least 2 (lower config.data.test_fraction or add people)")
  n_val = int(np.clip(round(config.data.val_fraction * len(people)), 1, len(people) - 1))
  _, is_val = lm.person_splits(train_raw["identity"], (len(people) - n_val, n_val), seed=config.seed)
  tr, va = _take(train_raw, ~is_val), _take(train_raw, is_val)
  mean = lm.fit_mean(tr["x"])  # Sec. V-A: the training portion's mean, per dimension
  t = config.triplets
  prepared = Prepared(train=_part(config, info, tr, mean, 0, t.num_train),
                      val=_part(config, info, va, mean, 1, t.num_val),
                      test=_part(config, info, test_raw, mean, 2, t.num_test), mean=mean,
                      metadata=dict(md, num_train=int((~is_val).sum()), num_val=int(is_val.sum())),
                      info=info)
  if t.kind not in prepared.train.triplets:
    raise ValueError(f"config.triplets.kind={t.kind!r}: {info.name} gives no such triplets")
  return prepared


@dataclasses.dataclass(kw_only=True)
class PreparedSplits(Splits):
  """Method.data of the triplet VAE: the training and test parts' landmarks as sources (what
  the loop reads) and the whole preparation (the parts with their annotations and triplets, the
  validation part, the training mean) that evaluation, the report and `affectjax.apply` read."""
  prepared: Prepared


# ---------------------------------------------------------------- the method

def build_model(config, num_landmarks: int) -> LandmarkVAE:
  m = config.model
  enc = tuple(int(w) for w in m.encoder_hidden)
  dec = tuple(int(w) for w in m.decoder_hidden) if uses_neutral(config) else enc[::-1]  # VAE: symmetric
  return LandmarkVAE(data_dim=3 * num_landmarks, latent_dim=int(m.latent_dim), encoder_hidden=enc,
                     decoder_hidden=dec, dropout_rate=float(m.dropout_rate),
                     conditional=uses_neutral(config))


def validation_inputs(config, prep: Prepared) -> tuple[dict, float]:
  """The model-selection inputs: at most eval.max_val_examples validation faces (a fixed choice)
  and, for M2, the validation triplets; with T_val / N_val for the prior's weight."""
  n_val = len(prep.val.landmarks)
  pick = np.sort(np.random.default_rng(config.seed).permutation(n_val)[:config.eval.max_val_examples])
  val = {"data": {"landmarks": jnp.asarray(prep.val.landmarks[pick]),
                  "neutral_landmarks": jnp.asarray(prep.val.neutral[pick])}}
  num_triplets = 0.0
  kind = config.triplets.kind
  if uses_triplets(config) and kind in prep.val.triplets:
    vt, vw = prep.val.triplets[kind]
    gathered = TripletSource(vt, vw, prep.val.landmarks, prep.val.neutral).gather(np.arange(len(vt)))
    val["triplets"] = {k: jnp.asarray(v) for k, v in gathered.items()}
    num_triplets = len(vt) * len(pick) / max(n_val, 1)  # T/N kept when the faces are subsampled
  return val, num_triplets


def selection_key(config):
  """The fixed key of the validation ELBO's samples (the same draw at every selection)."""
  return jax.random.key(config.seed ^ 0x5E1EC7)


def make_method(config, data: Splits, *, objective=None, objectives=None) -> Method:
  """VAE / M1 / M2 from the config and the loaded splits; `objective` replaces Eq. 11
  (objective.eq11's signature, affectjax.objective's contract; config.loss.fn names one from the
  command line)."""
  prep = prepare(config, data)
  num_landmarks = prep.train.landmarks.shape[1]
  model = build_model(config, num_landmarks)
  kind = config.triplets.kind
  train_trip, train_w = prep.train.triplets[kind]
  players = {PLAYER: optim.make_player(config.optim, config.train.num_steps)}
  phases = objective_lib.inject([objective_lib.Phase(PHASES[0], eq11, (PLAYER,))], config,
                                objective, objectives)
  ctx = Context(model, config, num_data=len(prep.train.landmarks), num_triplets=len(train_trip))
  step = objective_lib.make_step(phases, players, ctx)

  val, val_num_triplets = validation_inputs(config, prep)
  select_key = selection_key(config)
  num_steps, select_every = config.train.num_steps, config.eval.select_every
  val_elbo = functools.partial(validation_elbo, model=model, config=config,
                               num_triplets=val_num_triplets)

  def init(key, batch):
    k_params, k_sample = jax.random.split(key)
    b = batch["data"]
    x, y = flat(jnp.asarray(b["landmarks"])), flat(jnp.asarray(b["neutral_landmarks"]))
    params = {PLAYER: model.init({"params": k_params}, x, y, k_sample)["params"]}
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      opt_state=objective_lib.init_opt_state(players, params), aux=None,
                      best_params=params, best_elbo=jnp.full((), -jnp.inf, jnp.float32),
                      best_step=jnp.zeros((), jnp.int32))

  def select(state):
    """Sec. V-C: every select_every steps (and at the last), keep the best validation ELBO."""
    elbo = val_elbo(state.params[PLAYER], val, select_key)
    better = elbo > state.best_elbo
    keep = lambda new, old: jnp.where(better, new, old)
    return state.replace(best_params=jax.tree.map(keep, state.params, state.best_params),
                         best_elbo=keep(elbo, state.best_elbo),
                         best_step=keep(state.step, state.best_step))

  def train_step(state, batch, key):
    state, metrics = step(state, batch, key)  # Eq. 11 (affectjax.objective's step)
    due = (state.step % select_every == 0) | (state.step == num_steps)
    state = jax.lax.cond(due, select, lambda s: s, state)
    return state, dict(metrics, best_val_elbo=state.best_elbo, best_step=state.best_step)

  def represent(state, batch):
    """{'z': mu of q(z | x, y)} under the selected (best validation ELBO) parameters."""
    x, y = flat(jnp.asarray(batch["landmarks"])), flat(jnp.asarray(batch["neutral_landmarks"]))
    return {"z": model.apply({"params": state.best_params[PLAYER]}, x, y,
                             method=LandmarkVAE.encode)[0]}

  def generate(state, batch, key):
    """Faces f(y, z) for z ~ N(0, I) and the batch's neutral faces y: [B, K, 3] (training-mean centred)."""
    y = flat(jnp.asarray(batch["neutral_landmarks"]))
    z = jax.random.normal(key, (y.shape[0], model.latent_dim))
    out = model.apply({"params": state.best_params[PLAYER]}, z, y, method=LandmarkVAE.decode)
    return out.reshape(y.shape[0], num_landmarks, 3)

  streams = {"data": Stream(ArraySource(prep.train.arrays()), config.train.batch_size,
                            ("landmarks", "neutral_landmarks"))}
  if uses_triplets(config):
    streams["triplets"] = Stream(TripletSource(train_trip, train_w, prep.train.landmarks,
                                               prep.train.neutral),
                                 config.triplets.batch_size, ("landmarks", "neutral_landmarks", "weight"),
                                 seed_offset=1)
  data = PreparedSplits(ArraySource(prep.train.arrays()), ArraySource(prep.test.arrays()),
                        dict(prep.metadata), info=prep.info, prepared=prep)
  return Method(init=init, train_step=train_step, streams=streams,
                evaluate=functools.partial(tv_eval.evaluate, model=model, config=config, represent=represent),
                report=functools.partial(tv_eval.report, model=model, config=config, represent=represent),
                represent=represent, generate=generate, data=data, phases=phases,
                sentinels=("best_elbo", "best_val_elbo"))  # -inf until the first validation
