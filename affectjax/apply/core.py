"""`apply`: one trained run over the user's files, writing one set of outputs per method.

Outputs (OUT is --output; NAME is the input's path under --input without its extension):
- GANmut / GGANmut / StarGAN: NAME.<edit>.png per image and edit (e.g. face.happy_0.7.png,
  face.angle_1.05_rho_0.6.png, face.x_-0.8_y_-0.5.png), with OUT/edits.<edit>.npz (files, code
  [k], inputs and images [N, S, S, 3] in [-1, 1]); --strip: NAME.strip.png (input | neutral -> emotion
  in 11 steps, one row per emotion, as the run's interpolation figure) and NAME.strip.npz
  (strengths [11], codes [C-1, 11, k], images [C-1, 11, S, S, 3]); --gamut: NAME.gamut.png (a 7x7
  grid over the square, x right, y up, as the run's gamut figure; one-hot spaces: input | each
  class) and NAME.gamut.npz (codes, images).
- LeVAsa / Vanilla VAE: OUT/latents.csv (file, z_v_*, z_a_*, z_z_*, and valence, arousal from the
  heads where the model has them) and OUT/latents.npz (files, z_v, z_a, z_z, mu, logvar, va).
- dual-domain: OUT/predictions.csv (file, p_<emotion> per class, predicted, valence, arousal) and
  OUT/predictions.npz (files, probs, predicted, va).
- Rb-VAE / sRb-VAE (and the VAE baselines): OUT/codes.csv and OUT/codes.npz (files, z, e);
  --style_from=IMAGE: NAME.style_from_<STYLE>.png, G(z of the image, e of IMAGE), and
  OUT/style_transfer.npz.
- triplet VAE: OUT/embeddings.csv and OUT/embeddings.npz (files, z) of landmark files.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import sys
from typing import Callable, Optional, Sequence

import numpy as np

from affectjax.apply import inputs as io
from affectjax.apply.run import Run, load_run, read_config
from affectjax.errors import UserError

EDIT_FLAGS = ("emotion", "angle", "rho", "point", "strip", "gamut")
CHUNK = 256  # files read and processed at a time (bounded memory on large folders)


@dataclasses.dataclass
class Options:
  """What to compute (the command line's method flags)."""
  emotion: Optional[str] = None
  intensity: Optional[float] = None
  angle: Optional[float] = None  # radians, as the original GANmut notebook
  rho: Optional[float] = None
  point: Optional[Sequence[float]] = None
  strip: bool = False
  gamut: bool = False
  style_from: Optional[str] = None
  neutral: Optional[str] = None
  batch_size: int = 32
  progress: bool = True


@dataclasses.dataclass
class Summary:
  method: str
  processed: list  # input files with outputs
  skipped: dict  # file -> 'reason: detail'
  outputs: list  # files written

  def line(self) -> str:
    n = len(self.processed) + len(self.skipped)
    reasons = {}
    for r in self.skipped.values():
      reasons[r.split(":")[0]] = reasons.get(r.split(":")[0], 0) + 1
    why = f" ({', '.join(f'{k}: {v}' for k, v in sorted(reasons.items()))})" if reasons else ""
    return (f"{self.method}: {len(self.processed)} of {n} files processed, "
            f"{len(self.skipped)} skipped{why}; {len(self.outputs)} outputs written")


# ---------------------------------------------------------------- flags against the run

def method_of_flags(o: Options) -> Optional[str]:
  used = [f for f in EDIT_FLAGS if getattr(o, f) not in (None, False)]
  if o.intensity is not None:
    used.append("intensity")
  if used and o.style_from:
    raise UserError(f"--{used[0]} (GANmut) and --style_from (Rb-VAE) cannot be combined")
  if used:
    return "ganmut"
  if o.style_from:
    return "rbvae"
  if o.neutral:
    return "triplet_vae"
  return None


def check_flags(config, o: Options, workdir: str) -> None:
  """One line if the flags ask for something this run's method does not do."""
  wanted, method = method_of_flags(o), config.method
  flag = next((f"--{f}" for f in EDIT_FLAGS + ("intensity", "style_from", "neutral")
               if getattr(o, f) not in (None, False)), "")
  if wanted and wanted != method:
    raise UserError(f"{workdir} is a {method} run (variant {config.get('variant', '?')}); {flag} "
                    f"applies to a {wanted} run")
  if method == "ganmut":
    if not any(getattr(o, f) not in (None, False) for f in ("emotion", "angle", "point", "strip", "gamut")):
      raise UserError("a GANmut run edits faces: give --emotion=NAME [--intensity=S], "
                      "--angle=RADIANS --rho=R, --point=X,Y, --strip or --gamut")
    chosen = [f for f in ("emotion", "angle", "point") if getattr(o, f) is not None]
    if len(chosen) > 1:
      raise UserError(f"--{chosen[0]} and --{chosen[1]}: give one edit target per run")
    if o.intensity is not None and o.emotion is None:
      raise UserError("--intensity needs --emotion=NAME")
    if (o.angle is None) != (o.rho is None):
      raise UserError("--angle and --rho go together (polar coordinates of the learned space)")
  if method == "rbvae" and o.style_from and config.variant not in ("rbvae", "srbvae"):
    raise UserError(f"--style_from transfers e, which a {config.variant} run does not have "
                    "(only rbvae and srbvae runs)")


# ---------------------------------------------------------------- shared helpers

def _bar(total: int, o: Options, desc: str):
  from tqdm import tqdm
  return tqdm(total=total, desc=desc, unit="file", dynamic_ncols=True,
              disable=not o.progress or total <= 1)


def _image_shape(run: Run) -> tuple[int, int]:
  """(size, channels) of the model's input, from the run's own data."""
  x = run.setup.data.train.gather(np.arange(1))["image"]
  return int(x.shape[1]), int(x.shape[-1])


def _read_images(files, size, channels, skipped, bar, log):
  """{file: io.Image} of the readable files; the others go to `skipped` with their reason."""
  out = {}
  for f in files:
    try:
      im = io.read_image(f, size)
      if channels == 1:  # luminance, as PIL's 'L'
        im.pixels = (im.pixels @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
      out[f] = im
    except io.Skip as e:
      skipped[f] = f"{e.reason}: {e.detail}"
      log(f"skipped {f}: {e.reason}: {e.detail}")
      bar.update(1)
  return out


def _write_csv(path, header, rows):
  with open(path, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(header)
    w.writerows(rows)


def _fmt(v) -> str:
  return f"{float(v):.6g}"


def _chunks(seq, n):
  for i in range(0, len(seq), n):
    yield seq[i:i + n]


def _image_chunks(files, size, channels, skipped, o, desc, log):
  """{file: io.Image} per chunk of CHUNK readable files (unreadable ones go to `skipped`), with
  the progress bar, and the one line on resizing once every chunk has been used."""
  bar, seen = _bar(len(files), o, desc), {}
  for chunk in _chunks(files, CHUNK):
    images = _read_images(chunk, size, channels, skipped, bar, log)
    if images:
      yield images
      seen.update(images)
      bar.update(len(images))
  bar.close()
  line = io.resize_line(seen, size)
  if line:
    log(line)


def _image_tables(run, files, root, output, o, log, features: Callable, desc: str):
  """features({'image': [B, S, S, C]}) -> {name: [B, ...]} over every readable image, batched;
  returns (names relative to root, {name: [N, ...]}, Summary pieces)."""
  from affectjax.evaluate.inference import batched
  size, channels = _image_shape(run)
  skipped, done, outs = {}, [], []
  for images in _image_chunks(files, size, channels, skipped, o, desc, log):
    x = np.stack([im.pixels for im in images.values()])
    outs.append(batched(features, {"image": x}, o.batch_size))
    done += list(images)
  table = {k: np.concatenate([t[k] for t in outs]) for k in outs[0]} if outs else {}
  return done, table, skipped


# ---------------------------------------------------------------- GANmut / GGANmut / StarGAN

def _edit_targets(run: Run, o: Options):
  """[(tag, code [k])] of the edit asked for (empty for --strip / --gamut alone)."""
  from affectjax.affect.emotions import EMOTIONS
  from affectjax.methods import ganmut
  config, params = run.config, run.state.params["g"]["space"]
  space = ganmut.space_of(config)
  names = EMOTIONS[:config.data.num_classes]
  if o.emotion is not None:
    name = o.emotion.strip().lower()
    if name not in names:
      raise UserError(f"--emotion={o.emotion}: expected one of {', '.join(names)} (this run's "
                      f"{len(names)} classes)")
    s = 1.0 if o.intensity is None else float(o.intensity)
    if not 0.0 <= s <= 1.0:
      raise UserError(f"--intensity={o.intensity}: expected a number in [0, 1] (0 neutral, 1 full)")
    code = np.asarray(space.emotion_code(params, names.index(name), np.array([s])))[0]
    return [(f"{name}_{s:g}", code)]
  if o.angle is not None or o.point is not None:
    if space.code_dim != 2:
      raise UserError(f"--{'angle' if o.angle is not None else 'point'}: a {space.kind} run has "
                      "one-hot conditions, not a 2-D space; use --emotion=NAME --intensity=S")
    if o.angle is not None:
      if not 0.0 <= o.rho <= 1.0:
        raise UserError(f"--rho={o.rho}: expected a number in [0, 1]")
      code = np.array([o.rho * np.cos(o.angle), o.rho * np.sin(o.angle)], np.float32)
      return [(f"angle_{o.angle:g}_rho_{o.rho:g}", code)]
    x, y = (float(v) for v in o.point)
    if not (abs(x) <= 1 and abs(y) <= 1):
      raise UserError(f"--point={x:g},{y:g}: expected coordinates in [-1, 1]")
    if space.in_disc and x * x + y * y > 1 + 1e-6:
      log_note = f"--point={x:g},{y:g} lies outside the unit disc that the linear space was trained on"
      print(f"affectjax: note: {log_note}", file=sys.stderr)
    return [(f"x_{x:g}_y_{y:g}", np.array([x, y], np.float32))]
  return []


STRIP_STEPS = np.linspace(0.0, 1.0, 11)  # as the run's interpolation figure (Sec. 5.2)
GAMUT_N = 7  # as the run's gamut figure


def _strip_codes(run, space):
  params = run.state.params["g"]["space"]
  return np.stack([np.asarray(space.emotion_code(params, c, STRIP_STEPS))
                   for c in range(1, run.config.data.num_classes)])  # [C-1, 11, k]


def _gamut_codes(run, space):
  """[n*n, 2] codes over [-1, 1]^2, row-major from the top-left (x right, y up), and the mask of
  codes outside the unit disc for the linear space; one-hot spaces: every class code."""
  if space.code_dim != 2:
    z = np.asarray(space.class_codes(run.state.params["g"]["space"],
                                     np.arange(run.config.data.num_classes)))
    return z, np.zeros(len(z), bool)
  t = np.linspace(-1, 1, GAMUT_N)
  u, v = np.meshgrid(t, t[::-1])
  z = np.stack([u.ravel(), v.ravel()], -1).astype(np.float32)
  outside = (np.sum(z ** 2, -1) > 1.0 + 1e-6) if space.in_disc else np.zeros(len(z), bool)
  return z, outside


def apply_ganmut(run, files, root, output, o, log) -> tuple[list, dict, list]:
  import jax
  from affectjax.evaluate.inference import batched
  from affectjax.methods import ganmut
  space = ganmut.space_of(run.config)
  gen = jax.jit(lambda state, x, z: run.setup.method.generate(state, {"image": x, "code": z}, None))
  g_state = run.state
  run_gen = lambda b: gen(g_state, b["image"], b["code"])
  size, channels = _image_shape(run)
  targets = _edit_targets(run, o)
  strip_codes = _strip_codes(run, space) if o.strip else None
  gamut_codes, outside = _gamut_codes(run, space) if o.gamut else (None, None)
  stems = io.output_stems(files, root)
  protected = {os.path.realpath(f) for f in files}
  skipped, done, written = {}, [], []
  edits = {t: {"files": [], "inputs": [], "images": []} for t, _ in targets}
  for images in _image_chunks(files, size, channels, skipped, o, "ganmut", log):
    x = np.stack([im.pixels for im in images.values()])
    names = list(images)
    for tag, code in targets:
      out = batched(run_gen, {"image": x, "code": np.repeat(code[None], len(x), 0)}, o.batch_size)
      for f, xi, yi in zip(names, x, out):
        path = io.safe_path(os.path.join(output, f"{stems[f]}.{tag}.png"), protected)
        io.write_png(path, yi)
        written.append(path)
        edits[tag]["files"].append(os.path.relpath(f, root))
        edits[tag]["inputs"].append(xi)
        edits[tag]["images"].append(yi)
    for f, xi in zip(names, x):
      if strip_codes is not None:
        c, k = strip_codes.shape[0], strip_codes.shape[-1]
        z = strip_codes.reshape(-1, k)
        imgs = batched(run_gen, {"image": np.repeat(xi[None], len(z), 0), "code": z}, o.batch_size)
        imgs = imgs.reshape(c, len(STRIP_STEPS), *xi.shape)
        rows = [np.concatenate([xi] + list(imgs[r]), 1) for r in range(c)]
        base = os.path.join(output, f"{stems[f]}.strip")
        io.write_png(io.safe_path(base + ".png", protected), np.concatenate(rows, 0))
        np.savez(io.safe_path(base + ".npz", protected), input=xi, strengths=STRIP_STEPS,
                 codes=strip_codes, images=imgs)
        written += [base + ".png", base + ".npz"]
      if gamut_codes is not None:
        imgs = batched(run_gen, {"image": np.repeat(xi[None], len(gamut_codes), 0),
                                 "code": gamut_codes}, o.batch_size)
        shown = np.where(outside[:, None, None, None], 1.0, imgs)  # outside the disc: white
        if space.code_dim == 2:
          grid = shown.reshape(GAMUT_N, GAMUT_N, *xi.shape).transpose(0, 2, 1, 3, 4)
          grid = grid.reshape(GAMUT_N * xi.shape[0], GAMUT_N * xi.shape[1], xi.shape[2])
        else:
          grid = np.concatenate([xi] + list(shown), 1)
        base = os.path.join(output, f"{stems[f]}.gamut")
        io.write_png(io.safe_path(base + ".png", protected), grid)
        np.savez(io.safe_path(base + ".npz", protected), input=xi, codes=gamut_codes,
                 images=imgs, outside=outside)
        written += [base + ".png", base + ".npz"]
    done += names
  for tag, code in targets:
    if edits[tag]["files"]:
      path = io.safe_path(os.path.join(output, f"edits.{tag}.npz"), protected)
      np.savez(path, files=np.array(edits[tag]["files"]), code=code,
               inputs=np.stack(edits[tag]["inputs"]), images=np.stack(edits[tag]["images"]))
      written.append(path)
  return done, skipped, written


# ---------------------------------------------------------------- LeVAsa / Vanilla VAE

def apply_levasa(run, files, root, output, o, log):
  import jax
  from affectjax.methods import levasa
  from affectjax.methods.levasa import evaluate as levasa_eval
  config = run.config
  model = levasa.build_model(config)
  variables = levasa.variables(run.state.params[levasa.PLAYER], run.state.aux)

  @jax.jit
  def fn(variables, x):
    mu, logvar = model.apply(variables, x, method=model.encode)
    out = {"mu": mu, "logvar": logvar}
    if model.head_dim:  # the heads read mu, as the evaluation (levasa_eval.encode)
      out["r_v"], out["r_a"] = model.apply(variables, mu, method=model.heads)
    return out

  done, t, skipped = _image_tables(run, files, root, output, o, log,
                                   lambda b: fn(variables, b["image"]), "levasa")
  if not done:
    return done, skipped, []
  a, b = config.model.chunk_sizes[0], config.model.chunk_sizes[0] + config.model.chunk_sizes[1]
  z = {"z_v": t["mu"][:, :a], "z_a": t["mu"][:, a:b], "z_z": t["mu"][:, b:]}
  va = levasa_eval.head_va(t, config)  # the expected level for discrete heads
  rel = [os.path.relpath(f, root) for f in done]
  header = ["file"] + [f"{k}_{i}" for k in z for i in range(z[k].shape[1])]
  header += ["valence", "arousal"] if va is not None else []
  rows = [[r] + [_fmt(v) for k in z for v in z[k][i]] + ([_fmt(va[i, 0]), _fmt(va[i, 1])]
                                                         if va is not None else [])
          for i, r in enumerate(rel)]
  protected = {os.path.realpath(f) for f in files}
  csv_path = io.safe_path(os.path.join(output, "latents.csv"), protected)
  _write_csv(csv_path, header, rows)
  npz = io.safe_path(os.path.join(output, "latents.npz"), protected)
  extra = {"va": va.astype(np.float32)} if va is not None else {}
  np.savez(npz, files=np.array(rel), mu=t["mu"], logvar=t["logvar"], **z, **extra)
  return done, skipped, [csv_path, npz]


# ---------------------------------------------------------------- dual-domain

def apply_dual_domain(run, files, root, output, o, log):
  from affectjax.affect.emotions import EMOTIONS
  from affectjax.methods import dual_domain
  config = run.config
  model = dual_domain.build_model(config)
  # the evaluated model: SWA weights (BatchNorm re-estimated) when SWA ran, as the evaluation
  variables, used_swa = dual_domain.eval_variables(run.state, run.setup.data, model=model,
                                                   config=config)
  predict = dual_domain.predict_fn(model)

  def fn(b):
    out = predict(variables, b["image"])
    return {"probs": out[0], **({"va": out[2]} if len(out) == 3 else {})}

  done, t, skipped = _image_tables(run, files, root, output, o, log, fn, "dual_domain")
  if not done:
    return done, skipped, []
  if used_swa:
    log("dual_domain: the SWA weights (as the run's evaluation)")
  names = EMOTIONS[:config.data.num_classes]
  pred = t["probs"].argmax(-1)
  rel = [os.path.relpath(f, root) for f in done]
  header = ["file"] + [f"p_{n}" for n in names] + ["predicted"]
  header += ["valence", "arousal"] if "va" in t else []
  rows = [[r] + [_fmt(p) for p in t["probs"][i]] + [names[pred[i]]]
          + ([_fmt(t["va"][i, 0]), _fmt(t["va"][i, 1])] if "va" in t else [])
          for i, r in enumerate(rel)]
  protected = {os.path.realpath(f) for f in files}
  csv_path = io.safe_path(os.path.join(output, "predictions.csv"), protected)
  _write_csv(csv_path, header, rows)
  npz = io.safe_path(os.path.join(output, "predictions.npz"), protected)
  np.savez(npz, files=np.array(rel), classes=np.array(names), predicted=pred, **t)
  return done, skipped, [csv_path, npz]


# ---------------------------------------------------------------- Rb-VAE / sRb-VAE

def apply_rbvae(run, files, root, output, o, log):
  import jax
  from affectjax.evaluate.inference import batched
  method = run.setup.method
  represent = jax.jit(method.represent)
  state = run.state
  done, t, skipped = _image_tables(run, files, root, output, o, log,
                                   lambda b: represent(state, b), "rbvae")
  protected = {os.path.realpath(f) for f in files}
  if not done:
    return done, skipped, []
  rel = [os.path.relpath(f, root) for f in done]
  keys = [k for k in ("z", "e") if k in t]
  header = ["file"] + [f"{k}_{i}" for k in keys for i in range(t[k].shape[1])]
  rows = [[r] + [_fmt(v) for k in keys for v in t[k][i]] for i, r in enumerate(rel)]
  csv_path = io.safe_path(os.path.join(output, "codes.csv"), protected)
  _write_csv(csv_path, header, rows)
  npz = io.safe_path(os.path.join(output, "codes.npz"), protected)
  np.savez(npz, files=np.array(rel), **{k: t[k] for k in keys})
  written = [csv_path, npz]
  if o.style_from:
    size, channels = _image_shape(run)
    try:
      style = io.read_image(o.style_from, size)
    except io.Skip as e:
      raise UserError(f"--style_from={o.style_from}: {e.reason}: {e.detail}") from None
    sx = style.pixels
    if channels == 1:
      sx = (sx @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    e_style = np.asarray(represent(state, {"image": sx[None]})["e"])[0]
    generate = jax.jit(method.generate)
    e = np.repeat(e_style[None], len(done), 0)
    out = batched(lambda b: generate(state, b), {"z": t["z"], "e": e}, o.batch_size)
    stems = io.output_stems(files, root)
    tag = os.path.splitext(os.path.basename(o.style_from))[0]
    for f, y in zip(done, out):
      path = io.safe_path(os.path.join(output, f"{stems[f]}.style_from_{tag}.png"), protected)
      io.write_png(path, y if y.shape[-1] == 3 else np.repeat(y, 3, -1))
      written.append(path)
    path = io.safe_path(os.path.join(output, "style_transfer.npz"), protected)
    np.savez(path, files=np.array(rel), style=o.style_from, e_style=e_style, z=t["z"], images=out)
    written.append(path)
  return done, skipped, written


# ---------------------------------------------------------------- triplet VAE

def apply_triplet_vae(run, files, root, output, o, log):
  import jax
  from affectjax.data import landmarks as lm
  from affectjax.evaluate.inference import batched
  from affectjax.methods import triplet_vae
  config = run.config
  prep = run.setup.method.data.prepared  # triplet_vae.PreparedSplits
  k = prep.train.landmarks.shape[1]
  eyes, rigid = triplet_vae.LAYOUTS.get(k, (None, None))
  if config.data.get("eye_points"):
    left, right = config.data.eye_points.split(";")
    eyes = (tuple(int(i) for i in left.split(",")), tuple(int(i) for i in right.split(",")))
  conditional = triplet_vae.uses_neutral(config)
  if conditional and not o.neutral:
    raise UserError(f"a {config.variant} run conditions on the person's neutral face: give "
                    f"--neutral=FILE (a landmark file of {k} points)")
  y_raw = None
  if o.neutral:
    try:
      y_raw = io.read_landmarks(o.neutral, k)
      y = lm.preprocess(y_raw, eyes=eyes)
    except io.Skip as e:
      raise UserError(f"--neutral={o.neutral}: {e.reason}: {e.detail}") from None
    except ValueError as e:
      raise UserError(f"--neutral={o.neutral}: {e}") from None
  skipped, done, xs = {}, [], []
  bar = _bar(len(files), o, "triplet_vae")
  neutral_path = os.path.realpath(o.neutral) if o.neutral else None
  for f in files:
    if os.path.realpath(f) == neutral_path:
      skipped[f] = "neutral face: the --neutral file itself"
      bar.update(1)
      continue
    try:
      x = io.read_landmarks(f, k)
      # Sec. V-A: pose onto the neutral face (Kabsch on the rigid points), eyes centred, IOD 1
      x = lm.preprocess(x, reference=y_raw, rigid=rigid, eyes=eyes) if y_raw is not None \
          else lm.preprocess(x, eyes=eyes)
      xs.append(x)
      done.append(f)
    except io.Skip as e:
      skipped[f] = f"{e.reason}: {e.detail}"
      log(f"skipped {f}: {e.reason}: {e.detail}")
    except ValueError as e:
      skipped[f] = f"bad landmarks: {e}"
      log(f"skipped {f}: bad landmarks: {e}")
    bar.update(1)
  bar.close()
  if not done:
    return done, skipped, []
  x = lm.subtract_mean(np.stack(xs), prep.mean).astype(np.float32)  # the training mean (Sec. V-A)
  yb = (lm.subtract_mean(np.repeat(y[None], len(x), 0), prep.mean) if o.neutral
        else np.zeros_like(x)).astype(np.float32)
  represent = jax.jit(run.setup.method.represent)
  state = run.state
  z = batched(lambda b: represent(state, b), {"landmarks": x, "neutral_landmarks": yb},
              o.batch_size)["z"]
  rel = [os.path.relpath(f, root) for f in done]
  protected = {os.path.realpath(f) for f in files}
  csv_path = io.safe_path(os.path.join(output, "embeddings.csv"), protected)
  _write_csv(csv_path, ["file"] + [f"z_{i}" for i in range(z.shape[1])],
             [[r] + [_fmt(v) for v in z[i]] for i, r in enumerate(rel)])
  npz = io.safe_path(os.path.join(output, "embeddings.npz"), protected)
  np.savez(npz, files=np.array(rel), z=z)
  return done, skipped, [csv_path, npz]


HANDLERS = {"ganmut": apply_ganmut, "levasa": apply_levasa, "dual_domain": apply_dual_domain,
            "rbvae": apply_rbvae, "triplet_vae": apply_triplet_vae}


def apply(workdir: str, input: str, output: str, options: Optional[Options] = None, *,
          step: Optional[int] = None, seed: int = 0, log: Callable = None) -> Summary:
  """Applies the run in `workdir` to the file or folder `input`, writing into `output`."""
  o = options or Options()
  if log is None:
    from tqdm import tqdm
    log = lambda msg: tqdm.write(msg, file=sys.stderr)
  config = read_config(workdir)  # the flags are checked before anything slow
  if config.get("method") not in HANDLERS:
    raise UserError(f"{workdir}/config.json: method {config.get('method')!r} has no apply "
                    f"(expected one of {', '.join(HANDLERS)})")
  check_flags(config, o, workdir)
  if o.batch_size < 1:
    raise UserError(f"--batch_size={o.batch_size}: expected a positive integer")
  files, root = io.list_inputs(input)
  io.check_output(output, files)
  run = load_run(workdir, step, seed, config=config)
  done, skipped, written = HANDLERS[config.method](run, files, root, os.path.abspath(output), o, log)
  return Summary(f"{config.method} ({config.get('variant', '')}, step {run.step})", done, skipped,
                 written)
