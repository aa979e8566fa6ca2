"""SRigL with group-shared constant fan-in (group_size G > 1): per-group prune/regrow/ablation, checked by
hand, against the numpy reference, and over a jitted training trajectory of a tiny MLP."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxsparse import dst
from jaxsparse.masks import is_grouped_fan_in, random_grouped_fan_in_mask

from ._common import grouped_srigl_reference, make_params, make_tx

# Static arguments fixed per test case, so each (shape, gamma) compiles once; eager calls are slower.
update = jax.jit(dst.srigl_mask_update, static_argnames=("nnz_target", "k0", "gamma_sal", "group_size"))

T = lambda rows: np.array(rows, np.float32).T  # rows = output neurons -> the Flax [in, out] layout
TB = lambda rows: np.array(rows, bool).T


def run_update(w, g, mask, drop, **kw):
    new, grown = update(jnp.asarray(w, jnp.float32), jnp.asarray(g, jnp.float32), jnp.asarray(mask), drop, **kw)
    assert new.dtype == jnp.bool_ and new.shape == np.shape(mask) and grown.shape == np.shape(mask)
    return np.asarray(new), np.asarray(grown)


def check_invariants(new, grown, *, nnz_target: int, group_size: int):
    """Group-shared constant fan-in k' = nnz* // n_active over active neurons; ablated groups are empty."""
    assert is_grouped_fan_in(new, group_size, allow_ablated=True)
    n_out = new.shape[-1]
    fan_in_dense = new.size // n_out
    fan = new.reshape(fan_in_dense, n_out).sum(axis=0)
    n_active = int((fan > 0).sum())
    k_new = nnz_target // n_active
    np.testing.assert_array_equal(fan[fan > 0], k_new)
    assert 1 <= k_new <= fan_in_dense
    assert nnz_target - n_active < int(new.sum()) <= nnz_target
    assert not (grown & ~new).any()
    return n_active


# ------------------------------------------------------------------------------------------ by hand

# 2 groups of 2 neurons, 6 inputs, nnz* = 8 (nnz*//G = 4 group connections), k0 = 2.
# Group A = n0, n1 on inputs {0, 1}; group B = n2, n3 on inputs {2, 3}.
H_MASK = TB([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0], [0, 0, 1, 1, 0, 0]])
# Summed |w| per group input: A j0 = 1.1, A j1 = .7; B j2 = .4, B j3 = .3.
H_W = T([[0.9, 0.1, 0, 0, 0, 0], [0.2, 0.6, 0, 0, 0, 0], [0, 0, 0.3, 0.1, 0, 0], [0, 0, -0.1, 0.2, 0, 0]])
# Summed |grad|: A = [.1, .1, .8, .5, .2, .6]; B = [0, .05, 0, 0, .05, 0].
H_G = T(
    [
        [0.1, 0.0, 0.8, 0.0, 0.1, 0.0],
        [0.0, 0.1, 0.0, 0.5, 0.1, 0.6],
        [0.0, 0.0, 0.0, 0.0, 0.05, 0.0],
        [0.0, 0.05, 0.0, 0.0, 0.0, 0.0],
    ]
)
H_KW = {"nnz_target": 8, "k0": 2, "group_size": 2}


def test_hand_example_ablates_a_whole_group():
    """drop .5: n_prune = floor(4 * .5) = 2 group connections, n_keep = 2. Magnitude-salient: A j0, A j1;
    top-2 summed |grad| in the layer: A j2 (.8), A j5 (.6). c = [4, 0] < tau = max(1, floor(.5 * 2)) = 1 for
    B, so B is ablated as a unit: k' = 4 // 1 = 4 per neuron. A keeps j0, j1 and regrows j2, j5 by summed
    |grad| in both columns, although n0's own second-best |grad| is j4 (.1) and its |grad| at j5 is 0."""
    new, grown = run_update(H_W, H_G, H_MASK, 0.5, gamma_sal=0.5, **H_KW)
    np.testing.assert_array_equal(new, TB([[1, 1, 1, 0, 0, 1]] * 2 + [[0] * 6] * 2))
    np.testing.assert_array_equal(grown, TB([[0, 0, 1, 0, 0, 1]] * 2 + [[0] * 6] * 2))
    check_invariants(new, grown, nnz_target=8, group_size=2)


