"""NNX models for the lottery-ticket permutation experiments, with hidden activations per permutation group.

`VGG` and `ResNet20` follow the parameter layout of `jaxsparse.permute.vgg_permutation_spec` and
`resnet20_permutation_spec`; `model_activations` returns, for any supported model (these two and
`jaxsparse.nn.MLP`), the logits and the activations of every permutation group, keyed by the spec's names.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxsparse import permute
from jaxsparse.nn import MLP, BasicBlock

__all__ = ["VGG", "ResNet20", "model_activations", "model_permutation_spec"]


def _check_pos(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _max_pool(x):
    return nnx.max_pool(x, window_shape=(2, 2), strides=(2, 2), padding="SAME")


class VGG(nnx.Module):
    """VGG-style CNN: 3x3 convs (each optionally + BatchNorm, then ReLU), 2x2 max-pools after the convs in
    `pool_after`, global average pooling and a Dense head. Layers live in `layers` in call order.

    Args:
      in_channels: input channels (NHWC).
      num_classes: logits.
      channels: output channels of every conv before `width` scaling.
      width: width multiplier applied to `channels`.
      pool_after: conv indices followed by a max-pool.
      batch_norm: add BatchNorm after every conv (then convs have no bias).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        channels: Sequence[int] = (16, 32, 64, 64),
        width: int = 1,
        pool_after: Sequence[int] = (1,),
        batch_norm: bool = True,
        rngs: nnx.Rngs,
    ):
        _check_pos("in_channels", in_channels)
        _check_pos("num_classes", num_classes)
        _check_pos("width", width)
        channels = tuple(_check_pos("channels", c) * width for c in channels)
        if not channels:
            raise ValueError("channels must be non-empty")
        layers, c_in = [], in_channels
        for c in channels:
            layers.append(nnx.Conv(c_in, c, (3, 3), use_bias=not batch_norm, rngs=rngs))
            if batch_norm:
                layers.append(nnx.BatchNorm(c, rngs=rngs))
            c_in = c
        layers.append(nnx.Linear(c_in, num_classes, rngs=rngs))
        self.layers = nnx.List(layers)
        self.num_convs = len(channels)
        self.pool_after = tuple(int(p) for p in pool_after)
        self.batch_norm = bool(batch_norm)
        if any(not 0 <= p < len(channels) for p in self.pool_after):
            raise ValueError(f"pool_after must index convs 0..{len(channels) - 1}, got {self.pool_after}")

    def _forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"x must be NHWC images, got shape {x.shape}")
        acts, j = {}, 0
        for c in range(self.num_convs):
            x = self.layers[j](x)
            j += 1
            if self.batch_norm:
                x = self.layers[j](x)
                j += 1
            x = jax.nn.relu(x)
            acts[f"P_{c}"] = x
            if c in self.pool_after:
                x = _max_pool(x)
        return self.layers[j](jnp.mean(x, axis=(1, 2))), acts

    def __call__(self, x):
        return self._forward(x)[0]


class ResNet20(nnx.Module):
    """CIFAR ResNet-20 (He et al. 2016; REPAIR / sparse-rebasin variant with BatchNorm): a 3x3 stem, three
    stages of `blocks_per_stage` basic blocks at 16, 32, 64 channels times `width`, stride-2 stage entries
    with a 1x1 conv + BatchNorm shortcut, global average pooling and a Dense head.
    """

    def __init__(
        self,
        num_classes: int = 10,
        *,
        in_channels: int = 3,
        width: int = 1,
        blocks_per_stage: int = 3,
        rngs: nnx.Rngs,
    ):
        _check_pos("num_classes", num_classes)
        _check_pos("in_channels", in_channels)
        _check_pos("width", width)
        _check_pos("blocks_per_stage", blocks_per_stage)
        c = 16 * width
        self.stem = nnx.Conv(in_channels, c, (3, 3), use_bias=False, rngs=rngs)
        self.stem_bn = nnx.BatchNorm(c, rngs=rngs)
        blocks, c_in = [], c
        for stage in range(3):
            c_out = c * 2**stage
            for b in range(blocks_per_stage):
                stride = 2 if stage > 0 and b == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride, rngs=rngs))
                c_in = c_out
        self.blocks = nnx.List(blocks)
        self.blocks_per_stage = blocks_per_stage
        self.head = nnx.Linear(c_in, num_classes, rngs=rngs)

    def _forward(self, x):
        if x.ndim != 4:
            raise ValueError(f"x must be NHWC images, got shape {x.shape}")
        x = jax.nn.relu(self.stem_bn(self.stem(x)))
        # A residual stream's permutation is shared by every tensor of the stream: its statistics pool the
        # stem/block outputs of the stage (pixels and positions are all samples).
        streams: dict[str, list] = {"stage_0": [x.reshape(-1, x.shape[-1])]}
        acts = {}
        for i, block in enumerate(self.blocks):
            x, inner = block.features(x)
            acts[f"block_{i}_inner"] = inner
            streams.setdefault(f"stage_{i // self.blocks_per_stage}", []).append(x.reshape(-1, x.shape[-1]))
        for name, parts in streams.items():
            acts[name] = jnp.concatenate(parts, axis=0)
        return self.head(jnp.mean(x, axis=(1, 2))), acts

    def __call__(self, x):
        return self._forward(x)[0]


def _mlp_forward(model: MLP, x):
    x = x.reshape(x.shape[0], -1)
    acts = {}
    for i, layer in enumerate(model.layers[:-1]):
        x = jax.nn.relu(layer(x))
        acts[f"P_{i}"] = x
    return model.layers[-1](x), acts


def model_activations(model, x) -> tuple[jax.Array, dict]:
    """(logits, {permutation name: activations [..., channels]}) for `MLP`, `VGG` or `ResNet20`."""
    if isinstance(model, MLP):
        return _mlp_forward(model, x)
    if isinstance(model, VGG | ResNet20):
        return model._forward(x)
    raise TypeError(f"model_activations supports MLP, VGG and ResNet20, got {type(model).__name__}")


def model_permutation_spec(model) -> permute.PermutationSpec:
    """The permutation spec of a supported model (derived from the chain for MLP and VGG)."""
    if isinstance(model, ResNet20):
        return permute.resnet20_permutation_spec(blocks_per_stage=model.blocks_per_stage)
    if isinstance(model, MLP | VGG):
        return permute.permutation_spec_from_model(model)
    raise TypeError(f"model_permutation_spec supports MLP, VGG and ResNet20, got {type(model).__name__}")
