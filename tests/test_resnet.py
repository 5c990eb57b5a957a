"""ResNet-18 (affectjax.nn.resnet): torchvision's parameter count, the torchvision .npz loader's
layout, a tiny forward pass; and SWA (affectjax.swa) against numpy."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from affectjax import swa
from affectjax.nn import resnet

TORCHVISION_RESNET18_PARAMS = 11_689_512  # torchvision.models.resnet18(num_classes=1000)


def _count(tree):
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(tree))


def _torchvision_count_by_hand(num_classes=1000):
  """ResNet-18 parameters layer by layer: bias-free convs, BN (weight, bias), fc (weight, bias)."""
  conv = lambda cin, cout, k: cin * cout * k * k  # noqa: E731
  bn = lambda c: 2 * c  # noqa: E731
  n = conv(3, 64, 7) + bn(64)
  cin = 64
  for width in (64, 128, 256, 512):
    for j in range(2):
      n += conv(cin, width, 3) + bn(width) + conv(width, width, 3) + bn(width)
      if cin != width:
        n += conv(cin, width, 1) + bn(width)
      cin = width
  return n + 512 * num_classes + num_classes


def test_param_count_equals_torchvision():
  assert _torchvision_count_by_hand() == TORCHVISION_RESNET18_PARAMS
  model = resnet.ResNet18(num_classes=1000, va_head=False)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  assert _count(shapes["params"]) == TORCHVISION_RESNET18_PARAMS
  # The 7x7/2 stem + max-pool path on 64 px: /32 overall, as torchvision.
  out = jax.eval_shape(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]),
                       shapes, jnp.zeros((2, 64, 64, 3)))
  assert out[0][0].shape == (2, 1000) and out[0][1] is None and out[0][2].shape == (2, 512)
  with_va = resnet.ResNet18(num_classes=8)
  shapes8 = jax.eval_shape(lambda: with_va.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  assert _count(shapes8["params"]) == TORCHVISION_RESNET18_PARAMS - 1000 * 513 + 8 * 513 + 2 * 513


@pytest.fixture(scope="module")
def small():
  model = resnet.ResNet18(num_classes=8, small_input=True, dtype=jnp.bfloat16)
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)), jnp.float32)
  # Random values of the right shapes (compiling init for a test costs seconds on 2 cores).
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x))
  rng = np.random.default_rng(0)
  variables = jax.tree_util.tree_map_with_path(
      lambda p, s: (np.ones if p[-1].key == "var" else
                    lambda shape, dtype: (0.05 * rng.normal(size=shape)).astype(dtype))(
          s.shape, s.dtype), shapes)
  return model, variables, x


def test_forward_small_input_bf16(small):
  model, variables, x = small
  assert all(v.dtype == jnp.float32 for v in jax.tree_util.tree_leaves(variables))
  (logits, va, feats), updates = jax.jit(
      lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
  assert logits.shape == (2, 8) and va.shape == (2, 2) and feats.shape == (2, 512)
  assert logits.dtype == jnp.float32 and np.all(np.abs(np.asarray(va)) < 1)
  assert np.all(np.isfinite(np.asarray(logits)))
  # Training mode moves the running statistics away from their (0, 1) start.
  assert not np.allclose(updates["batch_stats"]["bn1"]["mean"], 0)


def _to_torch_layout(variables):
  """The state dict torchvision would hold for these Flax variables (inverse of the loader)."""
  sd = {}
  flat = traverse_util.flatten_dict(variables)
  for path, v in flat.items():
    v = np.asarray(v)
    col, *mods, leaf = path
    if mods[0] == "va_head":
      continue
    mods = [m.replace("_", ".") if m.startswith("layer") else m for m in mods]
    mods = [{"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}.get(m, m)
            for m in mods]
    name = ".".join(mods)
    if leaf == "kernel":
      sd[name + ".weight"] = np.transpose(v, (3, 2, 0, 1)) if v.ndim == 4 else v.T
    else:
      sd[name + "." + {"scale": "weight", "bias": "bias", "mean": "running_mean",
                       "var": "running_var"}[leaf]] = v
    if leaf == "mean":
      sd[name + ".num_batches_tracked"] = np.array(7)
  return sd


def test_npz_round_trip(tmp_path, small):
  model, variables, x = small
  rng = np.random.default_rng(5)
  source = jax.tree_util.tree_map(lambda v: rng.normal(size=v.shape).astype(np.float32), variables)
  sd = _to_torch_layout(source)
  assert sd["layer2.0.downsample.0.weight"].shape == (128, 64, 1, 1)  # torchvision's OIHW name
  assert sd["layer4.1.bn2.running_var"].shape == (512,) and sd["fc.weight"].shape == (8, 512)
  np.savez(tmp_path / "r18.npz", **sd)
  loaded, skipped = resnet.load_torchvision_npz(tmp_path / "r18.npz", variables)
  assert skipped == []
  for path, v in traverse_util.flatten_dict(loaded).items():
    expect = traverse_util.flatten_dict(source if "va_head" not in path else variables)[path]
    np.testing.assert_array_equal(np.asarray(v), np.asarray(expect), err_msg="/".join(path))
  # An ImageNet head (1000 classes) is skipped, the backbone still loaded; a wrong backbone
  # shape is an error naming the key.
  sd_1000 = dict(sd, **{"fc.weight": np.zeros((1000, 512), np.float32),
                        "fc.bias": np.zeros(1000, np.float32)})
  loaded2, skipped2 = resnet.torchvision_to_flax(sd_1000, variables)
  assert sorted(skipped2) == ["fc.bias", "fc.weight"]
  np.testing.assert_array_equal(loaded2["params"]["fc"]["kernel"],
                                variables["params"]["fc"]["kernel"])
  np.testing.assert_array_equal(loaded2["params"]["layer3_1"]["conv2"]["kernel"],
                                source["params"]["layer3_1"]["conv2"]["kernel"])
  with pytest.raises(ValueError, match="layer1.0.conv1.weight"):
    resnet.torchvision_to_flax(dict(sd, **{"layer1.0.conv1.weight": np.zeros((64, 64, 1, 1))}),
                               variables)
  with pytest.raises(ValueError, match="lacks"):
    resnet.torchvision_to_flax({k: v for k, v in sd.items() if "layer3.0.bn1" not in k}, variables)


def test_conv_layout_matches_torch_semantics():
  """A torch OIHW kernel moved by the loader computes torch's cross-correlation in Flax."""
  rng = np.random.default_rng(6)
  w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)  # O, I, H, W
  x = rng.normal(size=(1, 5, 6, 3)).astype(np.float32)  # N, H, W, C
  conv = nn.Conv(4, (3, 3), strides=2, padding=1, use_bias=False)
  out = np.asarray(conv.apply({"params": {"kernel": resnet._to_flax_layout("w", w)}}, x))
  xp = np.pad(x[0], ((1, 1), (1, 1), (0, 0)))
  ref = np.zeros((3, 3, 4), np.float32)
  for i in range(3):
    for j in range(3):
      patch = xp[2 * i:2 * i + 3, 2 * j:2 * j + 3]  # [kh, kw, cin]
      ref[i, j] = np.einsum("hwc,ochw->o", patch, w)
  np.testing.assert_allclose(out[0], ref, rtol=1e-5, atol=1e-5)


