"""In-place FiPS compression of a transformer's MLPs (fips.md §1–§5).

Model protocol (a test double and `jaxsparse.nn`'s ViT follow it):
- `model.blocks[i].mlp` has `fc1` and `fc2` (`nnx.Linear`, kernels [d, h] and [h, d]) and is called as
  `mlp(x, mlp_bases=None)`;
- `model.mlp_bases` is None until compression, and every block passes it down to its MLP;
- `model.embed(images)`, `model.block_forward(i, tokens)` and `model.head_forward(tokens)` (for the
  block-wise reconstruction).
"""

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxsparse._checks import check_fraction, check_int, check_optional_int

from ._budget import fips_param_count, fips_rank
from ._decompose import concat_mlp_kernels, split_factors, svd_init
from ._layer import FiPSMLP, FiPSParam, gelu
from ._masks import global_magnitude_masks, nm_factor_masks

__all__ = ["compress_mlps", "fips_mlp_paths"]

_is_none = lambda x: x is None


def _check_groups(groups, n_blocks: int) -> list[list[int]]:
    if isinstance(groups, str | bytes) or not isinstance(groups, Sequence) or not groups:
        raise ValueError(f"groups must be a non-empty list of lists of block indices, got {groups!r}")
    out, seen = [], {}
    for g, group in enumerate(groups):
        if isinstance(group, str | bytes) or not isinstance(group, Sequence) or not group:
            raise ValueError(f"groups[{g}] must be a non-empty list of block indices, got {group!r}")
        ids = []
        for i in group:
            i = check_int(i, f"groups[{g}] entry", minimum=0)
            if i >= n_blocks:
                raise ValueError(f"groups[{g}] has block {i}, but the model has {n_blocks} blocks (0..{n_blocks - 1})")
            if i in seen:
                raise ValueError(f"block {i} is in groups[{seen[i]}] and groups[{g}]: groups must be disjoint")
            seen[i] = g
            ids.append(i)
        out.append(ids)
    return out


def _dense_mlp(model, i: int):
    mlp = model.blocks[i].mlp
    if isinstance(mlp, FiPSMLP):
        raise ValueError(f"block {i}'s MLP is already FiPS-compressed")
    for name in ("fc1", "fc2"):
        layer = getattr(mlp, name, None)
        if layer is None or not hasattr(layer, "kernel"):
            raise ValueError(f"model.blocks[{i}].mlp must have an nnx.Linear {name} (the FiPS model protocol)")
    return mlp


def _group_width(model, group: list[int], g: int) -> tuple[int, int]:
    widths = {}
    for i in group:
        mlp = _dense_mlp(model, i)
        s1, s2 = tuple(mlp.fc1.kernel[...].shape), tuple(mlp.fc2.kernel[...].shape)
        if len(s1) != 2 or s2 != s1[::-1]:
            raise ValueError(f"block {i}: fc1 kernel must be [d, h] and fc2 kernel [h, d], got {s1} and {s2}")
        widths[i] = s1
    if len(set(widths.values())) > 1:
        desc = ", ".join(f"block {i}: d x h = {d} x {h}" for i, (d, h) in widths.items())
        raise ValueError(f"groups[{g}] crosses a change of width ({desc}); a group's blocks must share d and h")
    return next(iter(widths.values()))


def _path_key(path) -> tuple:
    """A jax key path as plain attribute names and indices (DictKey, SequenceKey or GetAttrKey entries), the
    form of `nnx.iter_graph` paths."""
    return tuple(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)


def fips_mlp_paths(model) -> dict:
    """{path: FiPSMLP} for every FiPS layer of `model`; a path is a tuple of attribute names and indices, as in
    the model's `nnx.State` (e.g. ('blocks', 3, 'mlp'))."""
    return {tuple(path): node for path, node in nnx.iter_graph(model) if isinstance(node, FiPSMLP)}


