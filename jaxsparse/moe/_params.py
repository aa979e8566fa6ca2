"""`MoEParams`: one sparse-MoE layer with stacked SwiGLU experts (MaxText layout)."""

import dataclasses

import jax
import jax.numpy as jnp

__all__ = ["MoEParams", "check_moe_params", "init_moe_params"]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class MoEParams:
    """One sparse-MoE layer; expert j computes `down(silu(x @ w_gate[j]) * (x @ w_up[j]))`.

    Attributes:
        router: `[d, E]` router kernel; logits = `x @ router` (one column per expert).
        w_gate: `[E, d, f]` gate projections.
        w_up: `[E, d, f]` up projections.
        w_down: `[E, f, d]` down projections.
    """

    router: jax.Array
    w_gate: jax.Array
    w_up: jax.Array
    w_down: jax.Array

    @property
    def num_experts(self) -> int:
        return int(self.w_gate.shape[0])

    @property
    def d_model(self) -> int:
        return int(self.w_gate.shape[1])

    @property
    def d_ff(self) -> int:
        return int(self.w_gate.shape[2])


def check_moe_params(params, name: str = "params") -> MoEParams:
    """Raises TypeError/ValueError unless `params` is a `MoEParams` with consistent shapes."""
    if not isinstance(params, MoEParams):
        raise TypeError(f"{name} must be a MoEParams, got {type(params).__name__}")
    shapes = {f.name: tuple(getattr(params, f.name).shape) for f in dataclasses.fields(params)}
    if len(shapes["w_gate"]) != 3:
        raise ValueError(f"{name}.w_gate must be [E, d, f], got shape {shapes['w_gate']}")
    e, d, f = shapes["w_gate"]
    want = {"router": (d, e), "w_gate": (e, d, f), "w_up": (e, d, f), "w_down": (e, f, d)}
    for field, shape in want.items():
        if shapes[field] != shape:
            raise ValueError(
                f"{name}.{field} must have shape {shape} (E={e}, d={d}, f={f} from w_gate), got {shapes[field]}"
            )
    if e < 1:
        raise ValueError(f"{name} must hold at least one expert, got E={e}")
    return params


def init_moe_params(key, *, num_experts: int, d_model: int, d_ff: int, dtype=jnp.float32) -> MoEParams:
    """Random layer: lecun-normal kernels (fan-in scaling), a small router so routing starts near uniform."""
    for value, name in ((num_experts, "num_experts"), (d_model, "d_model"), (d_ff, "d_ff")):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    k_r, k_g, k_u, k_d = jax.random.split(key, 4)
    e, d, f = num_experts, d_model, d_ff
    return MoEParams(
        router=jax.random.normal(k_r, (d, e), dtype) * (0.1 / d**0.5),
        w_gate=jax.random.normal(k_g, (e, d, f), dtype) / d**0.5,
        w_up=jax.random.normal(k_u, (e, d, f), dtype) / d**0.5,
        w_down=jax.random.normal(k_d, (e, f, d), dtype) / f**0.5,
    )