# --- SWA ---

def test_swa_mean_equals_numpy_mean():
  rng = np.random.default_rng(7)
  snaps = [{"a": rng.normal(size=(3, 2)), "b": {"c": rng.normal(size=4)}} for _ in range(5)]
  state = swa.swa_init(snaps[0])
  assert int(state.count) == 0
  update = jax.jit(swa.swa_update)
  for s in snaps:
    state = update(state, s)
  assert int(state.count) == 5
  np.testing.assert_allclose(state.params["a"], np.mean([s["a"] for s in snaps], 0), rtol=1e-5)
  np.testing.assert_allclose(state.params["b"]["c"], np.mean([s["b"]["c"] for s in snaps], 0),
                             rtol=1e-5)
  same = update(state, snaps[0], False)
  assert int(same.count) == 5
  np.testing.assert_array_equal(same.params["a"], state.params["a"])


class _DenseBN(nn.Module):
  @nn.compact
  def __call__(self, x, train):
    return nn.BatchNorm(use_running_average=not train, momentum=0.9)(nn.Dense(3)(x))


def test_recompute_batch_stats_is_mean_of_batch_statistics():
  model = _DenseBN()
  rng = np.random.default_rng(8)
  batches = [rng.normal(size=(16, 4)).astype(np.float32) + i for i in range(3)]
  variables = model.init(jax.random.key(0), batches[0], train=False)
  stats = swa.recompute_batch_stats(
      lambda v, b: model.apply(v, b, train=True, mutable=["batch_stats"]),
      variables["params"], variables["batch_stats"], batches)
  p = variables["params"]["Dense_0"]
  h = [b @ np.asarray(p["kernel"]) + np.asarray(p["bias"]) for b in batches]
  np.testing.assert_allclose(stats["BatchNorm_0"]["mean"], np.mean([x.mean(0) for x in h], 0),
                             rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(stats["BatchNorm_0"]["var"], np.mean([x.var(0) for x in h], 0),
                             rtol=1e-4, atol=1e-5)
