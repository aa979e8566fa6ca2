"""Expert-parallel calibration and pruning: the expert dimension sharded over a mesh axis (shard_map, jit).

Tokens are replicated over the expert axis (the simple "all-gather tokens, compute locally" scheme): each shard
computes its local experts' router logits, all-gathers the [T, E] logits to route (softmax over all E), runs its
local experts on the rows routed to them (exact grouped matmul) and reduces per-expert statistics locally, so
expert statistics never leave their shard. An optional data axis shards tokens; sums are psum'ed over it.
"""

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ._layer import _check_x, _grouped_ffn, _unsort
from ._observer import ExpertStats, _check_mask, _row_stats
from ._params import MoEParams, check_moe_params
from ._prune import prune_experts
from ._routing import route

__all__ = ["moe_forward_with_stats_sharded", "observe_layer_sharded", "prune_experts_sharded", "shard_moe_params"]


def _check_mesh(mesh, expert_axis: str, data_axis: str | None, num_experts: int, what: str = "E") -> int:
    if not isinstance(mesh, jax.sharding.Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if expert_axis not in mesh.axis_names:
        raise ValueError(f"expert_axis {expert_axis!r} is not a mesh axis {mesh.axis_names}")
    if data_axis is not None and data_axis not in mesh.axis_names:
        raise ValueError(f"data_axis {data_axis!r} is not a mesh axis {mesh.axis_names}")
    ep = mesh.shape[expert_axis]
    if num_experts % ep:
        raise ValueError(
            f"{what}={num_experts} experts is not divisible by the mesh's expert axis {expert_axis!r} of size {ep}; "
            "prune to a multiple of it (num_experts_after_pruning(..., expert_parallel=...)) or use another mesh"
        )
    return ep


def _param_specs(expert_axis: str) -> MoEParams:
    return MoEParams(
        router=P(None, expert_axis),
        w_gate=P(expert_axis, None, None),
        w_up=P(expert_axis, None, None),
        w_down=P(expert_axis, None, None),
    )


def shard_moe_params(params: MoEParams, mesh, *, expert_axis: str = "expert") -> MoEParams:
    """Places a layer on `mesh` with the expert dimension sharded over `expert_axis` (E % axis size == 0)."""
    params = check_moe_params(params)
    _check_mesh(mesh, expert_axis, None, params.num_experts)
    specs = _param_specs(expert_axis)
    return jax.tree.map(lambda a, s: jax.device_put(a, NamedSharding(mesh, s)), params, specs)


def _stats_specs(expert_axis: str) -> ExpertStats:
    e, ed = P(expert_axis), P(expert_axis, None)
    return ExpertStats(
        n_tokens=P(),
        tokens=e,
        gate_sum=e,
        ean_sum=e,
        weighted_ean_sum=e,
        max_act=e,
        output_sum=ed,
        logit_sum=e,
        logit_outer=ed,
        dense_output_sum=None,
    )


def moe_forward_with_stats_sharded(
    params: MoEParams,
    x,
    *,
    mesh,
    top_k: int,
    renormalize: bool,
    token_mask=None,
    expert_axis: str = "expert",
    data_axis: str | None = None,
):
    """`moe_forward_with_stats` with experts sharded over `expert_axis` (and tokens over `data_axis`).

    Returns `(y [T, d], ExpertStats)`; the per-expert statistics come back sharded over the expert axis and equal
    the single-device ones (counts exactly, float sums up to float32 summation order). `dense_output_sum` is not
    collected here (HC-SMoE's all-token signature is a single-device option).
    """
    params = check_moe_params(params)
    x = _check_x(params, x)
    token_mask = _check_mask(token_mask, x.shape[0])
    ep = _check_mesh(mesh, expert_axis, data_axis, params.num_experts)
    if data_axis is not None and x.shape[0] % mesh.shape[data_axis]:
        raise ValueError(f"T={x.shape[0]} tokens is not divisible by the data axis of size {mesh.shape[data_axis]}")
    local_e = params.num_experts // ep
    route(jnp.zeros((1, params.num_experts)), top_k=top_k, renormalize=renormalize)  # validates top_k early
    tok = P(data_axis, None)

    def local(p: MoEParams, xs, mask):
        e0 = jax.lax.axis_index(expert_axis) * local_e
        local_logits = xs @ p.router
        logits = jax.lax.all_gather(local_logits, expert_axis, axis=1, tiled=True)
        idx, gates, _ = route(logits, top_k=top_k, renormalize=renormalize)
        flat = idx.reshape(-1) - e0
        is_local = (flat >= 0) & (flat < local_e)
        keyed = jnp.where(is_local, flat, local_e)  # foreign rows sort after every local group
        order = jnp.argsort(keyed, stable=True)
        sorted_expert = keyed[order]
        valid_row = sorted_expert < local_e
        group_sizes = jnp.bincount(
            jnp.where(is_local, flat, 0), weights=is_local.astype(jnp.int32), length=local_e
        ).astype(jnp.int32)
        outputs = _grouped_ffn(p, xs[order // top_k], group_sizes, sorted_expert, valid_row)
        seg_expert = jnp.minimum(sorted_expert, local_e - 1)
        # Foreign rows are masked out of every sum (and sit in the last segment, which they cannot change).
        stats = _row_stats(seg_expert, gates.reshape(-1)[order], valid_row & mask[order // top_k], outputs, local_e)
        masked = jnp.where(mask[:, None], logits.astype(jnp.float32), 0.0)
        masked_local = jnp.where(mask[:, None], local_logits.astype(jnp.float32), 0.0)
        stats["logit_sum"] = jnp.sum(masked_local, axis=0)
        stats["logit_outer"] = jnp.matmul(masked_local.T, masked, precision=jax.lax.Precision.HIGHEST)
        stats["n_tokens"] = jnp.sum(mask.astype(jnp.int32))
        if data_axis is not None:
            stats = {
                k: jax.lax.pmax(v, data_axis) if k == "max_act" else jax.lax.psum(v, data_axis)
                for k, v in stats.items()
            }
        y = jnp.einsum("tk,tkd->td", gates, _unsort(order, outputs, xs.shape[0], top_k).astype(jnp.float32))
        y = jax.lax.psum(y, expert_axis).astype(xs.dtype)
        return y, ExpertStats(**stats)

    fn = jax.shard_map(
        local,
        mesh=mesh,
        in_specs=(_param_specs(expert_axis), tok, P(data_axis)),
        out_specs=(tok, _stats_specs(expert_axis)),
        check_vma=False,
    )
    # Place (or, under jit, constrain) the inputs on the mesh as the specs say.
    put = lambda a, spec: jax.device_put(a, NamedSharding(mesh, spec))
    params = jax.tree.map(put, params, _param_specs(expert_axis))
    return fn(params, put(x, tok), put(token_mask, P(data_axis)))


def observe_layer_sharded(params: MoEParams, x, *, mesh, top_k: int, renormalize: bool, token_mask=None, **axes):
    """Expert-sharded `observe_layer` (see `moe_forward_with_stats_sharded`)."""
    return moe_forward_with_stats_sharded(
        params, x, mesh=mesh, top_k=top_k, renormalize=renormalize, token_mask=token_mask, **axes
    )[1]


def prune_experts_sharded(params: MoEParams, keep, mesh, *, expert_axis: str = "expert") -> MoEParams:
    """`prune_experts` under `jax.jit` with the result expert-sharded; refuses E' not divisible by the axis size."""
    params = check_moe_params(params)
    keep = jnp.asarray(keep)
    _check_mesh(mesh, expert_axis, None, int(keep.shape[0]) if keep.ndim == 1 else 0, what="E' (len(keep))")
    shardings = jax.tree.map(lambda s: NamedSharding(mesh, s), _param_specs(expert_axis))
    return jax.jit(prune_experts, out_shardings=shardings)(params, keep)
