"""Per-expert calibration statistics, kept as sums and counts so batches and shards combine exactly."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ._layer import _check_x, _sorted_rows, _unsort, dense_expert_outputs
from ._params import MoEParams, check_moe_params
from ._routing import route

__all__ = ["ExpertStats", "combine_stats", "moe_forward_with_stats", "observe_layer"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class ExpertStats:
    """Sums and counts over valid (non-padding) tokens of one MoE layer; E experts, model width d.

    Per-expert sums run over X_j, the valid tokens routed to expert j (j in the token's top-k); f_j is expert j's
    raw output (no gate), g_j the token's gate for j (after renormalisation when the layer renormalises).

    Attributes:
        n_tokens: scalar, valid tokens seen.
        tokens: `[E]` |X_j| (frequency).
        gate_sum: `[E]` Σ_{X_j} g_j (soft frequency).
        ean_sum: `[E]` Σ_{X_j} ‖f_j‖₂.
        weighted_ean_sum: `[E]` Σ_{X_j} g_j ‖f_j‖₂ (REAP = weighted_ean_sum / tokens).
        max_act: `[E]` largest element of f_j over X_j (-inf for never-routed experts).
        output_sum: `[E, d]` Σ_{X_j} f_j (mean routed output; `ean_ca`).
        logit_sum: `[E]` Σ over all valid tokens of router logit j.
        logit_outer: `[E, E]` Σ over all valid tokens of logit_i · logit_j (exact cosine similarity of router-logit
            columns: `logit_outer[i, j] / sqrt(logit_outer[i, i] · logit_outer[j, j])`).
        dense_output_sum: `[E, d]` Σ over ALL valid tokens of f_j (HC-SMoE's signature), or None when not observed
            (it needs every expert on every token).
    """

    n_tokens: jax.Array
    tokens: jax.Array
    gate_sum: jax.Array
    ean_sum: jax.Array
    weighted_ean_sum: jax.Array
    max_act: jax.Array
    output_sum: jax.Array
    logit_sum: jax.Array
    logit_outer: jax.Array
    dense_output_sum: jax.Array | None = None

    @property
    def reap_sum(self):
        """Σ_{X_j} g_j ‖f_j‖ — the REAP numerator (same array as `weighted_ean_sum`)."""
        return self.weighted_ean_sum

    @property
    def num_experts(self) -> int:
        return int(self.tokens.shape[0])

    @staticmethod
    def zeros(num_experts: int, d: int, *, dense_outputs: bool = False) -> "ExpertStats":
        """Empty statistics (the identity of `combine`)."""
        for value, name in ((num_experts, "num_experts"), (d, "d")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        e = num_experts
        return ExpertStats(
            n_tokens=jnp.zeros((), jnp.int32),
            tokens=jnp.zeros((e,), jnp.int32),
            gate_sum=jnp.zeros((e,), jnp.float32),
            ean_sum=jnp.zeros((e,), jnp.float32),
            weighted_ean_sum=jnp.zeros((e,), jnp.float32),
            max_act=jnp.full((e,), -jnp.inf, jnp.float32),
            output_sum=jnp.zeros((e, d), jnp.float32),
            logit_sum=jnp.zeros((e,), jnp.float32),
            logit_outer=jnp.zeros((e, e), jnp.float32),
            dense_output_sum=jnp.zeros((e, d), jnp.float32) if dense_outputs else None,
        )

    def combine(self, other: "ExpertStats") -> "ExpertStats":
        """Statistics of the union of two disjoint token sets (sums add, `max_act` takes the maximum).

        Works on device arrays and on host float64 copies (`to_host`), keeping the latter's precision.
        """
        return combine_stats(self, other)

    def to_host(self) -> "ExpertStats":
        """A numpy copy: float sums as float64 and counts as int64, for exact-as-possible host accumulation."""

        def convert(value):
            arr = np.asarray(value)
            return arr.astype(np.int64) if np.issubdtype(arr.dtype, np.integer) else arr.astype(np.float64)

        return jax.tree.map(convert, self)


def _max(a, b):
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return np.maximum(a, b)
    return jnp.maximum(a, b)


def combine_stats(a: ExpertStats, b: ExpertStats) -> ExpertStats:
    """`a` and `b` combined: counts and sums add, `max_act` is the elementwise maximum."""
    if not isinstance(a, ExpertStats) or not isinstance(b, ExpertStats):
        raise TypeError(f"combine needs two ExpertStats, got {type(a).__name__} and {type(b).__name__}")
    if a.tokens.shape != b.tokens.shape or a.output_sum.shape != b.output_sum.shape:
        raise ValueError(
            f"cannot combine statistics of different layers: E, d = {a.output_sum.shape} vs {b.output_sum.shape}"
        )
    if (a.dense_output_sum is None) != (b.dense_output_sum is None):
        raise ValueError("cannot combine statistics with and without dense_output_sum")
    fields = {}
    for field in dataclasses.fields(ExpertStats):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if x is None:
            fields[field.name] = None
        elif field.name == "max_act":
            fields[field.name] = _max(x, y)
        else:
            fields[field.name] = x + y
    return ExpertStats(**fields)


def _check_mask(token_mask, num_tokens: int):
    if token_mask is None:
        return jnp.ones((num_tokens,), bool)
    token_mask = jnp.asarray(token_mask)
    if token_mask.shape != (num_tokens,):
        raise ValueError(f"token_mask must be [T={num_tokens}], got shape {token_mask.shape}")
    if token_mask.dtype != jnp.bool_:
        raise TypeError(f"token_mask must be bool, got dtype {token_mask.dtype}")
    return token_mask


def _row_stats(sorted_expert, sorted_gate, sorted_valid, outputs, num_experts: int) -> dict:
    """Per-expert sums of rows already sorted by expert (`sorted_valid` masks padding and foreign rows)."""
    outputs = outputs.astype(jnp.float32)
    w = sorted_valid.astype(jnp.float32)
    norms = jnp.linalg.norm(outputs, axis=-1)

    def seg(values):
        return jax.ops.segment_sum(values, sorted_expert, num_experts, indices_are_sorted=True)

    row_max = jnp.where(sorted_valid, jnp.max(outputs, axis=-1), -jnp.inf)
    return {
        "tokens": seg(sorted_valid.astype(jnp.int32)),
        "gate_sum": seg(w * sorted_gate),
        "ean_sum": seg(w * norms),
        "weighted_ean_sum": seg(w * sorted_gate * norms),
        "max_act": jax.ops.segment_max(row_max, sorted_expert, num_experts, indices_are_sorted=True),
        "output_sum": seg(jnp.where(sorted_valid[:, None], outputs, 0.0)),
    }


def _logit_stats(logits, token_mask) -> dict:
    masked = jnp.where(token_mask[:, None], logits.astype(jnp.float32), 0.0)
    return {
        "logit_sum": jnp.sum(masked, axis=0),
        "logit_outer": jnp.matmul(masked.T, masked, precision=jax.lax.Precision.HIGHEST),
    }


def moe_forward_with_stats(
    params: MoEParams,
    x,
    *,
    top_k: int,
    renormalize: bool,
    token_mask=None,
    dense_outputs: bool = False,
):
    """The dropless MoE layer and its statistics from ONE grouped matmul (the observer adds only reductions).

    Args:
        params: the layer.
        x: `[T, d]` tokens entering the layer.
        top_k: experts per token.
        renormalize: top-k renormalisation of the gates (see `route`); the statistics use the model's gates.
        token_mask: `[T]` bool, True for real tokens; padding is routed (shapes stay static) but never counted.
        dense_outputs: also sum every expert's output over all valid tokens (`dense_output_sum`, for HC-SMoE);
            this runs all E experts on all tokens, so it is off by default.

    Returns:
        `(y [T, d], ExpertStats)`.
    """
    params = check_moe_params(params)
    x = _check_x(params, x)
    token_mask = _check_mask(token_mask, x.shape[0])
    if not isinstance(dense_outputs, bool):
        raise TypeError(f"dense_outputs must be a bool, got {dense_outputs!r}")
    logits = x @ params.router
    expert_idx, gates, _ = route(logits, top_k=top_k, renormalize=renormalize)
    k = top_k
    order, sorted_expert, outputs = _sorted_rows(params, x, expert_idx)
    sorted_token = order // k
    stats = _row_stats(sorted_expert, gates.reshape(-1)[order], token_mask[sorted_token], outputs, params.num_experts)
    stats.update(_logit_stats(logits, token_mask))
    stats["n_tokens"] = jnp.sum(token_mask.astype(jnp.int32))
    if dense_outputs:
        dense = dense_expert_outputs(params, x).astype(jnp.float32)
        stats["dense_output_sum"] = jnp.einsum("t,ted->ed", token_mask.astype(jnp.float32), dense)
    outs = _unsort(order, outputs, x.shape[0], k)
    y = jnp.einsum("tk,tkd->td", gates, outs.astype(jnp.float32)).astype(x.dtype)
    return y, ExpertStats(**stats)


def observe_layer(params: MoEParams, x, *, top_k: int, renormalize: bool, token_mask=None, dense_outputs=False):
    """Statistics of one MoE layer over the valid tokens of `x` (see `moe_forward_with_stats`)."""
    return moe_forward_with_stats(
        params, x, top_k=top_k, renormalize=renormalize, token_mask=token_mask, dense_outputs=dense_outputs
    )[1]
