"""Converts a user's own torchvision ResNet-18 checkpoint (.pth state dict) into the .npz that
configs/dual_domain.py's model.init_npz reads (affectjax.nn.resnet.load_torchvision_npz).

  python tools/convert_torchvision_resnet18.py resnet18-f37072fd.pth resnet18.npz [--check]

The .npz holds the state dict's tensors under their torchvision names (conv weights OIHW, fc
[out, in]); the layout change to Flax happens when it is loaded. Needs PyTorch on the machine that
converts (not on the one that trains); nothing is downloaded. --check also maps it onto a Flax
ResNet18 and reports which keys a dual-domain model would re-initialise (fc for 8 classes).
"""
from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("pth")
  p.add_argument("npz")
  p.add_argument("--check", action="store_true")
  p.add_argument("--num_classes", type=int, default=8)
  a = p.parse_args(argv)
  try:
    import torch
  except ImportError:
    sys.exit("convert_torchvision_resnet18: PyTorch is needed to read a .pth file (pip install torch)")
  sd = torch.load(a.pth, map_location="cpu", weights_only=True)
  sd = sd.get("state_dict", sd)
  arrays = {k.removeprefix("module."): v.detach().cpu().numpy() for k, v in sd.items()}
  np.savez(a.npz, **arrays)
  print(f"wrote {len(arrays)} tensors to {a.npz}")
  if a.check:
    import jax
    import jax.numpy as jnp
    from affectjax.nn.resnet import ResNet18, load_torchvision_npz
    model = ResNet18(a.num_classes)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)), train=False)
    _, skipped = load_torchvision_npz(a.npz, variables)
    print(f"maps onto ResNet18({a.num_classes}); re-initialised: {skipped or 'none'}")


if __name__ == "__main__":
  main()
