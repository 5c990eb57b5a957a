"""Converts a user's own torchvision ResNet-18 checkpoint (.pth state dict) into the .npz that
configs/dual_domain.py's model.init_npz reads (affectjax.nn.resnet.load_torchvision_npz).

  python tools/convert_torchvision_resnet18.py resnet18-f37072fd.pth resnet18.npz [--check]

The .npz holds the state dict's tensors under their torchvision names (conv weights OIHW, fc
[out, in]); the layout change to Flax happens when it is loaded. Needs PyTorch and torchvision on
the machine that converts (pip install -e ".[torch]"), not on the one that trains; nothing is
downloaded. --check loads the .npz into affectjax's ResNet18 with the checkpoint's own classes
and prints the largest difference of its logits from torchvision's resnet18 (eval mode) on a
random input, then reports which keys a dual-domain model would re-initialise (fc for 8 classes).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # run as a script from a checkout without `pip install -e .`
  sys.path.insert(0, REPO)


def npz_path(name: str) -> str:
  """The file np.savez writes for `name` (it appends .npz when the name lacks it)."""
  return name if name.endswith(".npz") else name + ".npz"


def logit_difference(sd: dict, npz: str, size: int = 64, batch: int = 2, seed: int = 0) -> float:
  """Max |affectjax ResNet18 - torchvision resnet18| of the logits on one random input, both in
  inference mode, with the weights of the state dict `sd` (torch tensors) and of the .npz."""
  import jax
  import jax.numpy as jnp
  import torch
  import torchvision
  from affectjax.nn.resnet import ResNet18, load_torchvision_npz
  classes = int(sd["fc.weight"].shape[0])
  ref = torchvision.models.resnet18(weights=None, num_classes=classes)
  ref.load_state_dict(sd, strict=True)
  ref.eval()
  x = np.random.default_rng(seed).normal(size=(batch, size, size, 3)).astype(np.float32)
  with torch.no_grad():
    want = ref(torch.as_tensor(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
  model = ResNet18(classes, va_head=False)
  variables = model.init(jax.random.key(0), jnp.zeros((1, size, size, 3)), train=False)
  variables, skipped = load_torchvision_npz(npz, variables)
  if skipped:
    raise ValueError(f"keys not loaded: {skipped}")
  got = np.asarray(model.apply(variables, jnp.asarray(x), train=False)[0])
  return float(np.abs(got - want).max())


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("pth")
  p.add_argument("npz", help="the output (.npz is appended when missing, as np.savez does)")
  p.add_argument("--check", action="store_true")
  p.add_argument("--num_classes", type=int, default=8)
  a = p.parse_args(argv)
  try:
    import torch
  except ImportError:
    sys.exit("convert_torchvision_resnet18: PyTorch is needed to read a .pth file "
             "(pip install -e \".[torch]\")")
  sd = torch.load(a.pth, map_location="cpu", weights_only=True)
  sd = sd.get("state_dict", sd)
  sd = {k.removeprefix("module."): v for k, v in sd.items()}
  arrays = {k: v.detach().cpu().numpy() for k, v in sd.items()}
  out = npz_path(a.npz)
  np.savez(out, **arrays)
  print(f"wrote {len(arrays)} tensors to {out}")
  if a.check:
    import jax
    import jax.numpy as jnp
    from affectjax.nn.resnet import ResNet18, load_torchvision_npz
    if "fc.weight" in sd:
      print(f"max |affectjax - torchvision| of the logits: {logit_difference(sd, out):.3g}")
    model = ResNet18(a.num_classes)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)), train=False)
    _, skipped = load_torchvision_npz(out, variables)
    print(f"maps onto ResNet18({a.num_classes}); re-initialised: {skipped or 'none'}")


if __name__ == "__main__":
  main()
