"""Weight matching (Git Re-Basin): coordinate descent over permutations with a linear assignment solver.

Reference: Ainsworth, Hayase, Srinivasa, "Git Re-Basin", ICLR 2023, arXiv 2209.04836 (`weight_matching.py`
of samuela/git-re-basin).
"""

import dataclasses
from collections.abc import Mapping

import jax
import numpy as np
from scipy.optimize import linear_sum_assignment

from jaxsparse._checks import check_int, check_seed

from ._apply import check_permutation, identity_permutation, permutation_sizes
from ._spec import PermutationSpec, normalize_path

__all__ = ["WeightMatchingResult", "matching_objective", "weight_matching"]

_PROGRESS_TOL = 1e-12  # upstream's "a sweep gains nothing" threshold


@dataclasses.dataclass(frozen=True)
class WeightMatchingResult:
    """Outcome of `weight_matching`.

    Attributes:
      perm: name -> int array; applying it to `params_b` aligns B to A.
      objective_history: sum over spec arrays of <A, perm(B)> before the first sweep and after each sweep
        (the start computed directly, then accumulated from each accepted move's gain, so rounding cannot
        make it look like it decreases).
      sweeps: sweeps run (the last one gained nothing unless `converged` is False).
      converged: whether a sweep gained nothing before `max_iter`.
    """

    perm: dict
    objective_history: tuple[float, ...]
    sweeps: int
    converged: bool


def _arrays(spec: PermutationSpec, params) -> dict:
    flat, _ = jax.tree_util.tree_flatten_with_path(params, is_leaf=lambda x: x is None)
    leaves = {normalize_path(p): leaf for p, leaf in flat}
    out = {}
    for path in spec.axes_to_perm:
        leaf = leaves.get(path)
        if leaf is None:  # optional BatchNorm statistics: not weights, never matched
            continue
        if path in spec.optional:
            continue
        arr = np.asarray(jax.device_get(leaf))
        out[path] = arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float64)
    return out


def _cost_term(a_mat: np.ndarray, b: np.ndarray, axis: int) -> np.ndarray:
    """A[axis->0].reshape(n, -1) @ B[axis->0].reshape(n, -1).T; for the last axis both sides are (K, n) views
    (no copy): `a_mat` is then `A.reshape(-1, n)`, else `_matrix(A, axis)`."""
    if axis == b.ndim - 1:
        return a_mat.T @ b.reshape(-1, b.shape[-1])
    return a_mat @ _matrix(b, axis).T


def _matrix(x: np.ndarray, axis: int) -> np.ndarray:
    """`x` with `axis` first, flattened to [n, -1] (contiguous)."""
    return np.ascontiguousarray(np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1))


def matching_objective(spec: PermutationSpec, params_a, params_b, perm=None) -> float:
    """Sum over the spec's weight arrays (running statistics excluded) of <A, perm(B)>."""
    sizes = permutation_sizes(spec, params_a)
    if permutation_sizes(spec, params_b) != sizes:
        raise ValueError("params_a and params_b have different permutation sizes")
    perm = identity_permutation(sizes) if perm is None else check_permutation(perm, sizes)
    a, b = _arrays(spec, params_a), _arrays(spec, params_b)
    total = 0.0
    for path, wa in a.items():
        wb = b[path]
        for axis, name in enumerate(spec.axes_to_perm[path]):
            if name is not None:
                wb = np.take(wb, perm[name], axis=axis)
        total += float(np.vdot(wa.astype(np.float64), wb.astype(np.float64)))
    return total


