"""Small Flax NNX models shared by the reproductions (valid in NNX tree mode: no sharing, no sow)."""

import itertools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["MLP", "SmallCNN"]


def _check_positive_ints(name: str, values) -> tuple[int, ...]:
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int | np.integer) or v <= 0 for v in values):
        raise ValueError(f"{name} must be a non-empty sequence of positive ints, got {values!r}")
    return tuple(int(v) for v in values)


class MLP(nnx.Module):
    """ReLU multilayer perceptron: in_features -> hidden... -> num_classes (logits)."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, *, rngs: nnx.Rngs):
        sizes = _check_positive_ints("sizes", (in_features, *hidden, num_classes))
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)])

    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x)


class SmallCNN(nnx.Module):
    """Three 3x3 conv layers (the second strided) and a linear head, for small NHWC images such as digits."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        image_size: int,
        channels: Sequence[int] = (16, 32, 32),
        rngs: nnx.Rngs,
    ):
        c1, c2, c3 = _check_positive_ints("channels", channels)
        _check_positive_ints("in_channels/num_classes/image_size", (in_channels, num_classes, image_size))
        self.conv1 = nnx.Conv(in_channels, c1, kernel_size=(3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(c1, c2, kernel_size=(3, 3), strides=(2, 2), rngs=rngs)
        self.conv3 = nnx.Conv(c2, c3, kernel_size=(3, 3), rngs=rngs)
        side = -(-image_size // 2)
        self.head = nnx.Linear(side * side * c3, num_classes, rngs=rngs)

    def __call__(self, x):
        if x.ndim != 4:
            raise ValueError(f"x must be NHWC images, got shape {x.shape}")
        x = jax.nn.relu(self.conv1(x))
        x = jax.nn.relu(self.conv2(x))
        x = jax.nn.relu(self.conv3(x))
        return self.head(jnp.reshape(x, (x.shape[0], -1)))
