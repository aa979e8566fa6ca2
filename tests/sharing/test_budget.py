"""Rank from the parameter budget and parameter counts (fips.md §3, check 5)."""

import math

import pytest

from jaxsparse.sharing import fips_param_count, fips_rank

# Swin-L, p = 0.4, s = 0.75: stage (d, n) -> r and counted / dense (fips.md §3).
SWIN_L = [(192, 2, 245, 0.3988), (384, 2, 491, 0.3996), (768, 6, 1134, 0.3999), (1536, 2, 1966, 0.4000)]


@pytest.mark.parametrize(("d", "n", "r", "fraction"), SWIN_L)
def test_swin_large_table(d, n, r, fraction):
    assert fips_rank(d, n, 0.4, 0.75) == r
    count = fips_param_count(d, r, n, 0.75)
    assert round(count["fraction"], 4) == fraction
    assert count["base"] == d * r
    assert count["factor_size"] == r * 8 * n * d
    assert count["factor_nnz"] == r * 8 * n * d // 4
    assert count["dense"] == 8 * n * d * d
    assert count["biases"] == n * (4 * d + d)


def test_rank_by_hand_and_budget_bounds():
    # d = 10, n = 3, h = 40, p = 0.3, s = 0.6: budget = 2*3*10*40*0.3 = 720, per rank = 2*3*40*0.4 + 10 = 106.
    assert fips_rank(10, 3, 0.3, 0.6) == 6  # floor(720 / 106) = floor(6.79)
    # An explicit hidden size (not 4d): h = 24, budget = 2*3*10*24*0.3 = 432, per rank = 2*3*24*0.4 + 10 = 67.6.
    assert fips_rank(10, 3, 0.3, 0.6, hidden=24) == 6
    for d, n, p, s in [(64, 4, 0.5, 0.75), (96, 1, 0.25, 0.5), (32, 12, 0.6, 0.0), (200, 3, 0.45, 0.9)]:
        r = fips_rank(d, n, p, s)
        counted = d * r + (1 - s) * r * 8 * n * d
        per_rank = 8 * n * d * (1 - s) + d
        # Within the budget, and within one per-rank cost of it (check 5).
        assert counted <= p * 8 * n * d * d + 1e-6
        assert p * 8 * n * d * d - counted < per_rank


def test_exact_quotient_is_not_rounded_down():
    # budget_params / per_rank is exactly 5 here (d=4, n=1, h=16: 2*1*4*16*p = 128 p; per rank 32*0.5 + 4 = 20);
    # p = 0.78125 gives 100 / 20 = 5 in exact arithmetic.
    assert fips_rank(4, 1, 0.78125, 0.5) == 5


def test_round_to():
    assert fips_rank(768, 6, 0.4, 0.75, round_to=64) == 1088  # 1134 rounded down to a multiple of 64
    assert fips_rank(192, 2, 0.4, 0.75, round_to=4) == 244
    with pytest.raises(ValueError, match="round_to"):
        fips_rank(8, 1, 0.1, 0.5, round_to=64)


def test_rank_above_width_is_allowed():
    r = fips_rank(1536, 2, 0.4, 0.75)
    assert r > 1536 and math.isclose(r / 1536, 1.28, abs_tol=0.01)


@pytest.mark.parametrize("budget", [0.0, -0.1, 1.0, 1.5, float("nan"), "0.5", True])
def test_bad_budget(budget):
    with pytest.raises(ValueError, match="budget"):
        fips_rank(64, 2, budget, 0.5)


@pytest.mark.parametrize("sparsity", [-0.1, 1.0, 2.0, None])
def test_bad_sparsity(sparsity):
    with pytest.raises(ValueError, match="sparsity"):
        fips_rank(64, 2, 0.5, sparsity)
    with pytest.raises(ValueError, match="sparsity"):
        fips_param_count(64, 10, 2, sparsity)


@pytest.mark.parametrize(("kwargs", "name"), [
    (dict(d=0), "d"), (dict(d=2.5), "d"), (dict(n_blocks=0), "n_blocks"), (dict(hidden=0), "hidden"),
    (dict(round_to=0), "round_to"),
])  # fmt: skip
def test_bad_ints(kwargs, name):
    args = dict(d=64, n_blocks=2, budget=0.5, sparsity=0.5) | kwargs
    with pytest.raises(ValueError, match=name):
        fips_rank(args.pop("d"), args.pop("n_blocks"), args.pop("budget"), args.pop("sparsity"), **args)


def test_budget_too_small_for_one_rank():
    with pytest.raises(ValueError, match="cannot pay for rank 1"):
        fips_rank(64, 1, 0.001, 0.0)


def test_param_count_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank"):
        fips_param_count(64, 0, 2, 0.5)
