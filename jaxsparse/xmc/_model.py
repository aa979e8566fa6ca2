"""SPARTEX model and training: encoder, optional intermediate layer, fixed fan-in head, auxiliary objective.

Pure functions over a params dict, so the trainer is one jitted step:

    params = {"encoder": {kernel, bias}, ["intermediate": {kernel, bias}],
              "head": {values, bias} (sparse) or {kernel, bias} (dense), ["meta": {kernel, bias}]}

The head's integer `indices` are state, not params: they are rewired by SET (in-row, random regrowth at
zero) every `rewire_every` steps until `rewire_end_step`, and Adam's moments of rewired slots are zeroed.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsparse.masks import is_mask_update_step, map_param_copies

from ._layer import fixed_fan_in_logits, init_fixed_fan_in, set_rewire

__all__ = [
    "XMCModelSpec",
    "aux_weight",
    "bce_loss",
    "init_xmc",
    "make_train_step",
    "memory_report",
    "squared_hinge_loss",
    "xmc_forward",
]


@dataclasses.dataclass(frozen=True)
class XMCModelSpec:
    """Static shape of an XMC model.

    Attributes:
      num_features: input dimension D (bag-of-words features).
      hidden: encoder output width d.
      num_labels: L.
      fan_in: inputs per label in the sparse head; None makes the head dense.
      intermediate: width of the optional dense layer between encoder and head (None: none).
      num_clusters: label clusters of the auxiliary meta-classifier (None: no auxiliary objective).
    """

    num_features: int
    hidden: int
    num_labels: int
    fan_in: int | None = 32
    intermediate: int | None = None
    num_clusters: int | None = None

    def __post_init__(self):
        for name in ("num_features", "hidden", "num_labels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        for name in ("fan_in", "intermediate", "num_clusters"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
                raise ValueError(f"{name} must be None or a positive int, got {v!r}")
        if self.fan_in is not None and self.fan_in > self.head_inputs:
            raise ValueError(f"fan_in={self.fan_in} exceeds the head's input width {self.head_inputs}")

    @property
    def head_inputs(self) -> int:
        return self.intermediate or self.hidden


def _dense_init(key, n_in, n_out):
    return {"kernel": jax.random.normal(key, (n_in, n_out)) * np.sqrt(2.0 / n_in), "bias": jnp.zeros((n_out,))}


def init_xmc(key, spec: XMCModelSpec):
    """Returns (params, indices); indices is None for a dense head."""
    if not isinstance(spec, XMCModelSpec):
        raise ValueError(f"spec must be an XMCModelSpec, got {type(spec).__name__}")
    k_enc, k_int, k_head, k_meta = jax.random.split(key, 4)
    params = {"encoder": _dense_init(k_enc, spec.num_features, spec.hidden)}
    if spec.intermediate:
        params["intermediate"] = _dense_init(k_int, spec.hidden, spec.intermediate)
    indices = None
    if spec.fan_in is None:
        params["head"] = {
            "kernel": jax.random.normal(k_head, (spec.head_inputs, spec.num_labels)) / np.sqrt(spec.head_inputs),
            "bias": jnp.zeros((spec.num_labels,)),
        }
    else:
        values, indices = init_fixed_fan_in(k_head, spec.head_inputs, spec.num_labels, spec.fan_in)
        params["head"] = {"values": values, "bias": jnp.zeros((spec.num_labels,))}
    if spec.num_clusters:
        params["meta"] = _dense_init(k_meta, spec.hidden, spec.num_clusters)
    return params, indices


def _affine(x, layer):
    return x @ layer["kernel"] + layer["bias"][None, :]


def xmc_forward(params, indices, x, *, fan_in_chunk: int | None = 8):
    """Returns (label logits [B, L], meta logits [B, G] or None)."""
    if x.ndim != 2:
        raise ValueError(f"x must be [batch, num_features], got shape {x.shape}")
    h = jax.nn.relu(_affine(x, params["encoder"]))
    z = h
    if "intermediate" in params:
        z = jax.nn.relu(_affine(h, params["intermediate"]))
    head = params["head"]
    if "values" in head:
        logits = fixed_fan_in_logits(z, head["values"], indices, head["bias"], fan_in_chunk=fan_in_chunk)
    else:
        logits = _affine(z, head)
    meta = None
    if "meta" in params:
        meta = _affine(h, params["meta"])
    return logits, meta


def squared_hinge_loss(logits, targets):
    """sum_l max(0, 1 - y'_l z_l)^2 with y' = ±1, averaged over the batch."""
    signs = 2.0 * targets - 1.0
    return jnp.mean(jnp.sum(jnp.square(jax.nn.relu(1.0 - signs * logits)), axis=-1))


def bce_loss(logits, targets):
    """Binary cross-entropy summed over labels, averaged over the batch."""
    return jnp.mean(jnp.sum(optax.sigmoid_binary_cross_entropy(logits, targets), axis=-1))


def aux_weight(step, *, alpha0: float, cutoff_step: int):
    """α_t = α0 · ½(1 + cos(π t / cutoff)) before the cutoff, 0 from it on."""
    t = jnp.asarray(step, jnp.float32)
    w = 0.5 * alpha0 * (1.0 + jnp.cos(jnp.pi * jnp.minimum(t, cutoff_step) / cutoff_step))
    return jnp.where(t < cutoff_step, w, 0.0)


def make_train_step(
    tx: optax.GradientTransformation,
    *,
    loss: str = "squared_hinge",
    alpha0: float = 0.4,
    aux_cutoff_step: int = 1,
    rewire_every: int = 100,
    rewire_end_step: int = 0,
    rewire_fraction: float = 0.2,
    in_features: int | None = None,
    fan_in_chunk: int | None = 8,
):
    """Builds a jitted `step(params, indices, opt_state, step, key, x, y, cluster_y) -> (..., loss)`.

    SET rewiring of the sparse head (if any) runs under `lax.cond` at steps t > 0 with t % rewire_every == 0
    and t < rewire_end_step, after the optimizer update; rewired slots get value 0 and zeroed moments.
    """
    if loss not in ("squared_hinge", "bce"):
        raise ValueError(f"loss must be 'squared_hinge' or 'bce', got {loss!r}")
    main_loss = squared_hinge_loss if loss == "squared_hinge" else bce_loss
    if isinstance(rewire_every, bool) or not isinstance(rewire_every, int) or rewire_every <= 0:
        raise ValueError(f"rewire_every must be a positive int, got {rewire_every!r}")
    if not isinstance(aux_cutoff_step, int) or aux_cutoff_step <= 0:
        raise ValueError(f"aux_cutoff_step must be a positive int, got {aux_cutoff_step!r}")

    def objective(params, indices, step, x, y, cluster_y):
        logits, meta = xmc_forward(params, indices, x, fan_in_chunk=fan_in_chunk)
        value = main_loss(logits, y)
        if meta is not None:
            a = aux_weight(step, alpha0=alpha0, cutoff_step=aux_cutoff_step)
            value = (1.0 - a) * value + a * bce_loss(meta, cluster_y)
        return value

    @jax.jit
    def step_fn(params, indices, opt_state, step, key, x, y, cluster_y):
        value, grads = jax.value_and_grad(objective)(params, indices, step, x, y, cluster_y)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if indices is not None:
            if in_features is None:
                raise ValueError("in_features (the head's input width) is required for a sparse head")

            def rewire(operands):
                params, indices, opt_state = operands
                values, new_indices, rewired = set_rewire(
                    jax.random.fold_in(key, step), params["head"]["values"], indices,
                    in_features=in_features, fraction=rewire_fraction,
                )  # fmt: skip
                params = {**params, "head": {**params["head"], "values": values}}
                zero_slots = lambda copy: {
                    **copy, "head": {**copy["head"], "values": jnp.where(rewired, 0.0, copy["head"]["values"])}
                }  # fmt: skip
                return params, new_indices, map_param_copies(opt_state, params, zero_slots)

            do = is_mask_update_step(step, update_every=rewire_every, end_step=max(rewire_end_step, 1))
            params, indices, opt_state = jax.lax.cond(
                do, rewire, lambda operands: operands, (params, indices, opt_state)
            )
        return params, indices, opt_state, value

    return step_fn


def _nbytes(tree) -> int:
    return int(sum(np.prod(np.shape(x)) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(tree)))


def memory_report(params, indices, opt_state) -> dict:
    """Exact bytes of the head's params, indices, gradients and optimizer state, and of a dense equivalent.

    Gradients have the params' sizes (they are never larger: the sparse head's gradient is [L, k]). The dense
    equivalent is an fp32 [head_inputs, L] kernel plus bias with the same optimizer (state bytes scaled by
    the same per-parameter ratio).
    """
    head = params["head"]
    head_params = _nbytes(head)
    total_params = _nbytes(params)
    opt_bytes = _nbytes(opt_state)
    per_param_state = opt_bytes / max(total_params, 1)
    head_state = head_params * per_param_state
    index_bytes = 0 if indices is None else _nbytes(indices)
    head_total = head_params * 2 + head_state + index_bytes  # params + grads + optimizer state + indices
    num_labels = head["bias"].shape[0]
    if "values" in head:  # the head reads the intermediate layer if present, else the encoder
        width = (
            params["intermediate"]["kernel"].shape[1]
            if "intermediate" in params
            else params["encoder"]["kernel"].shape[1]
        )
    else:
        width = head["kernel"].shape[0]
    dense_params = (width * num_labels + num_labels) * 4
    dense_total = dense_params * 2 + dense_params * per_param_state
    return {
        "head_param_bytes": head_params,
        "head_index_bytes": index_bytes,
        "head_grad_bytes": head_params,
        "head_optimizer_bytes": int(head_state),
        "head_total_bytes": int(head_total),
        "dense_head_total_bytes": int(dense_total),
        "head_fraction_of_dense": head_total / dense_total,
        "model_param_bytes": total_params,
        "optimizer_bytes": opt_bytes,
    }
