"""Dropless sparse-MoE forward pass: sort (token, slot) rows by expert, then an exact grouped matmul.

On GPU/TPU the grouped matmul is `jax.lax.ragged_dot`; on CPU, where XLA lowers `ragged_dot` to a dense masked
matmul over all experts, a tiled gather-matmul does the same exact computation with ~(1 + E·tile/M)x the work.
"""

import jax
import jax.numpy as jnp
import numpy as np

from ._params import MoEParams, check_moe_params
from ._routing import route

__all__ = ["dense_expert_outputs", "expert_outputs", "moe_forward", "moe_forward_dense"]


def _check_x(params: MoEParams, x, name: str = "x"):
    x = jnp.asarray(x)
    if x.ndim != 2 or x.shape[1] != params.d_model:
        raise ValueError(f"{name} must be [T, d={params.d_model}], got shape {x.shape}")
    return x


def _check_expert_idx(expert_idx, num_tokens: int, num_experts: int):
    expert_idx = jnp.asarray(expert_idx)
    if expert_idx.ndim != 2 or expert_idx.shape[0] != num_tokens:
        raise ValueError(f"expert_idx must be [T={num_tokens}, k], got shape {expert_idx.shape}")
    if not jnp.issubdtype(expert_idx.dtype, jnp.integer):
        raise TypeError(f"expert_idx must hold integers, got dtype {expert_idx.dtype}")
    if not isinstance(expert_idx, jax.core.Tracer):  # concrete: check the range (under jit the caller routes)
        lo, hi = int(jnp.min(expert_idx)), int(jnp.max(expert_idx))
        if lo < 0 or hi >= num_experts:
            raise ValueError(f"expert_idx must lie in [0, E={num_experts}), got values in [{lo}, {hi}]")
    return expert_idx.astype(jnp.int32)