def _param_masks(model, factor_masks_by_path: dict):
    """Bool masks with the structure of `nnx.as_pure(nnx.state(model, nnx.Param))` (None except at factors)."""
    params = nnx.as_pure(nnx.state(model, nnx.Param))
    found = set()

    def one(path, leaf):
        key = _path_key(path)
        if key in factor_masks_by_path:
            found.add(key)
            return factor_masks_by_path[key]
        return None

    masks = jax.tree_util.tree_map_with_path(one, params)
    missing = set(factor_masks_by_path) - found
    if missing:
        raise ValueError(f"factor params not found in the model's state: {sorted(missing)}")
    return masks


def compress_mlps(
    model,
    groups,
    *,
    budget: float | None = None,
    sparsity: float,
    tau: float = 32.0,
    nm: tuple[int, int] | None = None,
    round_to: int | None = None,
    ranks=None,
    mask_sparsity: float | None = None,
    activation=None,
    implementation: str = "dense",
) -> dict:
    """Compresses the MLPs of `groups` of blocks in place: one shared base per group, sparse factors per layer.

    For each group: W_cat = [fc1_b0, fc2_b0^T, ...] (`concat_mlp_kernels`), r from the budget (`fips_rank`),
    U, V from the SVD (`svd_init`, padded when r > d), V sliced per layer. Then one global magnitude threshold
    over every factor of every group (or N:M per factor), pruned values set to exactly 0, `model.mlp_bases` set
    to the bases and each block's `mlp` replaced by a `FiPSMLP`. Blocks outside `groups` keep their MLP.

    Args:
      model: a transformer following the module docstring's protocol, with `mlp_bases` None.
      groups: list of lists of block indices; disjoint, in range, each group's blocks sharing d and h.
      budget: p in (0, 1), kept fraction of each group's dense MLP weights; sets r.
      sparsity: s in [0, 1) of the factors, for the rank budget and (by default) the masks.
      tau: divisor of the padding rows of V when r > d.
      nm: optional (n, m): N:M masks along the rank axis instead of global magnitude; m divides r (the rank is
        rounded down to a multiple of m) and n / m <= 1 - sparsity (within the budget).
      round_to: optional multiple for the rank (`fips_rank`).
      ranks: instead of `budget`, an int or one int per group (ablations, exactness checks: r = d at s = 0 is
        exact but over budget).
      mask_sparsity: sparsity of the initial masks when it differs from the budgeted `sparsity` (GMP starts at
        its `initial_sparsity` and reaches `sparsity` at the end); default `sparsity`.
      activation: the MLP's activation; default: the dense MLP's `activation` attribute if it has one, else
        exact GELU (timm's `Mlp`).
      implementation: `FiPSMLP` implementation ("dense" for training, "condensed" for inference).

    Returns:
      A dict with `groups` (validated), `ranks` (one per group), `masks` (bool masks with the structure of
      `nnx.as_pure(nnx.state(model, nnx.Param))` after compression: the factors' masks, None elsewhere; ready for
      `jaxsparse.dst` updaters via `initial_masks` and for `reconstruct`), `factor_masks` (per group, per block
      (mask1, mask2)), `counts` (per group: `fips_param_count` entries with the actual factor nnz, total and
      fraction), `total` (the same summed over groups) and `fraction` (total / dense MLP weights).
    """
    for attr in ("blocks", "mlp_bases"):
        if not hasattr(model, attr):
            raise ValueError(f"model must have a `{attr}` attribute (the FiPS model protocol)")
    if model.mlp_bases is not None:
        raise ValueError("model.mlp_bases is already set: the model is already compressed")
    groups = _check_groups(groups, len(model.blocks))
    sparsity = check_fraction(sparsity, "sparsity", allow_zero=True)
    mask_sparsity = (
        sparsity if mask_sparsity is None else check_fraction(mask_sparsity, "mask_sparsity", allow_zero=True)
    )
    round_to = check_optional_int(round_to, "round_to", minimum=1)
    if nm is not None:
        if not isinstance(nm, tuple | list) or len(nm) != 2:
            raise ValueError(f"nm must be a pair (n, m) or None, got {nm!r}")
        nm_n, nm_m = check_int(nm[0], "nm[0] (n)", minimum=0), check_int(nm[1], "nm[1] (m)", minimum=1)
        if nm_n > nm_m or nm_n / nm_m > 1.0 - sparsity + 1e-12:
            raise ValueError(f"nm={nm} keeps {nm_n}/{nm_m} of the factors: more than 1 - sparsity = {1 - sparsity}")
        round_to = nm_m if round_to is None else math.lcm(round_to, nm_m)
    if (budget is None) == (ranks is None):
        raise ValueError("give exactly one of budget (rank from the parameter budget) and ranks")
    if ranks is not None:
        ranks = [ranks] * len(groups) if isinstance(ranks, int | np.integer) else list(ranks)
        if len(ranks) != len(groups):
            raise ValueError(f"ranks must be an int or one int per group ({len(groups)}), got {len(ranks)}")
        ranks = [check_int(r, "ranks entry", minimum=1) for r in ranks]
        if nm is not None and any(r % nm[1] for r in ranks):
            raise ValueError(f"every rank must be a multiple of m={nm[1]} for N:M along the rank axis, got {ranks}")

    widths = [_group_width(model, group, g) for g, group in enumerate(groups)]
    bases, factors, out_ranks = [], [], []
    for g, (group, (d, h)) in enumerate(zip(groups, widths, strict=True)):
        r = ranks[g] if ranks is not None else fips_rank(d, len(group), budget, sparsity, hidden=h, round_to=round_to)
        mlps = [model.blocks[i].mlp for i in group]
        w_cat = concat_mlp_kernels([m.fc1.kernel[...] for m in mlps], [m.fc2.kernel[...] for m in mlps])
        u, v = svd_init(w_cat, r, tau=tau)
        bases.append(u)
        factors.append(split_factors(v, len(group), h))
        out_ranks.append(r)

    # One threshold over every factor of the model (fips.md §5), or N:M per factor.
    factor_masks = nm_factor_masks(factors, *nm) if nm is not None else global_magnitude_masks(factors, mask_sparsity)
    factor_masks = [[tuple(pair) for pair in group] for group in factor_masks]

    new_mlps = {}
    for g, group in enumerate(groups):
        for b, i in enumerate(group):
            old = model.blocks[i].mlp
            (v1, v2), (m1, m2) = factors[g][b], factor_masks[g][b]
            act = activation if activation is not None else getattr(old, "activation", gelu)
            bias = lambda layer: None if getattr(layer, "bias", None) is None else layer.bias[...]
            new_mlps[i] = FiPSMLP(
                jnp.where(m1, v1, 0), jnp.where(m2, v2, 0), bias(old.fc1), bias(old.fc2),
                group=g, activation=act, implementation=implementation, masks=(m1, m2),
            )  # fmt: skip
    # `mlp_bases` may be a static None on the model: nnx.data marks the list as data (a pytree child).
    model.mlp_bases = nnx.data(nnx.List([FiPSParam(u) for u in bases]))
    for i, mlp in new_mlps.items():
        model.blocks[i].mlp = mlp

    paths = {id(node): path for path, node in fips_mlp_paths(model).items()}
    by_path = {}
    for g, group in enumerate(groups):
        for b, i in enumerate(group):
            path = paths[id(new_mlps[i])]
            by_path[(*path, "V1")], by_path[(*path, "V2")] = factor_masks[g][b]

    counts = []
    for g, (group, (d, h)) in enumerate(zip(groups, widths, strict=True)):
        c = fips_param_count(d, out_ranks[g], len(group), sparsity, hidden=h)
        c["factor_nnz"] = int(sum(int(jnp.sum(m)) for pair in factor_masks[g] for m in pair))
        c["total"] = c["base"] + c["factor_nnz"]
        c["fraction"] = c["total"] / c["dense"]
        c["factor_density"] = c["factor_nnz"] / c["factor_size"]
        c["blocks"] = list(group)
        counts.append(c)
    total = {k: sum(c[k] for c in counts) for k in ("base", "factor_size", "factor_nnz", "total", "dense", "biases")}
    total["fraction"] = total["total"] / total["dense"]
    total["factor_density"] = total["factor_nnz"] / total["factor_size"]
    return {
        "groups": groups,
        "ranks": out_ranks,
        "masks": _param_masks(model, by_path),
        "factor_masks": factor_masks,
        "counts": counts,
        "total": total,
        "fraction": total["fraction"],
    }
