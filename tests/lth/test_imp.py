"""Iterative magnitude pruning: exact per-round densities, global magnitude order, nested masks, filters."""

import itertools

import jax
import numpy as np
import pytest

from jaxsparse import lth, masks


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "a": {"kernel": rng.normal(size=(20, 30)), "bias": rng.normal(size=30)},
        "b": {"kernel": rng.normal(size=(3, 3, 4, 5))},
        "shortcut": {"kernel": rng.normal(size=(1, 1, 4, 5))},
    }


def _nnz(mask_tree):
    return sum(int(np.sum(m)) for m in jax.tree.leaves(mask_tree, is_leaf=lambda x: x is None) if m is not None)


def test_schedule_prunes_a_fraction_of_the_remaining_and_stops_at_each_target():
    counts = lth.imp_schedule(1000, (0.5, 0.8), 0.2)
    assert counts == [800, 640, 512, 500, 400, 320, 256, 204, 200]
    with pytest.raises(ValueError, match="increasing"):
        lth.imp_schedule(1000, (0.8, 0.5), 0.2)
    with pytest.raises(ValueError, match="fraction"):
        lth.imp_schedule(1000, (0.5,), 1.5)


def test_every_round_hits_its_density_and_masks_are_nested():
    params = _params()
    calls, seen = [], []

    def retrain(mask_tree, r, start):
        calls.append(r)
        for s, m in zip(jax.tree.leaves(start), jax.tree.leaves(mask_tree, is_leaf=lambda x: x is None), strict=True):
            assert m is None or not np.any(s[~m])  # training starts from masked weights
        seen.append(mask_tree)
        # "Training" changes magnitudes, so later rounds are not a one-shot top-k of the start.
        rng = np.random.default_rng(r)
        return jax.tree.map(
            lambda p, m: p * rng.uniform(0.5, 1.5, p.shape) * (1 if m is None else m),
            params,
            mask_tree,
            is_leaf=lambda x: x is None,
        )

    out = lth.iterative_magnitude_pruning(
        params, target_sparsities=(0.5, 0.9), fraction=0.3, retrain=retrain, filter_fn=lth.prunable_filter
    )
    total = 20 * 30 + 3 * 3 * 4 * 5  # the shortcut conv and the bias are not prunable
    assert out["total"] == total
    expected = lth.imp_schedule(total, (0.5, 0.9), 0.3)
    assert [r["nnz"] for r in out["rounds"]] == expected
    assert calls == list(range(len(expected)))
    for r, m in zip(out["rounds"], seen, strict=True):
        assert _nnz(m) == r["nnz"]
        assert m["shortcut"]["kernel"] is None and m["a"]["bias"] is None
    for prev, nxt in itertools.pairwise(seen):  # a pruned weight never comes back
        for p, n in zip(jax.tree.leaves(prev), jax.tree.leaves(nxt), strict=True):
            assert not np.any(n & ~p)
    for s in (0.5, 0.9):
        assert _nnz(out["masks"][s]) == masks.num_active(total, s)


def test_prune_step_keeps_the_global_largest_active_weights():
    params = _params(1)
    first = lth.global_prune_step(params, None, 300)
    flat = np.concatenate(
        [
            np.abs(params["a"]["kernel"]).ravel(),
            np.abs(params["b"]["kernel"]).ravel(),
            np.abs(params["shortcut"]["kernel"]).ravel(),
        ]
    )
    threshold = np.sort(flat)[-300]
    got = np.concatenate(
        [first["a"]["kernel"].ravel(), first["b"]["kernel"].ravel(), first["shortcut"]["kernel"].ravel()]
    )
    np.testing.assert_array_equal(got, flat >= threshold)
    # A second step only chooses among the survivors, even if pruned weights are large.
    boosted = jax.tree.map(lambda p: p * 100.0, params)
    second = lth.global_prune_step(boosted, first, 100)
    assert _nnz(second) == 100
    for p, n in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True):
        assert not np.any(n & ~p)


def test_bad_input_raises():
    params = _params()
    with pytest.raises(ValueError, match="keep"):
        lth.global_prune_step(params, None, 10**6)
    with pytest.raises(ValueError, match="eligible"):
        lth.global_prune_step(params, None, 3, filter_fn=lambda p, x: False)
    with pytest.raises(ValueError, match="retrain"):
        lth.iterative_magnitude_pruning(params, target_sparsities=(0.5,), retrain=3)
    with pytest.raises(ValueError, match="increasing"):
        lth.iterative_magnitude_pruning(params, target_sparsities=())


def test_rewind_params_restart_every_round():
    params = _params(2)
    rewind = jax.tree.map(lambda p: p + 10.0, params)  # recognisable: every rewound weight is > 5 in magnitude
    starts = []

    def retrain(mask_tree, r, start):
        starts.append(start)
        return jax.tree.map(lambda p: p * 0.5, start)

    lth.iterative_magnitude_pruning(params, target_sparsities=(0.6,), retrain=retrain, rewind_params=rewind)
    assert len(starts) == len(lth.imp_schedule(20 * 30 + 180 + 20, (0.6,), 0.2))
    for start in starts:
        kept = np.asarray(start["a"]["kernel"])[np.asarray(start["a"]["kernel"]) != 0]
        np.testing.assert_array_equal(np.abs(kept) > 5, True)
        np.testing.assert_array_equal(start["a"]["bias"], rewind["a"]["bias"])  # unmasked leaves rewind too
    with pytest.raises(ValueError, match="structure"):
        lth.iterative_magnitude_pruning(params, target_sparsities=(0.6,), retrain=retrain, rewind_params={"a": 1})
