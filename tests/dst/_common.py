"""Shared helpers for the DST tests: a small params pytree, its sparsity plan, fake gradients, numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxsparse import dst

METHODS = ("static", "set", "rigl", "srigl")
DYNAMIC = ("set", "rigl", "srigl")

# name -> (kernel shape, kernel sparsity or None = dense). Biases are always dense.
LAYERS = {
    "l0": ((16, 32), 0.75),
    "l1": ((32, 24), 0.9),
    "conv": ((3, 3, 4, 8), 0.5),
    "head": ((24, 4), None),
}
# Hand-computed nnz* = floor(size * (1 - s)): 512 * 0.25, floor(768 * 0.1 = 76.8), 288 * 0.5.
NNZ_TARGET = {"l0": 128, "l1": 76, "conv": 144}
K0 = {"l0": 128 // 32, "l1": 76 // 24, "conv": 144 // 8}  # 4, 3, 18
SPARSITY = {name: {"bias": None, "kernel": s} for name, (_, s) in LAYERS.items()}

UPDATE_EVERY = 3
END_STEP = 10
N_STEPS = 13
MASK_UPDATE_STEPS = (3, 6, 9)  # counts c with c > 0, c % 3 == 0, c < 10
ALPHA = 0.3
GAMMA_SAL = 0.9  # high enough that the trajectory ablates neurons


def make_params(seed: int = 1):
    """Float32 params from numpy's RNG (jax.random would compile threefry once per shape: slow on CPU)."""
    rng = np.random.default_rng(seed)
    return {
        name: {
            "kernel": jnp.asarray(rng.standard_normal(shape), jnp.float32),
            "bias": jnp.asarray(0.1 * rng.standard_normal(shape[-1]), jnp.float32),
        }
        for name, (shape, _) in LAYERS.items()
    }


TARGETS = jax.tree.map(np.asarray, make_params(seed=2))


def noise(i: int):
    """Fixed per-step gradient noise (numpy, so the jitted steps carry no PRNG: threefry compiles slowly)."""
    rng = np.random.default_rng(1000 + i)
    return jax.tree.map(lambda t: rng.standard_normal(t.shape).astype(np.float32), TARGETS)


def fake_grads(params, step_noise):
    """Gradient of 0.5 |p - target|^2 plus step noise: dense, different at every step."""
    return jax.tree.map(lambda p, t, n: p - t + 0.1 * n, params, TARGETS, step_noise)


def make_tx(method: str, key, *, inner=None, drop_fraction: float = ALPHA, gamma_sal: float = GAMMA_SAL, **kw):
    inner = optax.adam(1e-2) if inner is None else inner
    kw.setdefault("sparsity", SPARSITY)
    if method == "static":
        return dst.static_sparse(inner, key=key, **kw)
    kw = {"update_every": UPDATE_EVERY, "end_step": END_STEP, "drop_fraction": drop_fraction, **kw}
    if method == "set":
        return dst.sparse_evolutionary(inner, key=key, **kw)
    if method == "rigl":
        return dst.rigl(inner, key=key, **kw)
    if method == "srigl":
        return dst.srigl(inner, key=key, gamma_sal=gamma_sal, **kw)
    raise AssertionError(method)


def sparse_names():
    return [name for name, (_, s) in LAYERS.items() if s is not None]


