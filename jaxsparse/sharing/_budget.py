"""FiPS rank from a parameter budget, and the parameter count of a compressed group (fips.md §3).

A group of n blocks with width d and MLP hidden size h has 2 n d h dense MLP weights (fc1 and fc2 of every
block). FiPS replaces them by one dense shared base U [d, r] and sparse factors V [r, 2 n h] of sparsity s, so
one unit of rank costs 2 n h (1 - s) factor nonzeros plus one column of U (d weights).
"""

import math
from fractions import Fraction

from jaxsparse._checks import check_fraction, check_int, check_optional_int

__all__ = ["fips_param_count", "fips_rank"]


def _exact(x: float) -> Fraction:
    # Through the shortest decimal repr, so budget=0.4 is exactly 2/5: with float arithmetic an exact
    # quotient such as 245.0 can come out as 244.99999999999997 and floor one rank too low.
    return Fraction(repr(float(x)))


def _hidden(d: int, hidden) -> int:
    return 4 * d if hidden is None else check_int(hidden, "hidden", minimum=1)


def fips_rank(
    d: int, n_blocks: int, budget: float, sparsity: float, *, hidden: int | None = None, round_to=None
) -> int:
    """The largest rank r whose shared base and sparse factors fit in `budget` of the group's dense MLP weights.

        budget_params = 2 n d h p,   per_rank = 2 n h (1 - s) + d,   r = floor(budget_params / per_rank)

    (h = 4d gives the spec's 8 n d^2 p and 8 n d (1 - s) + d.) Biases, attention and norms are outside the
    budget. r may exceed d (at s = 0.75 r/d reaches about 1.85); `svd_init` pads such ranks.

    Args:
      d: model width of the group's blocks.
      n_blocks: n, blocks sharing one base.
      budget: p in (0, 1), the kept fraction of the group's dense MLP weights.
      sparsity: s in [0, 1), the sparsity of the factors V.
      hidden: MLP hidden size h (default 4d).
      round_to: optional positive int; r is rounded down to a multiple of it (e.g. 64 for tensor cores, or
        M of an N:M pattern along the rank axis).

    Returns:
      r >= 1 (ValueError when the budget cannot pay for one rank, or for a multiple of `round_to`).

    Example:
      >>> fips_rank(192, 2, 0.4, 0.75)  # Swin-L stage 1
      245
    """
    d = check_int(d, "d", minimum=1)
    n_blocks = check_int(n_blocks, "n_blocks", minimum=1)
    p = check_fraction(budget, "budget", allow_zero=False)
    s = check_fraction(sparsity, "sparsity", allow_zero=True)
    h = _hidden(d, hidden)
    round_to = check_optional_int(round_to, "round_to", minimum=1)
    budget_params = 2 * n_blocks * d * h * _exact(p)
    per_rank = 2 * n_blocks * h * (1 - _exact(s)) + d
    r = math.floor(budget_params / per_rank)
    if round_to is not None:
        r -= r % round_to
    if r < 1:
        raise ValueError(
            f"budget={p} cannot pay for rank 1 of a group with d={d}, n_blocks={n_blocks}, hidden={h}, "
            f"sparsity={s} (one rank costs {float(per_rank):.1f} weights of {float(budget_params):.1f}"
            + (f", rounded down to a multiple of round_to={round_to}" if round_to is not None else "")
            + ")"
        )
    return r


def fips_param_count(d: int, rank: int, n_blocks: int, sparsity: float, *, hidden: int | None = None) -> dict:
    """Parameters of one compressed group next to its dense MLP weights.

    Args:
      d, rank, n_blocks: width, rank r and number of blocks n of the group.
      sparsity: s in [0, 1) of the factors.
      hidden: MLP hidden size h (default 4d).

    Returns:
      A dict of ints and floats: `base` (d r, U is dense), `factor_size` (r 2 n h), `factor_nnz`
      (floor(factor_size (1 - s))), `total` (base + factor_nnz), `dense` (2 n d h, the MLP weights it
      replaces), `fraction` (total / dense), `biases` (n (h + d): copied from the dense MLPs, counted apart
      as in the paper), and the inputs `d`, `hidden`, `rank`, `n_blocks`, `sparsity`.
    """
    d = check_int(d, "d", minimum=1)
    rank = check_int(rank, "rank", minimum=1)
    n_blocks = check_int(n_blocks, "n_blocks", minimum=1)
    s = check_fraction(sparsity, "sparsity", allow_zero=True)
    h = _hidden(d, hidden)
    factor_size = rank * 2 * n_blocks * h
    factor_nnz = math.floor(factor_size * (1 - _exact(s)))
    base = d * rank
    dense = 2 * n_blocks * d * h
    return {
        "d": d,
        "hidden": h,
        "rank": rank,
        "n_blocks": n_blocks,
        "sparsity": s,
        "base": base,
        "factor_size": factor_size,
        "factor_nnz": factor_nnz,
        "total": base + factor_nnz,
        "dense": dense,
        "fraction": (base + factor_nnz) / dense,
        "biases": n_blocks * (h + d),
    }
