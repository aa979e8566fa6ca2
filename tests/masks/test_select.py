"""`top_n_mask`: exact top-n with a traced n, checked against a stable-sort reference written here."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.masks import top_n_mask


def _reference(scores, n, valid):
    """The n largest valid scores; ties to the lower index (a stable descending sort of valid entries)."""
    order = [i for i in sorted(range(scores.size), key=lambda i: (-scores[i], i)) if valid[i]]
    out = np.zeros(scores.size, bool)
    out[order[: max(n, 0)]] = True
    return out


def test_matches_stable_sort_on_tie_heavy_random_cases():
    rng = np.random.default_rng(0)
    select = jax.jit(lambda s, n, v: top_n_mask(s, n, valid=v))  # n traced: one compile per shape
    for trial in range(120):
        size = 37
        scores = rng.integers(-3, 4, size).astype(np.float32) * rng.choice([1.0, 0.25, 1e-30])
        if trial % 3 == 0:
            scores[rng.random(size) < 0.2] = -np.inf
        if trial % 5 == 0:
            scores[rng.random(size) < 0.2] = np.inf
        valid = rng.random(size) < 0.8
        n = int(rng.integers(0, size + 3))
        got = np.asarray(select(jnp.asarray(scores), n, jnp.asarray(valid)))
        np.testing.assert_array_equal(got, _reference(scores, n, valid), err_msg=f"trial {trial}")


@pytest.mark.parametrize("n", [0, 1, 4, 8, 9])
def test_all_equal_scores_take_the_lowest_indices(n):
    got = np.asarray(top_n_mask(jnp.ones(8), n))
    assert got.sum() == min(n, 8) and np.all(got[: min(n, 8)])


def test_negative_zero_and_signs_are_ordered():
    scores = jnp.asarray([-1.0, -0.0, 0.0, 2.0, -3.0, 1e-38, -1e-38], jnp.float32)
    got = np.asarray(top_n_mask(scores, 4))
    np.testing.assert_array_equal(got, [False, True, True, True, False, True, False])


def test_per_row_selection_with_per_row_counts_on_any_axis():
    rng = np.random.default_rng(1)
    scores = rng.integers(-2, 3, (5, 9)).astype(np.float32)
    n = np.array([0, 1, 3, 9, 4])
    rows = np.asarray(top_n_mask(jnp.asarray(scores), jnp.asarray(n), axis=1))
    for r in range(5):
        np.testing.assert_array_equal(rows[r], _reference(scores[r], n[r], np.ones(9, bool)))
    cols = np.asarray(top_n_mask(jnp.asarray(scores.T), jnp.asarray(n), axis=0))
    np.testing.assert_array_equal(cols, rows.T)
    cube = rng.integers(-2, 3, (3, 4, 5)).astype(np.float32)
    got = np.asarray(top_n_mask(jnp.asarray(cube), 2, axis=1))
    for a in range(3):
        for c in range(5):
            np.testing.assert_array_equal(got[a, :, c], _reference(cube[a, :, c], 2, np.ones(4, bool)))


def test_bad_axis_raises():
    with pytest.raises(ValueError, match="axis"):
        top_n_mask(jnp.ones((2, 3)), 1, axis=2)


def _stable_reference(scores, n, valid):
    """numpy stable argsort version of `_reference` for large arrays."""
    flat, ok = scores.reshape(-1), valid.reshape(-1)
    order = np.argsort(-flat, kind="stable")
    order = order[ok[order]]
    out = np.zeros(flat.size, bool)
    out[order[: max(n, 0)]] = True
    return out.reshape(scores.shape)


@pytest.mark.parametrize("shape", [(32767, 2), (32768, 2), (70000,), (3, 2, 181, 7)])
def test_narrow_and_wide_count_accumulators_and_multi_dim_views(shape):
    # Counts accumulate along the leading axis of a 2-D view in int16 up to 32767 rows and int32 above:
    # both sides of that switch, a 1-D array and a 4-D one, with ties that must be split by index.
    rng = np.random.default_rng(sum(shape))
    scores = rng.integers(0, 50, shape).astype(np.float32)
    valid = rng.random(shape) < 0.9
    select = jax.jit(lambda s, n, v: top_n_mask(s, n, valid=v))
    for n in (0, 1, scores.size // 3, int(valid.sum()), scores.size):
        got = np.asarray(select(jnp.asarray(scores), n, jnp.asarray(valid)))
        np.testing.assert_array_equal(got, _stable_reference(scores, n, valid), err_msg=f"n={n}")


def test_per_axis_ties_split_only_where_needed():
    # Some columns have all their ties fit and others must cut them: the tie ranking runs for the whole call
    # and must leave the columns that needed no cut unchanged.
    scores = np.array([[1, 5, 2], [1, 5, 2], [1, 5, 2], [0, 4, 2]], np.float32)
    n = np.array([2, 3, 4])
    got = np.asarray(jax.jit(lambda s, n: top_n_mask(s, n, axis=0))(jnp.asarray(scores), jnp.asarray(n)))
    for c in range(3):
        np.testing.assert_array_equal(got[:, c], _reference(scores[:, c], n[c], np.ones(4, bool)))


def test_whole_array_selection_needs_a_scalar_n():
    with pytest.raises(ValueError, match="n must be a scalar"):
        top_n_mask(jnp.ones((2, 3)), jnp.array([1, 2]))
