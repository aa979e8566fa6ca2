"""Shared fixtures for the DST tests: a small params pytree, its sparsity plan, fake gradients and updaters."""

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
    key = jax.random.key(seed)
    params = {}
    for i, (name, (shape, _)) in enumerate(LAYERS.items()):
        kk, kb = jax.random.split(jax.random.fold_in(key, i))
        params[name] = {
            "kernel": jax.random.normal(kk, shape, jnp.float32),
            "bias": 0.1 * jax.random.normal(kb, (shape[-1],), jnp.float32),
        }
    return params


TARGETS = jax.tree.map(np.asarray, make_params(seed=2))


def fake_grads(params, gkey):
    """Gradient of 0.5 |p - target|^2 plus step noise: dense, different at every step."""
    leaves, treedef = jax.tree.flatten(params)
    targets = treedef.flatten_up_to(TARGETS)
    return treedef.unflatten(
        [
            p - t + 0.1 * jax.random.normal(jax.random.fold_in(gkey, i), p.shape, p.dtype)
            for i, (p, t) in enumerate(zip(leaves, targets, strict=True))
        ]
    )


def grad_key(i: int):
    return jax.random.fold_in(jax.random.key(123), i)


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