def weight_matching(
    spec: PermutationSpec,
    params_a,
    params_b,
    *,
    seed: int = 0,
    max_iter: int = 100,
    init_perm: Mapping | None = None,
) -> WeightMatchingResult:
    """Finds permutations of B's hidden units that maximise sum <A, perm(B)> over the spec's weights.

    Coordinate descent: every sweep visits the permutations in a random order (numpy `default_rng(seed)`);
    for permutation p of size n it builds M_p = sum over (array, axis) of p of A[axis->0].reshape(n, -1) @
    (B with every other permutation applied)[axis->0].reshape(n, -1).T and solves the linear assignment
    maximising <M_p, P> with `scipy.optimize.linear_sum_assignment`. A new assignment is accepted only when its
    gain exceeds 1e-12 (so the objective never decreases); the descent stops after a sweep in which no
    permutation moved. Costs are computed in float64 against a cached copy of B with every permutation
    applied (one `take` per accepted move instead of re-permuting B for every cost matrix). BatchNorm
    running statistics in the trees are ignored (they are not weights); BN scale and bias are matched like
    biases.

    `perm[p][i]` is the index in B of the unit that moves to position i: `permute_params(spec, perm, B)`
    aligns B to A, and undoes a permutation that produced B from A.

    Args:
      spec: the permutation spec (both trees must satisfy it).
      params_a: reference params (pytree or `nnx.State`).
      params_b: params to align to A.
      seed: seed of the visiting order.
      max_iter: maximum number of sweeps.
      init_perm: starting permutation (identity when None).

    Returns:
      A `WeightMatchingResult`.
    """
    if not isinstance(spec, PermutationSpec):
        raise TypeError(f"spec must be a PermutationSpec, got {type(spec).__name__}")
    seed = check_seed(seed)
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    sizes = permutation_sizes(spec, params_a)
    sizes_b = permutation_sizes(spec, params_b)
    if sizes_b != sizes:
        raise ValueError(f"params_b's permutation sizes {sizes_b} differ from params_a's {sizes}")
    perm = identity_permutation(sizes) if init_perm is None else check_permutation(init_perm, sizes)
    a, b = _arrays(spec, params_a), _arrays(spec, params_b)
    for path, wa in a.items():
        if b[path].shape != wa.shape:
            raise ValueError(f"params_a and params_b differ in shape at {path}: {wa.shape} vs {b[path].shape}")
    # float64 throughout: the products of float32 weights are exact, so gains of 1e-12 are meaningful.
    work = np.float64
    a_mats = {
        (path, axis): (
            a[path].reshape(-1, a[path].shape[-1]) if axis == a[path].ndim - 1 else _matrix(a[path], axis)
        ).astype(work)
        for name in sizes
        for path, axis in spec.perm_to_axes[name]
        if path in a
    }
    b_perm = {}  # B with every permutation applied, kept current
    for path, wb in b.items():
        for axis, name in enumerate(spec.axes_to_perm[path]):
            if name is not None:
                wb = np.take(wb, perm[name], axis=axis)
        b_perm[path] = wb.astype(work)

    rng = np.random.default_rng(seed)
    names = list(sizes)
    value = float(sum(np.vdot(a[p].astype(np.float64), b_perm[p].astype(np.float64)) for p in a))
    history = [value]
    converged, sweeps = False, 0
    for _ in range(max_iter):
        sweeps += 1
        progress = False
        for idx in rng.permutation(len(names)):
            name = names[idx]
            n = sizes[name]
            touched = [(path, axis) for path, axis in spec.perm_to_axes[name] if path in a]
            # Column k of A_mat @ Bp_mat.T is B's unit perm[name][k]: scatter columns back to raw B units.
            m_cur = np.zeros((n, n))
            for key in touched:
                m_cur += _cost_term(a_mats[key], b_perm[key[0]], key[1])
            cost = np.empty_like(m_cur)
            cost[:, perm[name]] = m_cur
            rows, cols = linear_sum_assignment(cost, maximize=True)
            new = cols[np.argsort(rows)]
            moved = np.flatnonzero(new != perm[name])
            if moved.size == 0:
                continue
            inv_old = np.empty(n, np.int64)
            inv_old[perm[name]] = np.arange(n)
            source = inv_old[new]  # position in the current B_perm of the unit that moves to position i
            gain = float(np.sum(m_cur[moved, source[moved]]) - np.sum(m_cur[moved, moved]))
            if gain > _PROGRESS_TOL:
                progress = True
                value += gain
                perm[name] = new
                for path, axis in spec.perm_to_axes[name]:
                    if path in b_perm:
                        b_perm[path] = np.take(b_perm[path], source, axis=axis)
        history.append(value)
        if not progress:
            converged = True
            break
    return WeightMatchingResult(
        perm={k: v.astype(np.int64) for k, v in perm.items()},
        objective_history=tuple(history),
        sweeps=sweeps,
        converged=converged,
    )
