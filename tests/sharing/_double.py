"""A tiny transformer test double following the FiPS model protocol (`jaxsparse.sharing`): blocks whose `mlp`
has `fc1`/`fc2` `nnx.Linear`s and takes `mlp_bases`, a `mlp_bases` attribute that starts as None, and
`embed` / `block_forward` / `head_forward`. Two stages of different width (the first block of stage 2
downsamples inside its forward, like Swin's patch merging), so groups crossing a width change can be tested.
"""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

PATCH = 6  # features per input token
TOKENS = 4


def exact_gelu(x):
    return jax.nn.gelu(x, approximate=False)


def _linear(n_in: int, n_out: int, rng: np.random.Generator):
    """nnx.Linear with a numpy-drawn kernel: jax.random's initializers compile once per shape (slow on CPU)."""

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.asarray(rng.standard_normal(shape) / np.sqrt(shape[0]), dtype)

    return nnx.Linear(n_in, n_out, kernel_init=init, rngs=nnx.Rngs(0))


class DoubleMLP(nnx.Module):
    def __init__(self, d: int, hidden: int, *, rng: np.random.Generator):
        self.fc1 = _linear(d, hidden, rng)
        self.fc2 = _linear(hidden, d, rng)

    def __call__(self, x, mlp_bases=None):
        del mlp_bases  # a dense MLP ignores the shared bases
        return self.fc2(exact_gelu(self.fc1(x)))


class DoubleBlock(nnx.Module):
    def __init__(self, d: int, hidden: int, *, d_in: int | None = None, rng: np.random.Generator):
        self.down = _linear(d_in, d, rng) if d_in is not None else None
        self.norm1 = nnx.LayerNorm(d, rngs=nnx.Rngs(0))
        self.mix = _linear(d, d, rng)  # stands in for attention: frozen during reconstruction
        self.norm2 = nnx.LayerNorm(d, rngs=nnx.Rngs(0))
        self.mlp = DoubleMLP(d, hidden, rng=rng)

    def __call__(self, x, mlp_bases=None):
        if self.down is not None:
            x = self.down(x)
        x = x + jnp.mean(self.mix(self.norm1(x)), axis=1, keepdims=True)  # token mixing
        return x + self.mlp(self.norm2(x), mlp_bases=mlp_bases)


class TinyTransformer(nnx.Module):
    def __init__(self, widths=(8, 8, 16, 16), *, num_classes: int = 3, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.patch = _linear(PATCH, widths[0], rng)
        blocks = []
        for i, d in enumerate(widths):
            d_in = widths[i - 1] if i and widths[i - 1] != d else None
            blocks.append(DoubleBlock(d, 4 * d, d_in=d_in, rng=rng))
        self.blocks = nnx.List(blocks)
        self.head = _linear(widths[-1], num_classes, rng)
        self.mlp_bases = None
        # Non-zero MLP biases, so that copying them is checked.
        for block in blocks:
            for layer in (block.mlp.fc1, block.mlp.fc2):
                layer.bias[...] = jnp.asarray(0.1 * rng.standard_normal(layer.bias[...].shape), jnp.float32)

    def embed(self, images):
        return self.patch(images)

    def block_forward(self, i: int, tokens):
        return self.blocks[i](tokens, mlp_bases=self.mlp_bases)

    def head_forward(self, tokens):
        return self.head(jnp.mean(tokens, axis=1))

    def __call__(self, images):
        tokens = self.embed(images)
        for i in range(len(self.blocks)):
            tokens = self.block_forward(i, tokens)
        return self.head_forward(tokens)


_TEMPLATE = []


def tiny_transformer() -> TinyTransformer:
    """A fresh copy of one cached double: nnx's random init compiles per parameter shape, which is slow on CPU."""
    if not _TEMPLATE:
        _TEMPLATE.append(TinyTransformer())
    return nnx.clone(_TEMPLATE[0])


def images(n: int = 32, seed: int = 0):
    return np.random.default_rng(seed).standard_normal((n, TOKENS, PATCH)).astype(np.float32)
