"""ResNet-18 for 32x32 images (CIFAR variant: 3x3 stem, no max-pool), in Flax NNX."""

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["BasicBlock", "ResNet18"]


class BasicBlock(nnx.Module):
    """Basic residual block: two 3x3 conv + BatchNorm, a 1x1 conv + BatchNorm shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(c_in, c_out, (3, 3), strides=(stride, stride), use_bias=False, rngs=rngs)
        self.bn1 = nnx.BatchNorm(c_out, rngs=rngs)
        self.conv2 = nnx.Conv(c_out, c_out, (3, 3), use_bias=False, rngs=rngs)
        self.bn2 = nnx.BatchNorm(c_out, rngs=rngs)
        if stride != 1 or c_in != c_out:
            self.shortcut = nnx.Conv(c_in, c_out, (1, 1), strides=(stride, stride), use_bias=False, rngs=rngs)
            self.shortcut_bn = nnx.BatchNorm(c_out, rngs=rngs)
        else:
            self.shortcut = None

    def features(self, x):
        """(block output, the inner activation after conv1/bn1/relu) - the inner one for activation matching."""
        inner = jax.nn.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(inner))
        skip = x if self.shortcut is None else self.shortcut_bn(self.shortcut(x))
        return jax.nn.relu(y + skip), inner

    def __call__(self, x):
        return self.features(x)[0]


class ResNet18(nnx.Module):
    """ResNet-18 (He et al. 2016) for small images; `width` scales every stage (64 is the standard)."""

    def __init__(self, num_classes: int = 10, *, in_channels: int = 3, width: int = 64, rngs: nnx.Rngs):
        if width <= 0 or num_classes <= 0 or in_channels <= 0:
            raise ValueError("num_classes, in_channels and width must be positive")
        self.stem = nnx.Conv(in_channels, width, (3, 3), use_bias=False, rngs=rngs)
        self.stem_bn = nnx.BatchNorm(width, rngs=rngs)
        blocks, c_in = [], width
        for stage, c_out in enumerate((width, 2 * width, 4 * width, 8 * width)):
            for i in range(2):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(c_in, c_out, stride, rngs=rngs))
                c_in = c_out
        self.blocks = nnx.List(blocks)
        self.head = nnx.Linear(c_in, num_classes, rngs=rngs)

    def __call__(self, x):
        if x.ndim != 4:
            raise ValueError(f"x must be NHWC images, got shape {x.shape}")
        x = jax.nn.relu(self.stem_bn(self.stem(x)))
        for block in self.blocks:
            x = block(x)
        return self.head(jnp.mean(x, axis=(1, 2)))
