"""Block-wise reconstruction of a FiPS-compressed transformer (fips.md §6, `training/distil.py`).

Teacher forcing: every block b of the compressed model sees the original model's input of block b and is
trained to reproduce the original output of block b (MSE over tokens x features); the errors of all blocks are
summed and backpropagated once, and all groups train jointly. Only the FiPS trainables (`FiPSParam`: shared
bases, factors, copied MLP biases) change; attention, norms, embeddings and head stay frozen.
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from tqdm.auto import tqdm

from jaxsparse import dst
from jaxsparse._checks import check_int
from jaxsparse.masks import apply_masks

from ._compress import _path_key
from ._gmp import GMPState, gradual_magnitude_pruning
from ._layer import FiPSParam

__all__ = ["SPARSIFIERS", "cache_block_io", "reconstruct", "reconstruction_loss"]

SPARSIFIERS = ("rigl", "gmp", "static")

_is_none = lambda x: x is None


def _check_protocol(model, *methods: str):
    for name in ("blocks", *methods):
        if not hasattr(model, name):
            raise ValueError(f"model must have `{name}` (the FiPS model protocol, see jaxsparse.sharing)")


def cache_block_io(model, images, *, batch_size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Teacher signals of the ORIGINAL (uncompressed) model: every block's input and output.

    Runs `model.embed` and then `model.block_forward(i, tokens)` block after block (each block fed the
    original output of the previous one, downsampling included in `block_forward`), in batches, jitted, and
    collects the activations on the host (a calibration set of activations can exceed device memory).

    Args:
      model: the original model (before `compress_mlps`).
      images: [N, ...] array of inputs for `model.embed`.
      batch_size: images per forward pass.

    Returns:
      (inputs, outputs): lists with one float array [N, T_i, d_i] per block. `inputs[0]` is the embedding
      output and `inputs[i + 1] is outputs[i]` (the same array, stored once).
    """
    _check_protocol(model, "embed", "block_forward")
    if getattr(model, "mlp_bases", None) is not None:
        raise ValueError("cache_block_io records the teacher: run it on the original model, before compress_mlps")
    if not hasattr(images, "shape") or len(images) == 0:
        raise ValueError(f"images must be a non-empty array [N, ...], got {type(images).__name__}")
    n = len(images)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    n_blocks = len(model.blocks)
    graphdef, state = nnx.split(model)

    @jax.jit
    def embed(state, x):
        return nnx.merge(graphdef, state).embed(x)

    @jax.jit
    def forward(state, tokens):
        outs = []
        m = nnx.merge(graphdef, state)
        for i in range(n_blocks):
            tokens = m.block_forward(i, tokens)
            outs.append(tokens)
        return outs

    first, acts = None, None
    for start in range(0, n, batch_size):
        x = jnp.asarray(images[start : start + batch_size])
        tokens = embed(state, x)
        outs = jax.device_get(forward(state, tokens))
        tokens = np.asarray(jax.device_get(tokens))
        if acts is None:  # shapes known after the first batch: fill preallocated arrays, no concatenation copy
            first = np.empty((n, *tokens.shape[1:]), tokens.dtype)
            acts = [np.empty((n, *o.shape[1:]), o.dtype) for o in outs]
        first[start : start + len(x)] = tokens
        for a, o in zip(acts, outs, strict=True):
            a[start : start + len(x)] = o
    return [first, *acts[:-1]], acts


def reconstruction_loss(model, inputs: Sequence, outputs: Sequence):
    """Sum over blocks i of mean((block_forward(i, inputs[i]) - outputs[i])^2), the mean over batch, tokens
    and features (fips.md §6)."""
    _check_protocol(model, "block_forward")
    if len(inputs) != len(outputs) or not 0 < len(inputs) <= len(model.blocks):
        raise ValueError(
            f"need one input and one output array per block ({len(model.blocks)} blocks), "
            f"got {len(inputs)} and {len(outputs)}"
        )
    total = jnp.zeros((), jnp.float32)
    for i, (x, y) in enumerate(zip(inputs, outputs, strict=True)):
        pred = model.block_forward(i, x)
        if pred.shape != y.shape:
            raise ValueError(f"block {i} returns shape {pred.shape} but outputs[{i}] has {y.shape}")
        total = total + jnp.mean(jnp.square(pred.astype(jnp.float32) - y.astype(jnp.float32)))
    return total


