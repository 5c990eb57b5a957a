"""Converts a generator of the original GANmut code (github.com/stefanodapolito/GANmut: a
`<iteration>-G.ckpt` PyTorch state dict of its linear or Gaussian 2-D model, e.g.
learned_generators/lin_2d/1000000-G.ckpt) into an affectjax run directory that
`python -m affectjax.apply` and the GANmut figures read.

  python tools/convert_ganmut_checkpoint.py 1000000-G.ckpt runs/ganmut_original [--check]
  python -m affectjax.apply --workdir=runs/ganmut_original --input=me.jpg --output=edited \\
      --angle=3.1416 --rho=0.3

The run's config is configs/ganmut.py:original (linear) or :gaussian,original with the
generator's sizes read from the state dict (conv_dim, residual blocks, classes) and BGR input, as
the original trains. The checkpoint holds G only: the run's discriminator is a small random
placeholder (data.bgr, model.d_conv_dim = 8), so D-based outputs (the space map) mean nothing;
editing, strips and gamuts use G alone.

The layout (read from the original's models/model_linear_2d.py and model_gaussian_2d.py):
`main` is a Sequential of conv 7x7 (3 + 2 code channels -> conv_dim), InstanceNorm2d (affine,
running stats unused: the original never switches G to eval mode), ReLU, two conv 4x4/2 down with
norms, `repeat_num` residual blocks (main.0 conv 3x3, main.1 norm, main.3 conv 3x3, main.4 norm),
two ConvTranspose2d 4x4/2 (padding 1) up with norms, conv 7x7 -> 3, tanh. The code (x, y) is tiled
over the image and concatenated after the 3 image channels. Linear model: `axes.weight`
[C-1, 2], emotion c's direction the normalised row c-1 (affectjax's direction_param='vector').
Gaussian model: `mu.weight` [C, 2] (modes tanh(w)), `covariance_axes.weight` [C, 2] (eigenvalues
|w|) and `covariance_angles.weight` [1, C] (the eigenvectors' angle).

--check runs the converted generator and a PyTorch module built to that layout (strictly loading
the same state dict, in training mode as the original samples) on one random input and prints
the largest absolute difference; --random writes a random-weight checkpoint to convert instead of
reading one (to test the converter). PyTorch: pip install -e ".[torch]".
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as a script from a checkout without `pip install -e .`
  sys.path.insert(0, REPO)


def _torch():
  try:
    import torch
  except ImportError:
    from affectjax.errors import UserError
    raise UserError("convert_ganmut_checkpoint: PyTorch is needed to read a .ckpt file "
                    "(pip install -e \".[torch]\")") from None
  return torch


# ---------------------------------------------------------------- the original layout

def describe(sd: dict) -> dict:
  """The generator's kind and sizes from its state dict's names and shapes."""
  from affectjax.errors import UserError
  if "main.0.weight" not in sd:
    raise UserError("the state dict has no 'main.0.weight': not a GANmut generator (*-G.ckpt)")
  if "axes.weight" in sd:
    space, classes = "linear", sd["axes.weight"].shape[0] + 1
  elif "mu.weight" in sd:
    space, classes = "gaussian", sd["mu.weight"].shape[0]
  else:
    raise UserError("the state dict has neither 'axes.weight' (linear model) nor 'mu.weight' "
                    "(Gaussian model); only the 2-D GANmut generators are supported")
  conv_dim, in_ch = sd["main.0.weight"].shape[:2]
  if in_ch != 5:
    raise UserError(f"main.0.weight has {in_ch} input channels; the 2-D models have 3 + 2")
  blocks = sorted({int(m.group(1)) for k in sd for m in [re.match(r"main\.(\d+)\.main\.0\.weight$", k)] if m})
  return {"space": space, "num_classes": int(classes), "conv_dim": int(conv_dim),
          "repeat_num": len(blocks), "first_block": blocks[0] if blocks else 9}


def _conv(w):  # torch Conv2d [O, I, kh, kw] -> flax Conv [kh, kw, I, O]
  return np.transpose(w, (2, 3, 1, 0))


def _conv_t(w):
  # torch ConvTranspose2d [I, O, kh, kw] is the adjoint of a conv; flax's ConvTranspose (no
  # kernel transpose) correlates the dilated input, so the kernel is flipped in space
  return np.transpose(w, (2, 3, 0, 1))[::-1, ::-1]


def generator_params(sd: dict) -> dict:
  """The Flax params of affectjax.nn.stargan.Generator (upsample='transpose') from the state dict."""
  d = describe(sd)
  r = d["repeat_num"]
  norm = lambda i: {"scale": sd[f"main.{i}.weight"], "bias": sd[f"main.{i}.bias"]}
  p = {"Conv_0": {"kernel": _conv(sd["main.0.weight"])}, "InstanceNorm_0": norm(1),
       "Conv_1": {"kernel": _conv(sd["main.3.weight"])}, "InstanceNorm_1": norm(4),
       "Conv_2": {"kernel": _conv(sd["main.6.weight"])}, "InstanceNorm_2": norm(7)}
  for b in range(r):
    i = 9 + b
    p[f"ResidualBlock_{b}"] = {
        "Conv_0": {"kernel": _conv(sd[f"main.{i}.main.0.weight"])},
        "InstanceNorm_0": {"scale": sd[f"main.{i}.main.1.weight"], "bias": sd[f"main.{i}.main.1.bias"]},
        "Conv_1": {"kernel": _conv(sd[f"main.{i}.main.3.weight"])},
        "InstanceNorm_1": {"scale": sd[f"main.{i}.main.4.weight"], "bias": sd[f"main.{i}.main.4.bias"]}}
  u = 9 + r  # two (ConvTranspose2d, norm, ReLU) triples, then the last conv
  p["ConvTranspose_0"] = {"kernel": _conv_t(sd[f"main.{u}.weight"])}
  p["InstanceNorm_3"] = norm(u + 1)
  p["ConvTranspose_1"] = {"kernel": _conv_t(sd[f"main.{u + 3}.weight"])}
  p["InstanceNorm_4"] = norm(u + 4)
  p["Conv_3"] = {"kernel": _conv(sd[f"main.{u + 6}.weight"])}
  return {k: {n: np.ascontiguousarray(v, np.float32) for n, v in m.items()} if "kernel" in m or "scale" in m
          else {kk: {n: np.ascontiguousarray(v, np.float32) for n, v in mm.items()} for kk, mm in m.items()}
          for k, m in p.items()}


def space_params(sd: dict) -> dict:
  """affectjax's conditional-space parameters (affectjax.affect.conditional) from the state dict."""
  if "axes.weight" in sd:  # direction_param='vector': theta_c = atan2 of the normalised row
    return {"v": np.asarray(sd["axes.weight"], np.float32)}
  eig = np.abs(np.asarray(sd["covariance_axes.weight"], np.float64))
  return {"w": np.asarray(sd["mu.weight"], np.float32),
          "log_eigs": np.log(np.maximum(eig, 1e-30)).astype(np.float32),  # Sigma's eigenvalues |w|
          "angle": np.asarray(sd["covariance_angles.weight"], np.float32).reshape(-1)}


