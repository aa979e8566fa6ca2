"""Applying permutations to params, BatchNorm statistics, masks and optimizer state.

A permutation is a dict name -> int array `perm[name]` of length n with `perm[name][i]` the index (in the
tree being permuted) of the unit that moves to position i: applying it is `take(x, perm[name], axis)` on
every axis the spec assigns to `name`.
"""

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from ._spec import PermutationSpec, normalize_path, path_str

__all__ = [
    "check_permutation",
    "compose_permutations",
    "identity_permutation",
    "invert_permutation",
    "permutation_sizes",
    "permute_opt_state",
    "permute_params",
    "random_permutation",
]


def _is_none(x) -> bool:
    return x is None


def _check_spec(spec) -> PermutationSpec:
    if not isinstance(spec, PermutationSpec):
        raise TypeError(f"spec must be a PermutationSpec, got {type(spec).__name__}")
    return spec


def _leaves_by_path(tree) -> dict:
    """Normalised path -> leaf (None leaves kept: a None mask leaf is dense)."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_none)
    return {normalize_path(path): leaf for path, leaf in flat}


def permutation_sizes(spec: PermutationSpec, tree) -> dict[str, int]:
    """Size of every permutation, read from `tree`'s arrays; checks the spec against the tree.

    Raises:
      ValueError: a required spec path is missing from `tree` (optional BatchNorm statistics must be all
        present or all absent), an array has the wrong number of axes, or two axes of one permutation
        differ in size.
    """
    spec = _check_spec(spec)
    leaves = _leaves_by_path(tree)
    present_optional = [p for p in spec.optional if p in leaves]
    if present_optional and len(present_optional) != len(spec.optional):
        missing = sorted(path_str(p) for p in spec.optional if p not in leaves)
        raise ValueError(f"tree has some BatchNorm statistics of the spec but not these: {missing[:5]}")
    missing = [p for p in spec.axes_to_perm if p not in leaves and p not in spec.optional]
    if missing:
        known = sorted(path_str(p) for p in leaves)
        raise ValueError(
            f"spec names parameters missing from the tree: {[path_str(p) for p in missing[:5]]}; "
            f"the tree has {known[:12]}{' ...' if len(known) > 12 else ''}"
        )
    sizes: dict[str, tuple[int, str]] = {}
    for path, axes in spec.axes_to_perm.items():
        leaf = leaves.get(path)
        if leaf is None:
            continue
        shape = np.shape(leaf)
        if len(shape) != len(axes):
            raise ValueError(f"{path_str(path)} has shape {shape} but the spec gives {len(axes)} axes: {axes}")
        for axis, name in enumerate(axes):
            if name is None:
                continue
            where = f"{path_str(path)} axis {axis}"
            if name in sizes and sizes[name][0] != shape[axis]:
                raise ValueError(
                    f"axis size mismatch for permutation {name!r}: {where} has {shape[axis]} but "
                    f"{sizes[name][1]} has {sizes[name][0]}"
                )
            sizes.setdefault(name, (int(shape[axis]), where))
    absent = [n for n in spec.perm_names if n not in sizes]
    if absent:
        raise ValueError(f"no array of the tree carries permutations {absent}")
    return {name: size for name, (size, _) in sizes.items()}


def check_permutation(perm, sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    """Validates `perm` against the permutation sizes; returns it as numpy int arrays.

    Raises:
      ValueError: names differ from the spec's, an entry is not 1-D integer of the right length, or it is
        not a permutation of range(n).
    """
    if not isinstance(perm, Mapping):
        raise TypeError(f"perm must be a mapping name -> index array, got {type(perm).__name__}")
    if set(perm) != set(sizes):
        raise ValueError(
            f"perm names {sorted(perm)} differ from the spec's {sorted(sizes)} "
            f"(missing {sorted(set(sizes) - set(perm))}, unknown {sorted(set(perm) - set(sizes))})"
        )
    out = {}
    for name, size in sizes.items():
        p = np.asarray(jax.device_get(perm[name]))
        if p.ndim != 1 or not np.issubdtype(p.dtype, np.integer):
            raise ValueError(f"perm[{name!r}] must be a 1-D integer array, got dtype {p.dtype} shape {p.shape}")
        if p.shape[0] != size:
            raise ValueError(f"perm[{name!r}] has length {p.shape[0]} but its axes have size {size}")
        if not np.array_equal(np.sort(p), np.arange(size)):
            raise ValueError(f"perm[{name!r}] is not a permutation of range({size}): {p[:10]}...")
        out[name] = p.astype(np.int64)
    return out


def _take_np(leaf, axes, perm):
    for axis, name in enumerate(axes):
        if name is not None:
            leaf = np.take(leaf, perm[name], axis=axis)
    return leaf


@functools.partial(jax.jit, static_argnums=0)
def _take_jax(axes_per_leaf, leaves, perm):
    """All JAX leaves permuted in one compiled call (one compile per tree layout, not one per leaf shape)."""
    out = []
    for axes, leaf in zip(axes_per_leaf, leaves, strict=True):
        for axis, name in enumerate(axes):
            if name is not None:
                leaf = jnp.take(leaf, perm[name], axis=axis)
        out.append(leaf)
    return out


def _apply(flat_leaves, axes_list, perm):
    """Permutes `flat_leaves[i]` by `axes_list[i]` (None: untouched); numpy leaves stay numpy."""
    out = list(flat_leaves)
    jax_idx = []
    for i, (leaf, axes) in enumerate(zip(flat_leaves, axes_list, strict=True)):
        if axes is None or leaf is None:
            continue
        if isinstance(leaf, jax.Array):
            jax_idx.append(i)
        else:
            out[i] = _take_np(np.asarray(leaf), axes, perm)
    if jax_idx:
        used = {n for i in jax_idx for n in axes_list[i] if n is not None}
        moved = _take_jax(
            tuple(axes_list[i] for i in jax_idx),
            [flat_leaves[i] for i in jax_idx],
            {n: jnp.asarray(perm[n]) for n in sorted(used)},
        )
        for i, leaf in zip(jax_idx, moved, strict=True):
            out[i] = leaf
    return out


def permute_params(spec: PermutationSpec, perm, tree):
    """Applies `perm` to every array of `tree` that the spec names (exact path match).

    `tree` is params, a full `nnx.State` (BatchNorm running statistics included), or a mask pytree with
    None for dense leaves (left None). Arrays outside the spec pass through unchanged.

    Raises:
      ValueError: see `permutation_sizes` and `check_permutation`.
    """
    sizes = permutation_sizes(spec, tree)
    perm = check_permutation(perm, sizes)

    flat, treedef = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_none)
    axes_list = [spec.axes_to_perm.get(normalize_path(path)) for path, _ in flat]
    return jax.tree.unflatten(treedef, _apply([leaf for _, leaf in flat], axes_list, perm))


def permute_opt_state(spec: PermutationSpec, perm, opt_state, *, sizes: Mapping[str, int] | None = None):
    """Applies `perm` to every params-shaped copy inside an optimizer state (optax adam `mu`/`nu`, momentum).

    A leaf is permuted when its path ends with a spec path (longest match wins) and its rank equals the
    spec's; scalars such as `count` pass through.

    Args:
      spec: the params' spec.
      perm: the permutation.
      opt_state: any pytree.
      sizes: permutation sizes (from `permutation_sizes(spec, params)`); read from the state when None.

    Raises:
      ValueError: a matched leaf's axis disagrees with the permutation's size, or `perm` is invalid.
    """
    spec = _check_spec(spec)
    by_len = sorted(spec.axes_to_perm, key=len, reverse=True)
    flat, treedef = jax.tree_util.tree_flatten_with_path(opt_state, is_leaf=_is_none)
    matched = []
    for path, leaf in flat:
        norm = normalize_path(path)
        hit = None
        if leaf is not None and np.ndim(leaf) > 0:
            for key in by_len:
                if len(key) <= len(norm) and norm[len(norm) - len(key) :] == key:
                    hit = key
                    break
        if hit is not None and np.ndim(leaf) != len(spec.axes_to_perm[hit]):
            hit = None
        matched.append(hit)
    if sizes is None:
        found: dict[str, int] = {}
        for (_, leaf), hit in zip(flat, matched, strict=True):
            if hit is not None:
                for axis, name in enumerate(spec.axes_to_perm[hit]):
                    if name is not None:
                        found.setdefault(name, int(np.shape(leaf)[axis]))
        if not found:
            return opt_state  # stateless optimizer (plain SGD): nothing to permute
        sizes = found
        if isinstance(perm, Mapping):  # names no leaf of the state carries are irrelevant here
            perm = {n: p for n, p in perm.items() if n in sizes}
    perm = check_permutation(perm, sizes)
    for (path, leaf), hit in zip(flat, matched, strict=True):
        if hit is None:
            continue
        for axis, name in enumerate(spec.axes_to_perm[hit]):
            if name is not None and np.shape(leaf)[axis] != sizes[name]:
                raise ValueError(
                    f"opt_state leaf {jax.tree_util.keystr(path)} axis {axis} has size {np.shape(leaf)[axis]}, "
                    f"permutation {name!r} has {sizes[name]}"
                )
    axes_list = [None if hit is None else spec.axes_to_perm[hit] for hit in matched]
    return jax.tree.unflatten(treedef, _apply([leaf for _, leaf in flat], axes_list, perm))


def identity_permutation(sizes: Mapping[str, int]) -> dict[str, np.ndarray]:
    """The identity for every permutation (`sizes` from `permutation_sizes`)."""
    return {name: np.arange(int(n)) for name, n in sizes.items()}


def random_permutation(sizes: Mapping[str, int], seed: int) -> dict[str, np.ndarray]:
    """Independent uniformly random permutations (numpy `default_rng(seed)`, names in sorted order)."""
    rng = np.random.default_rng(seed)
    return {name: rng.permutation(int(sizes[name])) for name in sorted(sizes)}


def invert_permutation(perm) -> dict[str, np.ndarray]:
    """`inv` with `permute(inv, permute(perm, x)) == x`."""
    out = {}
    for name, p in perm.items():
        p = np.asarray(p)
        if p.ndim != 1 or not np.array_equal(np.sort(p), np.arange(p.shape[0])):
            raise ValueError(f"perm[{name!r}] is not a permutation")
        inv = np.empty_like(p)
        inv[p] = np.arange(p.shape[0])
        out[name] = inv
    return out


def compose_permutations(first, second) -> dict[str, np.ndarray]:
    """The permutation equal to applying `first`, then `second`."""
    if set(first) != set(second):
        raise ValueError(f"cannot compose permutations over {sorted(first)} and {sorted(second)}")
    return {name: np.asarray(first[name])[np.asarray(second[name])] for name in first}