def _masks_like(template, masks, *, name: str = "masks", missing_ok: bool = False):
    """Masks in `template`'s structure looked up by path in `masks` (a tree over the same model, whole or a
    subset): lets `compress_mlps`' whole-model masks drive an optimizer over the trainable subset and back."""
    by_path = {_path_key(path): m for path, m in jax.tree_util.tree_flatten_with_path(masks, is_leaf=_is_none)[0]}

    def one(path, leaf):
        key = _path_key(path)
        if key not in by_path:
            if missing_ok:
                return None
            raise ValueError(f"{name} has no entry for {'/'.join(map(str, key))} (use the masks from compress_mlps)")
        m = by_path[key]
        if m is not None and tuple(np.shape(m)) != tuple(np.shape(leaf)):
            raise ValueError(f"{name} at {'/'.join(map(str, key))} has shape {np.shape(m)}, params {np.shape(leaf)}")
        return None if m is None else jnp.asarray(m, bool)

    return jax.tree_util.tree_map_with_path(one, template)


def _check_key(key):
    if not isinstance(key, jax.Array) or not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        raise ValueError(f"key must be a typed PRNG key from jax.random.key, got {key!r}")
    return key


def reconstruct(
    model,
    inputs: Sequence,
    outputs: Sequence,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    key,
    masks,
    sparsifier: str = "rigl",
    weight_decay: float = 0.05,
    end_lr_factor: float = 1e-3,
    update_every: int = 50,
    end_fraction: float = 0.75,
    drop_fraction: float = 0.1,
    final_sparsity: float | None = None,
    initial_sparsity: float = 0.0,
    accelerated_sparsity: float | None = None,
    accel_step: int = 0,
    progress: bool = True,
) -> dict:
    """Trains the FiPS trainables of `model` in place to reproduce every block's original output.

    AdamW (betas 0.9/0.999, eps 1e-8) with cosine decay from `learning_rate` to `end_lr_factor *
    learning_rate` over `steps`, wrapped in the sparsifier, which keeps the factors exactly sparse (pruned
    weights are exactly 0 after every step):
    - "rigl": `jaxsparse.dst.rigl` started from `masks` (every ΔT = `update_every` steps until
      `end_fraction * steps`, cosine drop fraction from `drop_fraction`, regrown weights start at 0); each
      factor keeps its nnz, so the per-layer distribution of the global initial masks is kept.
    - "gmp": `gradual_magnitude_pruning` from `masks` (give `final_sparsity`; compress with
      `mask_sparsity=initial_sparsity`) to `final_sparsity` at `end_fraction * steps`, global over all factors.
    - "static": the masks stay fixed (`jaxsparse.dst.static_sparse`).
    Frozen: every variable that is not a `FiPSParam`. One jitted step per batch; the batches are drawn by a
    permutation per epoch seeded from `key`.

    Args:
      model: a model compressed by `compress_mlps`.
      inputs, outputs: `cache_block_io` of the original model.
      steps, batch_size, learning_rate: the schedule (Swin-L: 600 steps, batch 128, 1e-3 -> 1e-6).
      key: typed PRNG key (batch order, RigL's state).
      masks: the factor masks, e.g. `compress_mlps(...)["masks"]` (any tree over the same model's params).
      sparsifier: "rigl", "gmp" or "static".
      weight_decay: AdamW's decoupled weight decay.
      end_lr_factor: final / initial learning rate.
      update_every, end_fraction, drop_fraction: the mask-update schedule (RigL and GMP).
      final_sparsity, initial_sparsity, accelerated_sparsity, accel_step: the GMP schedule (`gmp_sparsity`).
      progress: show a tqdm bar.

    Returns:
      {"loss_curve": per-step losses (before each step's update), "masks": final masks in the structure of
      `nnx.as_pure(nnx.state(model, nnx.Param))`, "factor_nnz": their total nnz}.
    """
    _check_protocol(model, "block_forward", "mlp_bases")
    if model.mlp_bases is None:
        raise ValueError("model is not compressed (model.mlp_bases is None): call compress_mlps first")
    if sparsifier not in SPARSIFIERS:
        raise ValueError(f"sparsifier must be one of {SPARSIFIERS}, got {sparsifier!r}")
    steps = check_int(steps, "steps", minimum=1)
    _check_key(key)
    if len(inputs) != len(outputs) or not inputs:
        raise ValueError(
            f"inputs and outputs must be non-empty with one array per block, got {len(inputs)}, {len(outputs)}"
        )
    n = len(inputs[0])
    if any(len(a) != n for a in (*inputs, *outputs)):
        raise ValueError("every inputs/outputs array must have the same number of examples")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if batch_size > n:
        raise ValueError(f"batch_size must be <= the number of cached examples ({n}), got {batch_size}")
    if not 0.0 < end_fraction <= 1.0:
        raise ValueError(f"end_fraction must be in (0, 1], got {end_fraction}")
    end_step = max(1, int(end_fraction * steps))

    graphdef, trainable, rest = nnx.split(model, FiPSParam, ...)
    params, rest = nnx.as_pure(trainable), nnx.as_pure(rest)
    sub_masks = _masks_like(params, masks)
    params = apply_masks(params, sub_masks)

    lr = optax.cosine_decay_schedule(learning_rate, decay_steps=steps, alpha=end_lr_factor)
    inner = optax.adamw(lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=weight_decay)
    if sparsifier == "rigl":
        tx = dst.rigl(
            inner, key=key, initial_masks=sub_masks, update_every=update_every, end_step=end_step,
            drop_fraction=drop_fraction,
        )  # fmt: skip
    elif sparsifier == "static":
        tx = dst.static_sparse(inner, key=key, initial_masks=sub_masks)
    else:
        if final_sparsity is None:
            raise ValueError("sparsifier='gmp' needs final_sparsity")
        tx = gradual_magnitude_pruning(
            inner, final_sparsity=final_sparsity, initial_sparsity=initial_sparsity,
            accelerated_sparsity=accelerated_sparsity, accel_step=accel_step, end_step=end_step,
            update_every=update_every, masks=sub_masks,
        )  # fmt: skip
    opt_state = tx.init(params)

    # Each distinct activation array is sent once per step (inputs[i + 1] is outputs[i] from cache_block_io).
    bank, slot = [], {}
    for a in (*inputs, *outputs):
        if id(a) not in slot:
            slot[id(a)] = len(bank)
            bank.append(a)
    in_slots = [slot[id(a)] for a in inputs]
    out_slots = [slot[id(a)] for a in outputs]

    def loss_fn(params, rest, batch):
        m = nnx.merge(graphdef, params, rest)
        return reconstruction_loss(m, [batch[j] for j in in_slots], [batch[j] for j in out_slots])

    @jax.jit
    def step(params, opt_state, rest, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, rest, batch)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
    per_epoch = n // batch_size
    order = rng.permutation(n)
    losses = []
    for t in tqdm(range(steps), desc="fips reconstruct", disable=not progress, leave=False):
        j = t % per_epoch
        if j == 0 and t:
            order = rng.permutation(n)
        idx = np.sort(order[j * batch_size : (j + 1) * batch_size])
        batch = tuple(jnp.asarray(a[idx]) for a in bank)
        params, opt_state, loss = step(params, opt_state, rest, batch)
        losses.append(loss)

    nnx.update(model, params)
    state = opt_state if isinstance(opt_state, GMPState) else dst.find_sparse_state(opt_state)
    final = _masks_like(nnx.as_pure(nnx.state(model, nnx.Param)), state.masks, missing_ok=True)
    nnz = sum(int(jnp.sum(m)) for m in jax.tree.leaves(state.masks))
    return {"loss_curve": [float(x) for x in jax.device_get(losses)], "masks": final, "factor_nnz": nnz}
