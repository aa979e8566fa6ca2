"""Per-leaf mask updates checked by hand (RigL, SET, SRigL) and against the numpy spec references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse import dst

from ._common import srigl_reference, unstructured_reference

B = lambda rows: np.array(rows, bool)


def run_unstructured(w, scores, mask, drop, *, jit=False):
    fn = jax.jit(dst.unstructured_mask_update) if jit else dst.unstructured_mask_update
    new, grown = fn(jnp.asarray(w, jnp.float32), jnp.asarray(scores, jnp.float32), jnp.asarray(mask), jnp.float32(drop))
    assert new.dtype == jnp.bool_ and grown.dtype == jnp.bool_
    return np.asarray(new), np.asarray(grown)


def run_srigl(w, g, mask, drop, *, nnz_target, k0, gamma_sal):
    new, grown = dst.srigl_mask_update(
        jnp.asarray(w, jnp.float32),
        jnp.asarray(g, jnp.float32),
        jnp.asarray(mask),
        jnp.float32(drop),
        nnz_target=nnz_target,
        k0=k0,
        gamma_sal=gamma_sal,
    )
    assert new.shape == np.shape(mask) and grown.shape == np.shape(mask)
    return np.asarray(new), np.asarray(grown)


# ------------------------------------------------------------------------------ RigL / SET by hand

# 4x3 kernel, flat (row-major) index r * 3 + c. Active: 0 (.9), 2 (-.4), 4 (.5), 6 (-.3), 8 (.4), 10 (-.1).
W = np.array([[0.9, 0.0, -0.4], [0.0, 0.5, 0.0], [-0.3, 0.0, 0.4], [0.0, -0.1, 0.0]])
M = W != 0
# |g|: kept index 0 has the largest gradient (ineligible); 6 was just dropped and has the top grad;
# 1, 3 and 9 tie at .8 for the last two slots.
G = np.array([[5.0, 0.8, 0.0], [0.8, 0.0, 0.1], [-0.9, 0.2, 0.3], [-0.8, 0.0, 0.05]])


@pytest.mark.parametrize("jit", [False, True])
def test_rigl_hand_example_with_ties(jit):
    # drop 0.5: n_prune = 3, n_keep = 3. Keep .9 (0), .5 (4), then .4 ties between 2 and 8 -> 2 (lower index).
    # Grow the top 3 |g| outside {0, 2, 4}: .9 (6), then .8 ties between 1, 3, 9 -> 1 and 3.
    new, grown = run_unstructured(W, np.abs(G), M, 0.5, jit=jit)
    np.testing.assert_array_equal(new, B([[1, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 0]]))
    np.testing.assert_array_equal(grown, B([[0, 1, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0]]))  # 6: dropped, regrown
    assert new.sum() == M.sum()


def test_rigl_drop_zero_and_drop_one():
    new, grown = run_unstructured(W, np.abs(G), M, 0.0)
    np.testing.assert_array_equal(new, M)
    assert not grown.any()
    # drop 1: nothing kept; the 6 largest |g| anywhere: 5 (0), .9 (6), .8 (1, 3, 9), .3 (8).
    new, grown = run_unstructured(W, np.abs(G), M, 1.0)
    np.testing.assert_array_equal(new, B([[1, 1, 0], [1, 0, 0], [1, 0, 1], [1, 0, 0]]))
    np.testing.assert_array_equal(grown, new)


def test_set_hand_example_with_ties():
    # SET grows by random scores; with fixed scores it is the same rule. Kept: {0, 2, 4} as above. Outside the
    # kept set the top 3 scores are .8 (10), .7 (8), then .6 ties between 7 and 9 -> 7.
    scores = np.array([[0.99, 0.1, 0.2], [0.3, 0.98, 0.4], [0.5, 0.6, 0.7], [0.6, 0.8, 0.05]])
    new, grown = run_unstructured(W, scores, M, 0.5)
    np.testing.assert_array_equal(new, B([[1, 0, 1], [0, 1, 0], [0, 1, 1], [0, 1, 0]]))
    np.testing.assert_array_equal(grown, B([[0, 0, 0], [0, 0, 0], [0, 1, 1], [0, 1, 0]]))


def test_set_scores_from_a_key_are_deterministic():
    shape = (6, 5)
    w = np.asarray(jax.random.normal(jax.random.key(3), shape))
    mask = np.asarray(jax.random.uniform(jax.random.key(4), shape)) < 0.4
    scores = lambda k: np.asarray(jax.random.uniform(k, shape))
    a = run_unstructured(w, scores(jax.random.key(7)), mask, 0.5)
    b = run_unstructured(w, scores(jax.random.key(7)), mask, 0.5)
    c = run_unstructured(w, scores(jax.random.key(8)), mask, 0.5)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert a[0].sum() == c[0].sum() == mask.sum()


@pytest.mark.parametrize("shape", [(5, 4), (2, 3, 4), (3, 3, 2, 4)])
def test_unstructured_matches_reference_with_many_ties(shape):
    rng = np.random.default_rng(sum(shape))
    for drop in (0.0, 0.1, 0.3, 0.5, 0.9, 1.0):
        mask = rng.random(shape) < 0.5
        w = rng.integers(-3, 4, shape) * mask  # integer values: many ties
        scores = rng.integers(0, 3, shape).astype(float)
        new, grown = run_unstructured(w, scores, mask, drop)
        exp_new, exp_grown = unstructured_reference(w, scores, mask, drop)
        np.testing.assert_array_equal(new, exp_new)
        np.testing.assert_array_equal(grown, exp_grown)
        assert new.sum() == mask.sum()  # nnz conserved exactly


# ------------------------------------------------------------------------------ SRigL by hand
# Written as rows = output neurons ([n_out, fan_in]) and transposed into the Flax [fan_in, n_out] layout.

T = lambda rows: np.array(rows, float).T
TB = lambda rows: np.array(rows, bool).T

# 3 neurons x 4 inputs, nnz* = 6 (sparsity 0.5), k0 = 2, min_active = ceil(6 / 4) = 2.
A_MASK = TB([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]])
A_W = T([[0.9, 0.8, 0, 0], [0, 0.1, -0.2, 0], [0, 0, 0.7, -0.6]])
A_G = T([[0.1, 0.2, 0.3, 0.9], [0.05, 0.0, 0.1, 0.0], [0.6, -0.2, 0.4, -0.5]])
A_NEW = TB([[1, 1, 0, 1], [0, 0, 0, 0], [1, 0, 1, 1]])
A_GROWN = TB([[0, 0, 0, 1], [0, 0, 0, 0], [1, 0, 0, 1]])


def test_srigl_hand_example_ablates_one_neuron():
    # drop .5: n_prune = 3, n_keep = 3. Magnitude-salient: .9, .8 (n0), .7 (n2). Top-3 |g| in the layer:
    # .9 (n0 j3), .6 (n2 j0), .5 (n2 j3). c = [3, 0, 3]; tau = max(1, floor(.5 * 2)) = 1 -> n1 ablated.
    # k' = 6 // 2 = 3. Keep the global top 3 |w| of survivors: n0 {0, 1}, n2 {2} (n2 j3 = .6 is dropped).
    # Grow n0 by 1: j3 (.9 > .3). Grow n2 by 2: j0 (.6), j3 (.5 > .2) -- j3 is dropped and regrown.
    new, grown = run_srigl(A_W, A_G, A_MASK, 0.5, nnz_target=6, k0=2, gamma_sal=0.5)
    np.testing.assert_array_equal(new, A_NEW)
    np.testing.assert_array_equal(grown, A_GROWN)


def test_srigl_saliency_is_the_union_over_the_whole_layer():
    """Spec §1.2: the top n_prune |grad| are taken over the whole layer, overlaps with the kept set included.

    The largest gradient (1.0) sits on a kept weight of n0, so the top-3 |grad| are n0 j0, n0 j3, n2 j0 and
    n1 (whose best |grad| .55 is only 4th) has no salient weight: c = [3, 0, 2] and n1 is ablated as above.
    (Filling the 3 gradient slots from outside the kept set instead would make n1 salient and keep k' = 2.)
    """
    g = T([[1.0, 0.2, 0.3, 0.9], [0.0, 0.0, 0.55, 0.0], [0.6, 0.2, 0.4, 0.5]])
    new, grown = run_srigl(A_W, g, A_MASK, 0.5, nnz_target=6, k0=2, gamma_sal=0.5)
    np.testing.assert_array_equal(new, A_NEW)
    np.testing.assert_array_equal(grown, A_GROWN)


def test_srigl_min_survivor_clamp_lowers_tau_and_keeps_ties():
    """Spec §1.2-1.3: union saliency, then tau is lowered when fewer than ceil(nnz*/fan_in) rows reach it.

    4 neurons x 4 inputs, nnz* = 12, k0 = 3, min_active = 3, gamma .99 -> tau = floor(2.97) = 2.
    drop .5: n_prune = n_keep = 6. Kept by magnitude: all of n0 and n1. Top-6 |grad| (whole layer): n0 j3,
    n1 j0, n0 j0, n0 j1, n2 j1, n3 j2 (two overlap kept weights), so c = [4, 4, 1, 1]. Only 2 rows reach
    tau = 2 < 3, so tau drops to the 3rd largest c = 1 and n2, n3 (tied) both survive: k' = 12 // 4 = 3.
    Drop keeps the global top 6 |w| (n0, n1 whole); n2 and n3 regrow 3 each by |grad|.
    """
    mask = TB([[1, 1, 1, 0], [0, 1, 1, 1], [1, 0, 1, 1], [1, 1, 0, 1]])
    w = T([[5, 6, 7, 0], [0, 8, 9, 4], [0.1, 0, 0.2, 0.3], [0.4, 0.5, 0, 0.6]])
    g = T([[8, 7, 0.1, 10], [9, 0.1, 0.2, 0.3], [1, 6, 2, 3], [4, 0.5, 5, 0.6]])
    new, grown = run_srigl(w, g, mask, 0.5, nnz_target=12, k0=3, gamma_sal=0.99)
    np.testing.assert_array_equal(new, TB([[1, 1, 1, 0], [0, 1, 1, 1], [0, 1, 1, 1], [1, 0, 1, 1]]))
    np.testing.assert_array_equal(grown, TB([[0, 0, 0, 0], [0, 0, 0, 0], [0, 1, 1, 1], [1, 0, 1, 1]]))


def test_srigl_min_survivor_clamp_tied_rows_all_survive():
    """8 neurons x 5 inputs, k0 = 4, nnz* = 32, min_active = ceil(32 / 5) = 7, gamma .99 -> tau = 3.

    n0..n5 hold the large weights (inputs 0-3) and a top gradient on their inactive input 4; n6 and n7 have
    small weights and one top gradient each on their inactive input. drop .25: n_prune = 8, n_keep = 24.
    Magnitude-salient: the 24 weights of n0..n5; top-8 |grad|: the six inactive inputs of n0..n5, n6 j4 and
    n7 j0 (none overlaps the kept set). c = [5] * 6 + [1, 1]: only 6 rows reach tau = 3 < 7, so tau drops
    to the 7th largest c = 1 and both tied rows n6, n7 survive (not just the lower-indexed one):
    k' = 32 // 8 = 4. n0..n5 keep their 4 weights; n6 and n7 regrow 4 each by |grad|.
    """
    n_out, fan_in = 8, 5
    mask, w, g = np.zeros((n_out, fan_in), bool), np.zeros((n_out, fan_in)), np.zeros((n_out, fan_in))
    for i in range(6):
        mask[i, :4] = True
        w[i, :4] = 10 + i + 0.1 * np.arange(4)
        g[i] = [0.01, 0.01, 0.01, 0.01, 50 + i]
    mask[6, :4] = True
    w[6] = [0.1, 0.2, 0.3, 0.4, 0]
    g[6] = [0.04, 0.03, 0.02, 0.01, 20]
    mask[7, 1:] = True
    w[7] = [0, 0.15, 0.25, 0.35, 0.45]
    g[7] = [19, 0.01, 0.02, 0.03, 0.04]
    new, grown = run_srigl(w.T, g.T, mask.T, 0.25, nnz_target=32, k0=4, gamma_sal=0.99)
    expected = mask.copy()
    expected[6] = [1, 1, 1, 0, 1]  # j4 (20), then j0, j1, j2 (.04, .03, .02)
    expected[7] = [1, 0, 1, 1, 1]  # j0 (19), then j4, j3, j2 (.04, .03, .02)
    expected_grown = np.zeros_like(mask)
    expected_grown[6:] = expected[6:]  # all of n6 and n7 were dropped (or are new) and regrown at 0
    np.testing.assert_array_equal(new, expected.T)
    np.testing.assert_array_equal(grown, expected_grown.T)


def test_srigl_gamma_zero_never_ablates_and_keeps_k0():
    # Same layer: every neuron survives and k' = 6 // 3 = 2 = k0. Keep .9, .8 (n0), .7 (n2); grow n1 by 2:
    # j2 (.1), j0 (.05) (j2 was dropped: regrown); n2 by 1: j0 (.6).
    new, grown = run_srigl(A_W, A_G, A_MASK, 0.5, nnz_target=6, k0=2, gamma_sal=0.0)
    np.testing.assert_array_equal(new, TB([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 1, 0]]))
    np.testing.assert_array_equal(grown, TB([[0, 0, 0, 0], [1, 0, 1, 0], [1, 0, 0, 0]]))


@pytest.mark.parametrize("gamma_sal", [0.0, 0.5])
def test_srigl_drop_zero_is_a_no_op(gamma_sal):
    # drop 0: every active weight is magnitude-salient (c = [2, 2, 2] >= tau = 1), so nothing is ablated.
    new, grown = run_srigl(A_W, A_G, A_MASK, 0.0, nnz_target=6, k0=2, gamma_sal=gamma_sal)
    np.testing.assert_array_equal(new, A_MASK)
    assert not grown.any()


def random_fan_in_case(rng, shape, *, ablated: int):
    n_out = shape[-1]
    fan_in = int(np.prod(shape)) // n_out
    k0 = int(rng.integers(1, fan_in + 1))
    nnz_target = min(k0 * n_out + int(rng.integers(0, n_out)), fan_in * n_out)
    rows = np.zeros((n_out, fan_in), bool)
    alive = rng.permutation(n_out)[ablated:]
    k = nnz_target // len(alive) if ablated else k0
    k = min(k, fan_in)
    for i in alive:
        rows[i, rng.choice(fan_in, k, replace=False)] = True
    mask = rows.T.reshape(shape)
    w = (rng.integers(-3, 4, shape) * mask).astype(float)
    g = rng.integers(-2, 3, shape).astype(float)
    return w, g, mask, nnz_target, k0


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 5), (6, 4)])
def test_srigl_matches_spec_reference_and_invariants(shape):
    """Random tie-heavy layers (some already ablated) against the step-by-step numpy reference of the spec."""
    rng = np.random.default_rng(int(np.prod(shape)))
    for case in range(24):
        w, g, mask, nnz_target, k0 = random_fan_in_case(rng, shape, ablated=case % 2)
        drop = [0.0, 0.2, 0.5, 1.0][case % 4]
        gamma = [0.0, 0.3, 0.9][case % 3]
        new, grown = run_srigl(w, g, mask, drop, nnz_target=nnz_target, k0=k0, gamma_sal=gamma)
        exp_new, exp_grown = srigl_reference(w, g, mask, drop, nnz_target=nnz_target, k0=k0, gamma_sal=gamma)
        np.testing.assert_array_equal(new, exp_new, err_msg=f"case {case}")
        np.testing.assert_array_equal(grown, exp_grown, err_msg=f"case {case}")
        # Invariants: constant fan-in k' over active neurons, nnz* - n_active < nnz <= nnz*, k' <= fan_in.
        n_out = shape[-1]
        fan_in = new.size // n_out
        fan = new.reshape(fan_in, n_out).sum(axis=0)
        n_active = int((fan > 0).sum())
        k_new = nnz_target // n_active
        np.testing.assert_array_equal(fan[fan > 0], k_new)
        assert nnz_target - n_active < new.sum() <= nnz_target and k_new <= fan_in
        assert not (grown & ~new).any()
        if gamma == 0:
            assert n_active == n_out and k_new == nnz_target // n_out