def test_hand_example_without_ablation():
    """gamma 0: k' = 4 // 2 = 2. The global top-2 summed |w| are A j0, A j1, so B loses both inputs and
    regrows two by summed |grad|: j1 and j4 (.05 each; n2 and n3 each have only one of them)."""
    new, grown = run_update(H_W, H_G, H_MASK, 0.5, gamma_sal=0.0, **H_KW)
    np.testing.assert_array_equal(new, TB([[1, 1, 0, 0, 0, 0]] * 2 + [[0, 1, 0, 0, 1, 0]] * 2))
    np.testing.assert_array_equal(grown, TB([[0] * 6] * 2 + [[0, 1, 0, 0, 1, 0]] * 2))


def test_drop_zero_is_a_no_op():
    new, grown = run_update(H_W, H_G, H_MASK, 0.0, gamma_sal=0.5, **H_KW)
    np.testing.assert_array_equal(new, H_MASK)
    assert not grown.any()


def test_mask_not_group_shared_marks_new_columns_grown():
    """A group connection active in only some of its columns counts as active for the group; if it is kept,
    the columns that lacked it are marked grown (their weights and moments start at zero)."""
    mask = H_MASK.copy()
    mask[1, 1] = False  # n1 lacks input 1 (mask is [in, out])
    new, grown = run_update(H_W, H_G, mask, 0.0, gamma_sal=0.5, **H_KW)
    np.testing.assert_array_equal(new, H_MASK)
    np.testing.assert_array_equal(grown, H_MASK & ~mask)


# ------------------------------------------------------------------------------- against the reference

# (shape, G, nnz*): nnz* not a multiple of G, so nnz*//G rounds down.
CASES = [((6, 8), 2, 29), ((6, 8), 4, 19), ((2, 3, 6), 3, 16)]


