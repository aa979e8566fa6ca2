"""Activation matching (REPAIR-style, as in sparse-rebasin's `act_matching_resnet20.py`): one pass, per layer.

Every permutation group has an activation tensor per network, channels last (every other axis, pixels
included, is a sample). The Pearson correlation of A's and B's channels is accumulated from sums (so
batches combine exactly) and a linear assignment maximising the summed correlation gives the permutation.

Reference: Jordan et al., "REPAIR", arXiv 2211.08403; Adnan et al., arXiv 2505.05143.
"""

import dataclasses
from collections.abc import Iterable, Mapping

import jax
import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["CorrelationStats", "activation_matching", "correlation_from_stats"]


@dataclasses.dataclass(frozen=True)
class CorrelationStats:
    """Sums over samples of a, b, a², b² and a bᵀ for one group (float64), and the sample count."""

    sum_a: np.ndarray
    sum_b: np.ndarray
    sum_aa: np.ndarray
    sum_bb: np.ndarray
    sum_ab: np.ndarray
    count: int

    @staticmethod
    def from_activations(acts_a, acts_b) -> "CorrelationStats":
        a = np.asarray(jax.device_get(acts_a), dtype=np.float64)
        b = np.asarray(jax.device_get(acts_b), dtype=np.float64)
        if a.ndim < 2 or a.shape != b.shape:
            raise ValueError(f"activations must share a shape [samples, ..., channels], got {a.shape} and {b.shape}")
        a = a.reshape(-1, a.shape[-1])
        b = b.reshape(-1, b.shape[-1])
        return CorrelationStats(a.sum(0), b.sum(0), (a * a).sum(0), (b * b).sum(0), a.T @ b, int(a.shape[0]))

    def __add__(self, other: "CorrelationStats") -> "CorrelationStats":
        if self.sum_ab.shape != other.sum_ab.shape:
            raise ValueError(f"cannot add statistics of shapes {self.sum_ab.shape} and {other.sum_ab.shape}")
        return CorrelationStats(
            self.sum_a + other.sum_a,
            self.sum_b + other.sum_b,
            self.sum_aa + other.sum_aa,
            self.sum_bb + other.sum_bb,
            self.sum_ab + other.sum_ab,
            self.count + other.count,
        )


def correlation_from_stats(stats: CorrelationStats, *, eps: float = 1e-8) -> np.ndarray:
    """C[i, j] = Pearson corr(a_i, b_j); a constant channel gets correlation 0 with everything."""
    n = stats.count
    if n < 2:
        raise ValueError(f"need at least 2 samples for a correlation, got {n}")
    mean_a, mean_b = stats.sum_a / n, stats.sum_b / n
    cov = stats.sum_ab / n - np.outer(mean_a, mean_b)
    std_a = np.sqrt(np.maximum(stats.sum_aa / n - mean_a**2, 0.0))
    std_b = np.sqrt(np.maximum(stats.sum_bb / n - mean_b**2, 0.0))
    return cov / (np.outer(std_a, std_b) + eps)


def activation_matching(
    acts_a: Mapping[str, object] | Iterable[Mapping[str, object]],
    acts_b: Mapping[str, object] | Iterable[Mapping[str, object]] | None = None,
    *,
    eps: float = 1e-8,
) -> dict[str, np.ndarray]:
    """Permutations aligning B's hidden units to A's from activation correlations, one LAP per group.

    Args:
      acts_a: group name -> A's activations `[samples, ..., channels]` for that permutation group (e.g. the
        post-ReLU hidden layer; for a residual stream, the block outputs). Or an iterable of such dicts
        (batches), paired with `acts_b`'s.
      acts_b: the same for B (same names and shapes).
      eps: added to the std product (dead channels).

    Returns:
      name -> int array `perm` with `perm[i]` B's unit matched to A's unit i: `permute_params(spec, perm, B)`
      aligns B to A when the names are the spec's.
    """
    if isinstance(acts_a, Mapping):
        acts_a, acts_b = [acts_a], [acts_b]
    if acts_b is None:
        raise ValueError("acts_b is required")
    stats: dict[str, CorrelationStats] = {}
    count = 0
    for batch_a, batch_b in zip(acts_a, acts_b, strict=True):
        if not isinstance(batch_a, Mapping) or not isinstance(batch_b, Mapping) or set(batch_a) != set(batch_b):
            raise ValueError("acts_a and acts_b must be dicts with the same group names")
        for name in batch_a:
            s = CorrelationStats.from_activations(batch_a[name], batch_b[name])
            stats[name] = s if name not in stats else stats[name] + s
        count += 1
    if not count or not stats:
        raise ValueError("no activations given")
    perm = {}
    for name, s in stats.items():
        corr = correlation_from_stats(s, eps=eps)
        rows, cols = linear_sum_assignment(corr, maximize=True)
        perm[name] = cols[np.argsort(rows)].astype(np.int64)
    return perm