def check_masks(method: str, masks, *, initial: bool = False):
    """Exact density invariants of every leaf's mask (None for dense leaves and biases)."""
    assert set(masks) == set(LAYERS)
    for name, (shape, s) in LAYERS.items():
        assert masks[name]["bias"] is None
        m = masks[name]["kernel"]
        if s is None:
            assert m is None
            continue
        m = np.asarray(m)
        assert m.dtype == np.bool_ and m.shape == shape
        nnz_t, n_out = NNZ_TARGET[name], shape[-1]
        fan_in_dense = m.size // n_out
        if method != "srigl":
            assert int(m.sum()) == nnz_t, (name, int(m.sum()), nnz_t)
            continue
        fan = m.reshape(fan_in_dense, n_out).sum(axis=0)
        active = fan > 0
        n_active = int(active.sum())
        assert n_active >= -(-nnz_t // fan_in_dense)
        k = nnz_t // n_active
        assert 1 <= k <= fan_in_dense
        np.testing.assert_array_equal(fan[active], k)  # constant fan-in k'; ablated neurons have 0
        assert nnz_t - n_active < int(m.sum()) <= nnz_t
        if initial:
            assert n_active == n_out and k == K0[name]


def kernel_masks(masks):
    return {name: np.asarray(masks[name]["kernel"]) for name in sparse_names()}


# ------------------------------------------------------------------------------ numpy references


def top_k(scores, k: int):
    """Boolean mask of the k largest scores (flat, row-major); ties go to the lower flat index."""
    scores = np.asarray(scores, np.float64)
    flat = scores.reshape(-1)
    out = np.zeros(flat.size, bool)
    out[np.argsort(-flat, kind="stable")[: int(k)]] = True
    return out.reshape(scores.shape)


def n_prune_for(nnz: int, drop) -> int:
    """floor(nnz * drop) in float32, as the updaters compute it."""
    return int(np.floor(np.float32(nnz) * np.float32(drop)))


def unstructured_reference(weights, scores, mask, drop):
    """SET/RigL: keep the top n_keep active |w|, grow the top n_prune scores outside the kept set."""
    w, s, m = np.abs(np.asarray(weights, np.float64)), np.asarray(scores, np.float64), np.asarray(mask, bool)
    nnz = int(m.sum())
    n_prune = n_prune_for(nnz, drop)
    keep = m & top_k(np.where(m, w, -np.inf), nnz - n_prune)
    grow = ~keep & top_k(np.where(keep, -np.inf, s), n_prune)
    return keep | grow, grow


def srigl_reference(weights, grads, mask, drop, *, nnz_target: int, k0: int, gamma_sal: float):
    """SRigL following /work/shared/reference/sparse_training.md §1 step by step (rows = output neurons).

    Ties in the layer-wide selections go to the lower flat index of the kernel itself ([fan_in, n_out],
    row-major); ties within a neuron go to the lower input index.
    """
    shape = np.shape(mask)
    n_out = shape[-1]
    fan_in = int(np.prod(shape)) // n_out
    rows = lambda a: np.asarray(a).reshape(fan_in, n_out).T
    w, g, m = np.abs(rows(weights)).astype(np.float64), np.abs(rows(grads)).astype(np.float64), rows(mask).astype(bool)
    # 1. n_prune, n_keep.
    nnz = int(m.sum())
    n_prune = n_prune_for(nnz, drop)
    n_keep = nnz - n_prune
    # 2. Saliency: top n_keep |W| (active) plus top n_prune |grad| over the whole layer.
    layer_top = lambda scores, n: top_k(scores.T, n).T  # layer-wide, in the kernel's own flat order
    salient = (m & layer_top(np.where(m, w, -np.inf), n_keep)) | layer_top(g, n_prune)
    c = salient.sum(axis=1)
    # 3. Ablation with tau = max(1, floor(gamma k0)), lowered so that ceil(nnz*/fan_in) neurons survive.
    tau = 0 if gamma_sal == 0 else max(1, int(np.floor(gamma_sal * k0)))
    min_active = -(-nnz_target // fan_in)
    tau = min(tau, int(np.sort(c)[::-1][min_active - 1]))
    survive = c >= tau
    # 4. k'.
    k_new = nnz_target // int(survive.sum())
    # 5. Drop: global top n_keep |W| among surviving rows, then cap each row at k' by magnitude.
    live = m & survive[:, None]
    keep = live & layer_top(np.where(live, w, -np.inf), n_keep)
    for i in range(n_out):
        keep[i] &= top_k(np.where(keep[i], w[i], -np.inf), k_new)
    # 6. Grow each surviving row back to k' by |grad| among its non-kept entries.
    grow = np.zeros_like(keep)
    for i in np.flatnonzero(survive):
        grow[i] = ~keep[i] & top_k(np.where(keep[i], -np.inf, g[i]), k_new - int(keep[i].sum()))
    back = lambda a: a.T.reshape(shape)
    return back(keep | grow), back(grow)


def grouped_srigl_reference(weights, grads, mask, drop, *, nnz_target: int, k0: int, gamma_sal: float, group_size: int):
    """Group-shared SRigL: each block of G consecutive neurons is one neuron whose score for an input is the
    sum over its G columns (|w| and |grad|), with nnz*//G group connections; its pattern is copied to all G
    columns. Integer-valued inputs keep the float32 group sums of the updater exact."""
    shape = np.shape(mask)
    n_out = shape[-1]
    n_groups = n_out // group_size
    fan_in = int(np.prod(shape)) // n_out
    group_sum = lambda a: np.abs(np.asarray(a, np.float64)).reshape(fan_in, n_groups, group_size).sum(axis=-1)
    m_group = np.asarray(mask, bool).reshape(fan_in, n_groups, group_size)[..., 0]
    new, grown = srigl_reference(
        group_sum(weights), group_sum(grads), m_group, drop,
        nnz_target=nnz_target // group_size, k0=k0, gamma_sal=gamma_sal,
    )  # fmt: skip
    expand = lambda a: np.repeat(a, group_size, axis=-1).reshape(shape)
    return expand(new), expand(grown)
