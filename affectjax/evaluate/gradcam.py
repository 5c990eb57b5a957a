"""Grad-CAM (Selvaraju et al. 2017) on ResNet-18 and its figure (dual_domain_fusion.md Figure 6)."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

__all__ = ["gradcam", "gradcam_figure"]


def gradcam(model, variables, images, classes):
  """Grad-CAM on ResNet-18's (nn/resnet.py) last convolutional block, [N, h, w] in [0, 1].

  The head is global average pooling + a linear layer, so d logit_c / d A_k averaged over the map
  is w_{k,c} / (h w) exactly, and Grad-CAM = ReLU(sum_k w_{k,c} A_k) / (h w), normalised per image.
  """
  last = f"layer{len(model.stage_sizes)}_{model.stage_sizes[-1] - 1}"
  _, inter = model.apply(variables, jnp.asarray(images), train=False,
                         capture_intermediates=lambda mdl, name: mdl.name == last and name == "__call__",
                         mutable=["intermediates"])
  fmap = np.asarray(inter["intermediates"][last]["__call__"][0], np.float32)  # [N, h, w, K]
  w = np.asarray(variables["params"]["fc"]["kernel"], np.float32)[:, np.asarray(classes)]  # [K, N]
  cam = np.maximum(np.einsum("nhwk,kn->nhw", fmap, w), 0.0)
  return cam / np.maximum(cam.max(axis=(1, 2), keepdims=True), 1e-12)


def gradcam_figure(path, images, cams, labels, preds):
  """A PNG: the images above, their Grad-CAM maps over them below, titled true -> predicted."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from affectjax.data.example import EMOTIONS
  n = len(images)
  fig, axes = plt.subplots(2, n, figsize=(1.6 * n, 3.4), squeeze=False)
  for i in range(n):
    img = np.clip((np.asarray(images[i]) + 1) / 2, 0, 1)
    h, w = img.shape[:2]
    cam = np.kron(cams[i], np.ones((h // cams[i].shape[0], w // cams[i].shape[1])))
    axes[0, i].imshow(img)
    axes[1, i].imshow(img)
    axes[1, i].imshow(cam, cmap="jet", alpha=0.45, extent=(0, w, h, 0))
    axes[0, i].set_title(f"{EMOTIONS[labels[i]][:4] if labels[i] >= 0 else '?'}->"
                         f"{EMOTIONS[preds[i]][:4]}", fontsize=7)
    for a in axes[:, i]:
      a.axis("off")
  fig.suptitle("Grad-CAM (true -> predicted)", fontsize=9)
  fig.savefig(path, dpi=110, bbox_inches="tight")
  plt.close(fig)