def reference_generator(conv_dim: int, repeat_num: int, space: str, num_classes: int):
  """A PyTorch module with the original generator's state-dict layout (for --check and tests):
  forward(x [N, 3, H, W] BGR in [-1, 1], code [N, 2]) -> [N, 3, H, W]."""
  torch = _torch()
  nn = torch.nn

  def norm(c):
    return nn.InstanceNorm2d(c, affine=True, track_running_stats=True)

  class Block(nn.Module):
    def __init__(self, c):
      super().__init__()
      self.main = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), norm(c), nn.ReLU(),
                                nn.Conv2d(c, c, 3, 1, 1, bias=False), norm(c))

    def forward(self, x):
      return x + self.main(x)

  class Reference(nn.Module):
    def __init__(self):
      super().__init__()
      if space == "linear":
        self.axes = nn.Linear(2, num_classes - 1)
      else:
        self.covariance_angles = nn.Linear(num_classes, 1, bias=False)
        self.covariance_axes = nn.Linear(2, num_classes, bias=False)
        self.mu = nn.Linear(2, num_classes, bias=False)
      layers, c = [nn.Conv2d(5, conv_dim, 7, 1, 3, bias=False), norm(conv_dim), nn.ReLU()], conv_dim
      for _ in range(2):
        layers += [nn.Conv2d(c, 2 * c, 4, 2, 1, bias=False), norm(2 * c), nn.ReLU()]
        c *= 2
      layers += [Block(c) for _ in range(repeat_num)]
      for _ in range(2):
        layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), norm(c // 2), nn.ReLU()]
        c //= 2
      layers += [nn.Conv2d(c, 3, 7, 1, 3, bias=False), nn.Tanh()]
      self.main = nn.Sequential(*layers)

    def forward(self, x, code):
      tiled = code[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
      return self.main(torch.cat([x, tiled], 1))

  return Reference()


def random_state_dict(space: str = "linear", conv_dim: int = 8, repeat_num: int = 2,
                      num_classes: int = 7, seed: int = 0) -> dict:
  """A generator state dict with random weights (norm affines and space parameters too)."""
  torch = _torch()
  torch.manual_seed(seed)
  g = reference_generator(conv_dim, repeat_num, space, num_classes)
  with torch.no_grad():
    for name, p in g.named_parameters():
      if re.search(r"main\.\d+\.(main\.\d+\.)?(weight|bias)$", name) and p.dim() == 1:
        p.copy_(torch.randn_like(p) * 0.3 + (1.0 if name.endswith("weight") else 0.0))
    if space == "gaussian":
      g.mu.weight.copy_(torch.randn_like(g.mu.weight))
      g.covariance_axes.weight.copy_(torch.rand_like(g.covariance_axes.weight) * 0.5 + 0.1)
      g.covariance_angles.weight.copy_(torch.rand_like(g.covariance_angles.weight) * 3)
  return g.state_dict()


# ---------------------------------------------------------------- the run directory

def run_config(info: dict, image_size: int, step: int):
  """configs/ganmut.py:[gaussian,]original sized to the checkpoint."""
  from affectjax.configs import ganmut as module
  c = module.get_config("gaussian,original" if info["space"] == "gaussian" else "original")
  c.variant = f"converted {info['space']} GANmut (original code)"
  c.data.image_size = image_size
  c.data.num_classes = info["num_classes"]
  c.data.num_identities = 4  # the run's data only gives shapes (apply reads the user's images)
  c.data.images_per_identity = 4
  c.data.test_fraction = 0.25
  c.model.g_conv_dim = info["conv_dim"]
  c.model.g_repeat_num = info["repeat_num"]
  c.model.upsample = "transpose"
  c.model.direction_param = "vector"
  c.model.d_conv_dim = 8  # a placeholder discriminator: the checkpoint has G only
  d = 0
  while d < 6 and image_size % 2 ** (d + 1) == 0:
    d += 1
  c.model.d_repeat_num = max(d, 1)
  c.train.num_steps = max(int(step), 1)
  c.train.checkpoint_every = max(int(step), 1)
  c.train.progress = False
  return c


def convert(sd: dict, workdir: str, image_size: int = 128, step: int = 1, source: str = "") -> str:
  """Writes workdir/config.json and workdir/checkpoints/<step>/ from a generator state dict."""
  import jax
  import orbax.checkpoint as ocp
  from affectjax import train
  from affectjax.errors import UserError
  sd = {k: np.asarray(v) for k, v in sd.items()}
  info = describe(sd)
  config = run_config(info, image_size, step)
  if os.path.isdir(os.path.join(workdir, "checkpoints")) and os.listdir(os.path.join(workdir, "checkpoints")):
    raise UserError(f"{workdir}/checkpoints is not empty: convert into a new folder")
  train.check_workdir(workdir)
  s = train.setup(config)
  state = train.init_state(s)
  net, space = generator_params(sd), space_params(sd)
  new_g = {"net": net, "space": space}
  want = jax.tree.map(lambda x: x.shape, state.params["g"])
  got = jax.tree.map(lambda x: x.shape, new_g)
  if jax.tree.structure(want) != jax.tree.structure(got) or jax.tree.leaves(want) != jax.tree.leaves(got):
    raise UserError(f"the converted generator does not fit configs/ganmut.py's Generator "
                    f"(conv_dim {info['conv_dim']}, {info['repeat_num']} blocks)")
  new_g = jax.tree.map(lambda new, old: jax.device_put(np.asarray(new, old.dtype), old.sharding),
                       new_g, state.params["g"])
  state = state.replace(params={**state.params, "g": new_g})
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  with open(os.path.join(workdir, "converted_from.json"), "w") as f:
    json.dump({"source": source, "space": info["space"], "num_classes": info["num_classes"],
               "conv_dim": info["conv_dim"], "repeat_num": info["repeat_num"],
               "note": "G from the original GANmut checkpoint; D and the optimiser states are "
                       "random placeholders"}, f, indent=1)
  mgr = ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                              options=ocp.CheckpointManagerOptions(create=True))
  mgr.save(config.train.num_steps, args=ocp.args.StandardSave(state))
  mgr.wait_until_finished()
  mgr.close()
  return workdir


def check(sd: dict, workdir: str, image_size: int, batch: int = 4, seed: int = 0) -> dict:
  """Max |difference| between the converted run's G (affectjax.apply's restore) and the PyTorch
  reference on one random input with random codes, and of the space's codes for every emotion."""
  torch = _torch()
  import jax.numpy as jnp
  from affectjax.apply.run import load_run
  from affectjax.methods import ganmut
  info = describe(sd)
  ref = reference_generator(info["conv_dim"], info["repeat_num"], info["space"], info["num_classes"])
  ref.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in sd.items()}, strict=True)
  ref.train()  # the original samples in training mode: instance statistics in every norm
  rng = np.random.default_rng(seed)
  x_rgb = rng.uniform(-1, 1, (batch, image_size, image_size, 3)).astype(np.float32)
  code = rng.uniform(-1, 1, (batch, 2)).astype(np.float32)
  with torch.no_grad():
    x_bgr = torch.as_tensor(np.ascontiguousarray(x_rgb[..., ::-1].transpose(0, 3, 1, 2)))
    y_ref = ref(x_bgr, torch.as_tensor(code)).numpy().transpose(0, 2, 3, 1)[..., ::-1]
  run = load_run(workdir)
  y = np.asarray(run.setup.method.generate(run.state, {"image": jnp.asarray(x_rgb),
                                                        "code": jnp.asarray(code)}, None))
  out = {"generator": float(np.abs(y - y_ref).max())}
  space = ganmut.space_of(run.config)
  params = run.state.params["g"]["space"]
  classes = np.arange(1 if info["space"] == "linear" else 0, info["num_classes"])
  ours = np.asarray(space.class_codes(params, classes))
  if info["space"] == "linear":  # emotion c at full strength: the normalised row c-1 of axes
    w = np.asarray(sd["axes.weight"], np.float64)
    theirs = (w / np.linalg.norm(w, axis=1, keepdims=True))[classes - 1]
  else:  # the modes tanh(mu) and the covariances R diag(|a|) R^T
    theirs = np.tanh(np.asarray(sd["mu.weight"], np.float64))
    a = np.abs(np.asarray(sd["covariance_axes.weight"], np.float64))
    t = np.asarray(sd["covariance_angles.weight"], np.float64).reshape(-1)
    c, s_ = np.cos(t), np.sin(t)
    cov = np.stack([np.stack([a[:, 0] * c * c + a[:, 1] * s_ * s_, (a[:, 0] - a[:, 1]) * c * s_], -1),
                    np.stack([(a[:, 0] - a[:, 1]) * s_ * c, a[:, 0] * s_ * s_ + a[:, 1] * c * c], -1)], -2)
    out["covariances"] = float(np.abs(np.asarray(space.modes(params)[1]) - cov).max())
  out["codes"] = float(np.abs(ours - theirs).max())
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("ckpt", help="the original code's <iteration>-G.ckpt (with --random: written)")
  p.add_argument("workdir", help="the run directory to write (new or empty)")
  p.add_argument("--image_size", type=int, default=128, help="the generator's training size")
  p.add_argument("--step", type=int, default=None, help="default: the iteration in the file name")
  p.add_argument("--check", action="store_true", help="compare with PyTorch on a random input")
  p.add_argument("--random", choices=("linear", "gaussian"), default=None,
                 help="write a random-weight generator of this kind to CKPT first")
  a = p.parse_args(argv)
  from affectjax.errors import UserError
  try:
    torch = _torch()
    if a.random:
      torch.save(random_state_dict(a.random), a.ckpt)
    if not os.path.isfile(a.ckpt):
      raise UserError(f"{a.ckpt}: no such file")
    try:
      sd = torch.load(a.ckpt, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises several types for a bad file
      raise UserError(f"{a.ckpt} cannot be read as a PyTorch state dict ({type(e).__name__})") from None
    sd = {k.removeprefix("module."): v.detach().cpu().numpy() for k, v in sd.get("state_dict", sd).items()}
    m = re.match(r"(\d+)-G\.ckpt$", os.path.basename(a.ckpt))
    step = a.step if a.step is not None else (int(m.group(1)) if m else 1)
    convert(sd, a.workdir, a.image_size, step, source=os.path.abspath(a.ckpt))
    info = describe(sd)
    print(f"wrote {a.workdir}: {info['space']} GANmut, {info['num_classes']} classes, conv_dim "
          f"{info['conv_dim']}, {info['repeat_num']} residual blocks, step {step}")
    if a.check:
      diffs = check(sd, a.workdir, a.image_size)
      print("max |affectjax - PyTorch|: " + ", ".join(f"{k} {v:.3g}" for k, v in diffs.items()))
  except UserError as e:
    print(f"affectjax: error: {e}", file=sys.stderr)
    return 1
  return 0


if __name__ == "__main__":
  sys.exit(main())