def random_grouped_case(rng, shape, group_size, nnz_target, *, ablated: int):
    n_out = shape[-1]
    fan_in = int(np.prod(shape)) // n_out
    n_groups = n_out // group_size
    k0 = nnz_target // n_out
    alive = rng.permutation(n_groups)[ablated:]
    k = min((nnz_target // group_size) // len(alive), fan_in)
    rows = np.zeros((n_groups, fan_in), bool)
    for i in alive:
        rows[i, rng.choice(fan_in, k, replace=False)] = True
    mask = np.repeat(rows.T, group_size, axis=1).reshape(shape)
    w = (rng.integers(-3, 4, shape) * mask).astype(np.float32)  # integers: many ties, exact group sums
    g = rng.integers(-2, 3, shape).astype(np.float32)
    return w, g, mask, k0


@pytest.mark.parametrize(("shape", "group_size", "nnz_target"), CASES)
def test_matches_reference_and_invariants(shape, group_size, nnz_target):
    rng = np.random.default_rng(int(np.prod(shape)) + group_size)
    for case in range(12):
        w, g, mask, k0 = random_grouped_case(rng, shape, group_size, nnz_target, ablated=case % 2)
        drop = [0.0, 0.2, 0.5, 1.0][case % 4]
        gamma = [0.0, 0.3, 0.9][case % 3]
        kw = {"nnz_target": nnz_target, "k0": k0, "gamma_sal": gamma, "group_size": group_size}
        new, grown = run_update(w, g, mask, drop, **kw)
        exp_new, exp_grown = grouped_srigl_reference(w, g, mask, drop, **kw)
        np.testing.assert_array_equal(new, exp_new, err_msg=f"case {case}")
        np.testing.assert_array_equal(grown, exp_grown, err_msg=f"case {case}")
        n_active = check_invariants(new, grown, nnz_target=nnz_target, group_size=group_size)
        if gamma == 0:
            assert n_active == shape[-1]


def test_identical_columns_reduce_to_ordinary_srigl():
    """A layer whose G columns per group are copies of one column behaves like that single-column layer
    under ordinary SRigL (nnz* // G), expanded: the group really is treated as one neuron."""
    rng = np.random.default_rng(7)
    shape, group_size, nnz_target = (6, 8), 4, 19
    w, g, mask, k0 = random_grouped_case(rng, shape, group_size, nnz_target, ablated=0)
    w, g = np.repeat(w[:, ::group_size], group_size, axis=1), np.repeat(g[:, ::group_size], group_size, axis=1)
    kw = {"k0": k0, "gamma_sal": 0.9}
    new, grown = run_update(w, g, mask, 0.5, nnz_target=nnz_target, group_size=group_size, **kw)
    small = run_update(w[:, ::group_size], g[:, ::group_size], mask[:, ::group_size], 0.5, nnz_target=4, **kw)
    np.testing.assert_array_equal(new, np.repeat(small[0], group_size, axis=1))
    np.testing.assert_array_equal(grown, np.repeat(small[1], group_size, axis=1))


# ------------------------------------------------------------------------------ tiny MLP, jitted updater

G = 4
rng_data = np.random.default_rng(0)
X = rng_data.standard_normal((32, 8)).astype(np.float32)
Y = rng_data.standard_normal((32, 4)).astype(np.float32)
MLP_SHAPES = {"l0": (8, 16), "l1": (16, 16), "out": (16, 4)}
MLP_SPARSITY = {"l0": {"kernel": 0.75, "bias": None}, "l1": {"kernel": 0.8, "bias": None}, "out": None}
MLP_NNZ = {"l0": 32, "l1": 51}  # floor(128 * .25), floor(256 * .2)
MLP_K0 = {"l0": 2, "l1": 3}
MLP_STEPS, MLP_EVERY, MLP_END = 10, 2, 9  # mask updates at counts 2, 4, 6, 8
# A group aggregates G columns' saliency, so ablating one takes a strict threshold: gamma 1 (tau = k0).
MLP_GAMMA, MLP_ALPHA = 1.0, 0.5


def mlp_params():
    rng = np.random.default_rng(1)
    params = {
        name: {
            "kernel": jnp.asarray(rng.standard_normal(shape) / np.sqrt(shape[0]), jnp.float32),
            "bias": jnp.zeros(shape[-1], jnp.float32),
        }
        for name, shape in MLP_SHAPES.items()
    }
    params["out"] = params["out"]["kernel"]  # a bare leaf: the sparsity tree marks it dense with None
    return params


def loss(params, x, y):
    h = jax.nn.relu(x @ params["l0"]["kernel"] + params["l0"]["bias"][None, :])
    h = jax.nn.relu(h @ params["l1"]["kernel"] + params["l1"]["bias"][None, :])
    return jnp.mean((h @ params["out"] - y) ** 2)


def mlp_srigl(**kw):
    return dst.srigl(
        optax.adam(1e-2), sparsity=MLP_SPARSITY, key=jax.random.key(0), update_every=MLP_EVERY,
        end_step=MLP_END, drop_fraction=MLP_ALPHA, gamma_sal=MLP_GAMMA, **kw,
    )  # fmt: skip


def train(tx, n_steps):
    traces = [0]

    @jax.jit
    def step(params, state):
        traces[0] += 1
        grads = jax.grad(loss)(params, X, Y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, grads

    state = tx.init(mlp_params())
    params = dst.apply_initial_masks(mlp_params(), state)
    history = [(params, state, None)]
    for _ in range(n_steps):
        history.append(step(*history[-1][:2]))
    return history, traces[0]


@pytest.fixture(scope="module")
def grouped_run():
    return train(mlp_srigl(group_size=G), MLP_STEPS)


def test_mlp_initial_masks_are_grouped(grouped_run):
    params, state, _ = grouped_run[0][0]
    for name in MLP_NNZ:
        m = np.asarray(state.masks[name]["kernel"])
        assert is_grouped_fan_in(m, G, fan_in=MLP_K0[name])
        assert np.all(np.asarray(params[name]["kernel"])[~m] == 0)
    assert state.masks["out"] is None and state.masks["l0"]["bias"] is None


def test_mlp_grouped_invariant_after_every_step_under_jit(grouped_run):
    history, traces = grouped_run
    assert traces == 1  # one compile across all mask updates
    changed, ablated = set(), False
    for i in range(1, len(history)):
        (old_params, old_state, _), (params, state, grads) = history[i - 1], history[i]
        count = int(old_state.count)
        drop = dst.cosine_drop_fraction(count, alpha=MLP_ALPHA, end_step=MLP_END)
        for name, nnz_target in MLP_NNZ.items():
            old_m, m = np.asarray(old_state.masks[name]["kernel"]), np.asarray(state.masks[name]["kernel"])
            w = np.asarray(params[name]["kernel"])
            grown = m & ~old_m
            n_active = check_invariants(m, grown, nnz_target=nnz_target, group_size=G)
            ablated |= n_active < m.shape[-1]
            assert np.all(w[~m] == 0) and np.all(w[grown] == 0)  # pruned and freshly grown weights are 0
            if not np.array_equal(m, old_m):
                changed.add(count)
                exp_new, _ = grouped_srigl_reference(
                    old_params[name]["kernel"], grads[name]["kernel"], old_m, float(drop),
                    nnz_target=nnz_target, k0=MLP_K0[name], gamma_sal=MLP_GAMMA, group_size=G,
                )  # fmt: skip
                np.testing.assert_array_equal(m, exp_new, err_msg=f"{name} at count {count}")
    assert changed and changed <= {2, 4, 6, 8}
    assert ablated  # whole groups are ablated along the way


def test_mlp_group_size_one_is_ordinary_srigl():
    """group_size=1 takes the ungrouped path: bitwise the trajectory of the default updater."""
    explicit, _ = train(mlp_srigl(group_size=1), 3)  # a mask update at count 2
    default, _ = train(mlp_srigl(), 3)
    for (p1, s1, _), (p2, s2, _) in zip(explicit, default, strict=True):
        for a, b in zip(jax.tree.leaves((p1, s1)), jax.tree.leaves((p2, s2)), strict=True):
            if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
                a, b = jax.random.key_data(a), jax.random.key_data(b)
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not is_grouped_fan_in(np.asarray(explicit[0][1].masks["l1"]["kernel"]), 4)  # per-neuron patterns


def test_initial_masks_match_the_grouped_builder():
    state = mlp_srigl(group_size=G).init(mlp_params())
    init_key = jax.random.split(jax.random.key(0))[0]  # the updater's init key; each leaf folds in its index
    for i, (path, leaf) in enumerate(jax.tree_util.tree_flatten_with_path(mlp_params())[0]):
        name = path[0].key
        if name in MLP_NNZ and path[-1].key == "kernel":
            expected = random_grouped_fan_in_mask(jax.random.fold_in(init_key, i), leaf.shape, MLP_K0[name], G)
            np.testing.assert_array_equal(np.asarray(state.masks[name]["kernel"]), np.asarray(expected))


# ----------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [0, -4, 2.5, True, "4"])
def test_bad_group_size_type(bad):
    with pytest.raises(ValueError, match="group_size"):
        make_tx("srigl", jax.random.key(0), group_size=bad)


def test_group_size_must_divide_every_sparse_leaf():
    # The shared params: conv [3, 3, 4, 8], l0 [16, 32], l1 [32, 24]; 3 divides none of 8 and 32.
    with pytest.raises(ValueError, match=r"group_size=3 must divide .*params\['conv'\]\['kernel'\]"):
        make_tx("srigl", jax.random.key(0), group_size=3).init(make_params())


def test_mask_update_rejects_bad_group_size():
    for bad in (3, 0, 2.0):
        with pytest.raises(ValueError, match="group_size"):
            dst.srigl_mask_update(H_W, H_G, H_MASK, 0.5, nnz_target=8, k0=2, gamma_sal=0.5, group_size=bad)