def _tile_size(num_rows: int, num_experts: int) -> int:
    """Rows per tile: about the mean group size (a power of two in [8, 128]), so padding costs <= ~2x rows."""
    mean = max(1, num_rows // max(num_experts, 1))
    return int(min(128, max(8, 2 ** int(np.floor(np.log2(mean))))))


def _tiled_grouped_ffn(params: MoEParams, rows, group_sizes, sorted_expert, valid=None):
    """Exact grouped SwiGLU without E-fold work: each group is padded to whole tiles, one expert per tile.

    `jax.lax.ragged_dot` lowers to a dense masked matmul over all E groups on CPU (E times the FLOPs); this path
    does (M + E·tile)·d·f work per matmul. Row i (expert `sorted_expert[i]`) goes to slot
    `padded_start[e] + (i - group_start[e])`; tile j uses expert `tile_expert[j]`; padding rows are zero and dropped.
    """
    m, e = rows.shape[0], params.num_experts
    tile = _tile_size(m, e)
    num_tiles = -(-(m + e * (tile - 1)) // tile)
    padded_sizes = -(-group_sizes // tile) * tile
    group_start = jnp.cumsum(group_sizes) - group_sizes
    padded_end = jnp.cumsum(padded_sizes)
    expert = jnp.minimum(sorted_expert, e - 1)
    position = (padded_end - padded_sizes)[expert] + jnp.arange(m) - group_start[expert]
    if valid is not None:  # rows of no local expert (sorted last): dropped, their outputs are zero
        position = jnp.where(valid, position, num_tiles * tile)
    buffer = jnp.zeros((num_tiles * tile, rows.shape[1]), rows.dtype).at[position].set(rows, mode="drop")
    tile_expert = jnp.minimum(jnp.searchsorted(padded_end, jnp.arange(num_tiles) * tile, side="right"), e - 1)
    x = buffer.reshape(num_tiles, tile, -1)
    gate = jnp.einsum("tbd,tdf->tbf", x, params.w_gate[tile_expert])
    up = jnp.einsum("tbd,tdf->tbf", x, params.w_up[tile_expert])
    out = jnp.einsum("tbf,tfd->tbd", jax.nn.silu(gate) * up, params.w_down[tile_expert])
    return out.reshape(num_tiles * tile, -1).at[position].get(mode="fill", fill_value=0)


def _grouped_ffn(params: MoEParams, rows, group_sizes, sorted_expert, valid=None):
    """SwiGLU of rows already sorted by expert; `group_sizes[e]` consecutive rows belong to expert e.

    With `valid`, the rows where it is False (all after the last group) belong to no expert and get zeros.
    """
    if jax.default_backend() == "cpu":
        return _tiled_grouped_ffn(params, rows, group_sizes, sorted_expert, valid)
    gate = jax.lax.ragged_dot(rows, params.w_gate, group_sizes)
    up = jax.lax.ragged_dot(rows, params.w_up, group_sizes)
    out = jax.lax.ragged_dot(jax.nn.silu(gate) * up, params.w_down, group_sizes)
    return out if valid is None else jnp.where(valid[:, None], out, 0)


def _sorted_rows(params: MoEParams, x, expert_idx):
    """Dispatch: the T*k (token, slot) rows stably sorted by expert and each row's expert output.

    Returns `(order, sorted_expert, outputs)`: flat row `order[i]` (= token `order[i] // k`, slot `order[i] % k`)
    is the i-th row in expert order, `sorted_expert[i]` its expert and `outputs[i]` that expert's output.
    """
    k = expert_idx.shape[1]
    flat = expert_idx.reshape(-1)
    order = jnp.argsort(flat, stable=True)
    sorted_expert = flat[order]
    group_sizes = jnp.bincount(flat, length=params.num_experts).astype(jnp.int32)
    outputs = _grouped_ffn(params, x[order // k], group_sizes, sorted_expert)
    return order, sorted_expert, outputs


def _unsort(order, sorted_rows, num_tokens: int, k: int):
    inverse = jnp.zeros_like(order).at[order].set(jnp.arange(order.shape[0], dtype=order.dtype))
    return sorted_rows[inverse].reshape(num_tokens, k, sorted_rows.shape[-1])


def expert_outputs(params: MoEParams, x, expert_idx):
    """Each routed expert's raw output (no gate): `[T, k, d]`, entry `[t, s]` = f_{expert_idx[t, s]}(x[t]).

    Only the T*k routed (token, expert) pairs are computed (grouped matmul), never all E experts on all tokens.
    """
    params = check_moe_params(params)
    x = _check_x(params, x)
    expert_idx = _check_expert_idx(expert_idx, x.shape[0], params.num_experts)
    order, _, outputs = _sorted_rows(params, x, expert_idx)
    return _unsort(order, outputs, x.shape[0], expert_idx.shape[1])


def moe_forward(params: MoEParams, x, *, top_k: int, renormalize: bool):
    """Dropless sparse-MoE layer: `y[t] = Σ_s gate[t, s] · f_{expert_idx[t, s]}(x[t])`, `[T, d]` in x's dtype.

    Args:
        params: the layer.
        x: `[T, d]` tokens.
        top_k: experts per token (1 <= top_k <= E).
        renormalize: top-k renormalisation of the gates (see `route`).
    """
    params = check_moe_params(params)
    x = _check_x(params, x)
    expert_idx, gates, _ = route(x @ params.router, top_k=top_k, renormalize=renormalize)
    outs = expert_outputs(params, x, expert_idx)
    return jnp.einsum("tk,tkd->td", gates, outs.astype(jnp.float32)).astype(x.dtype)


def dense_expert_outputs(params: MoEParams, x):
    """Every expert on every token, `[T, E, d]` (E times the FLOPs of the sparse path; what HC-SMoE needs)."""
    params = check_moe_params(params)
    x = _check_x(params, x)
    gate = jnp.einsum("td,edf->tef", x, params.w_gate)
    up = jnp.einsum("td,edf->tef", x, params.w_up)
    return jnp.einsum("tef,efd->ted", jax.nn.silu(gate) * up, params.w_down)


def moe_forward_dense(params: MoEParams, x, *, top_k: int, renormalize: bool):
    """Reference MoE layer: runs all experts on all tokens and masks to the routed ones (tests, benchmarks)."""
    params = check_moe_params(params)
    x = _check_x(params, x)
    expert_idx, gates, _ = route(x @ params.router, top_k=top_k, renormalize=renormalize)
    weights = jnp.zeros((x.shape[0], params.num_experts), jnp.float32)
    weights = weights.at[jnp.arange(x.shape[0])[:, None], expert_idx].add(gates)
    return jnp.einsum("te,ted->td", weights, dense_expert_outputs(params, x).astype(jnp.float32)).astype(x.dtype)
