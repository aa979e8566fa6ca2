"""A small pre-LN Vision Transformer in Flax NNX, for tiny images such as the 8x8 digits.

Built so that other code can work block by block without touching this module:

* `ViT.embed`, `ViT.block_forward` and `ViT.head_forward` expose the forward pass in pieces, so a caller
  can capture every block's input and output (e.g. to fit a compressed replacement with teacher forcing).
  `ViT.__call__` is exactly their composition.
* Every block's MLP is called as `mlp(x, mlp_bases=...)`. The dense `MLP` ignores the argument; a
  compressed MLP that is swapped in can read model-level shared bases from it. The bases live once on
  the model (`ViT.mlp_bases`) and are passed down per call rather than stored in each block, because
  NNX tree mode forbids referencing one Variable from several places.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from jaxsparse._checks import check_int

__all__ = ["MLP", "TransformerBlock", "ViT"]


class MLP(nnx.Module):
    """The transformer MLP: `fc2(activation(fc1(x)))`, with `fc1` d -> hidden and `fc2` hidden -> d.

    `activation` defaults to `jax.nn.gelu` (the tanh approximation, JAX's default). It is kept as an
    attribute so that code replacing this MLP by a compressed one can reuse exactly the same nonlinearity.
    """

    def __init__(self, dim: int, hidden: int, *, activation=jax.nn.gelu, rngs: nnx.Rngs):
        dim = check_int(dim, "dim", minimum=1)
        hidden = check_int(hidden, "hidden", minimum=1)
        if not callable(activation):
            raise ValueError(f"activation must be callable, got {activation!r}")
        self.activation = activation
        self.fc1 = nnx.Linear(dim, hidden, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, dim, rngs=rngs)

    def __call__(self, x, mlp_bases=None):
        # `mlp_bases` is accepted (and ignored) so that dense and compressed MLPs share one call signature.
        del mlp_bases
        return self.fc2(self.activation(self.fc1(x)))


class TransformerBlock(nnx.Module):
    """Pre-LN block: `x + attn(ln1(x))`, then `+ mlp(ln2(.), mlp_bases=mlp_bases)`."""

    def __init__(self, dim: int, heads: int, hidden: int, *, rngs: nnx.Rngs):
        dim = check_int(dim, "dim", minimum=1)
        heads = check_int(heads, "heads", minimum=1)
        if dim % heads:
            raise ValueError(f"dim must be divisible by heads, got dim={dim}, heads={heads}")
        self.ln1 = nnx.LayerNorm(dim, rngs=rngs)
        # No dropout, so the attention needs no RNG state of its own (keep_rngs=False keeps the model's
        # state to parameters only); decode=False: full self-attention, no KV cache.
        self.attn = nnx.MultiHeadAttention(
            num_heads=heads,
            in_features=dim,
            qkv_features=dim,
            out_features=dim,
            decode=False,
            keep_rngs=False,
            rngs=rngs,
        )
        self.ln2 = nnx.LayerNorm(dim, rngs=rngs)
        self.mlp = MLP(dim, hidden, rngs=rngs)

    def __call__(self, x, mlp_bases=None):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x), mlp_bases=mlp_bases)


class ViT(nnx.Module):
    """Vision Transformer: non-overlapping patches -> linear embedding + [CLS] + learned positions ->
    `depth` pre-LN blocks -> LayerNorm -> linear head on the [CLS] token.

    Attributes:
        patch_embed: `nnx.Linear` from a flattened `patch_size x patch_size x channels` patch to `dim`.
        cls_token: `nnx.Param` of shape `(1, 1, dim)`.
        pos_embed: `nnx.Param` of shape `(1, num_patches + 1, dim)` ([CLS] first).
        blocks: `nnx.List` of `depth` `TransformerBlock`s.
        norm: final `nnx.LayerNorm`.
        head: `nnx.Linear` from `dim` to `num_classes`.
        mlp_bases: None, or whatever a caller stores there (e.g. an `nnx.List` of `nnx.Param`); passed
            unchanged to every block's MLP. It is registered as pytree data, so assigning Variables to it
            later makes them part of the model's state (split/merge, `nnx.jit`, optimizers).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        image_size: int = 8,
        patch_size: int = 2,
        channels: int = 1,
        dim: int = 64,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: int = 4,
        rngs: nnx.Rngs,
    ):
        num_classes = check_int(num_classes, "num_classes", minimum=1)
        image_size = check_int(image_size, "image_size", minimum=1)
        patch_size = check_int(patch_size, "patch_size", minimum=1)
        channels = check_int(channels, "channels", minimum=1)
        dim = check_int(dim, "dim", minimum=1)
        depth = check_int(depth, "depth", minimum=1)
        heads = check_int(heads, "heads", minimum=1)
        mlp_ratio = check_int(mlp_ratio, "mlp_ratio", minimum=1)
        if image_size % patch_size:
            raise ValueError(
                f"image_size must be divisible by patch_size, got image_size={image_size}, patch_size={patch_size}"
            )
        if dim % heads:
            raise ValueError(f"dim must be divisible by heads, got dim={dim}, heads={heads}")
        self.num_classes = num_classes
        self.image_size = image_size
        self.patch_size = patch_size
        self.channels = channels
        self.dim = dim
        self.depth = depth
        self.heads = heads
        self.mlp_ratio = mlp_ratio
        self.num_patches = (image_size // patch_size) ** 2

        self.patch_embed = nnx.Linear(patch_size * patch_size * channels, dim, rngs=rngs)
        # Small random [CLS] and position embeddings, as in the original ViT (truncated normal, std 0.02).
        init = jax.nn.initializers.truncated_normal(stddev=0.02)
        self.cls_token = nnx.Param(init(rngs.params(), (1, 1, dim)))
        self.pos_embed = nnx.Param(init(rngs.params(), (1, self.num_patches + 1, dim)))
        self.blocks = nnx.List([TransformerBlock(dim, heads, dim * mlp_ratio, rngs=rngs) for _ in range(depth)])
        self.norm = nnx.LayerNorm(dim, rngs=rngs)
        self.head = nnx.Linear(dim, num_classes, rngs=rngs)
        # A bare None would be recorded as a static attribute, and flax then refuses to assign Variables to
        # it later; nnx.data marks it as pytree data so FiPS can set `model.mlp_bases = nnx.List([...])`.
        self.mlp_bases = nnx.data(None)

    @property
    def num_tokens(self) -> int:
        """Tokens per image: the patches plus [CLS]."""
        return self.num_patches + 1

    def _as_nhwc(self, images) -> jax.Array:
        """`images` as float `(B, H, W, C)`, accepting `(B, H, W, C)`, or `(B, H, W)` / `(B, H*W)` when C == 1."""
        images = jnp.asarray(images)
        s, c = self.image_size, self.channels
        shape = tuple(images.shape)
        if images.ndim == 4 and shape[1:] == (s, s, c):
            out = images
        elif c == 1 and images.ndim == 3 and shape[1:] == (s, s):
            out = images[..., None]
        elif c == 1 and images.ndim == 2 and shape[1] == s * s:
            # Flattened row-major images, as `load_digits_split(flatten=True)` returns them.
            out = images.reshape(shape[0], s, s, 1)
        else:
            accepted = f"(B, {s}, {s}, {c})"
            if c == 1:
                accepted += f", (B, {s}, {s}) or (B, {s * s})"
            raise ValueError(f"images must have shape {accepted}, got {shape}")
        if not jnp.issubdtype(out.dtype, jnp.floating):
            out = out.astype(jnp.float32)
        return out

    def embed(self, images) -> jax.Array:
        """Patchifies `images`, embeds the patches, prepends [CLS] and adds positions: `(B, T, dim)`."""
        x = self._as_nhwc(images)
        b, p, g = x.shape[0], self.patch_size, self.image_size // self.patch_size
        # (B, H, W, C) -> (B, g, p, g, p, C) -> (B, g, g, p, p, C): patches in row-major grid order, each
        # flattened row-major within the patch.
        x = x.reshape(b, g, p, g, p, self.channels).transpose(0, 1, 3, 2, 4, 5)
        x = self.patch_embed(x.reshape(b, g * g, p * p * self.channels))
        cls = jnp.broadcast_to(self.cls_token[...].astype(x.dtype), (b, 1, self.dim))
        return jnp.concatenate([cls, x], axis=1) + self.pos_embed[...]

    def block_forward(self, i: int, tokens) -> jax.Array:
        """Applies block `i` to `tokens`, handing it the model-level `mlp_bases`."""
        return self.blocks[i](tokens, mlp_bases=self.mlp_bases)

    def head_forward(self, tokens) -> jax.Array:
        """Final LayerNorm, [CLS] token, linear head: logits `(B, num_classes)`."""
        return self.head(self.norm(tokens[:, 0]))

    def __call__(self, images) -> jax.Array:
        tokens = self.embed(images)
        for i in range(len(self.blocks)):
            tokens = self.block_forward(i, tokens)
        return self.head_forward(tokens)
