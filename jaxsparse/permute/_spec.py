"""Permutation specs keyed by JAX key paths, and the builders for MLP, VGG-style CNN and ResNet-20.

A spec says, for every array that a hidden-unit permutation touches, which permutation acts on which axis.
Keys are key paths normalised to tuples of plain names/indices (`("layers", 0, "kernel")`), so the same spec
addresses a params pytree, an `nnx.State` (BatchNorm running statistics included), a mask pytree with the
params' structure, and every params-shaped copy inside an optimizer state.

Layout conventions (Flax): a Dense kernel is [in, out], a Conv kernel [h, w, in, out]; bias, BatchNorm
scale/bias/mean/var are [out].
"""

import dataclasses
from collections.abc import Hashable, Iterable, Mapping

import jax

__all__ = [
    "PermutationSpec",
    "mlp_permutation_spec",
    "normalize_path",
    "path_str",
    "resnet20_permutation_spec",
    "vgg_permutation_spec",
]

PathLike = tuple[Hashable, ...]
_STAT_NAMES = ("mean", "var")  # BatchNorm running statistics (nnx.BatchStat)


def normalize_path(path) -> PathLike:
    """A JAX key path (or a tuple of names/indices) as a tuple of plain names and indices.

    `DictKey(k)` -> k, `SequenceKey(i)` -> i, `GetAttrKey(n)` -> n, `FlattenedIndexKey(i)` -> i. A trailing
    `.value` (a non-pure `nnx.State`'s Variable boxes) is dropped, so pure and boxed states share keys.
    """
    if isinstance(path, str):
        raise TypeError(f"a path must be a tuple of keys, not the string {path!r}")
    out = []
    for entry in path:
        if isinstance(entry, jax.tree_util.DictKey):
            out.append(entry.key)
        elif isinstance(entry, jax.tree_util.SequenceKey):
            out.append(entry.idx)
        elif isinstance(entry, jax.tree_util.GetAttrKey):
            out.append(entry.name)
        elif isinstance(entry, jax.tree_util.FlattenedIndexKey):
            out.append(entry.key)
        elif isinstance(entry, str | int):
            out.append(entry)
        else:
            raise TypeError(f"unsupported key path entry {entry!r} in path {path!r}")
    path_is_jax = any(not isinstance(e, str | int) for e in path)
    if path_is_jax and out and out[-1] == "value" and isinstance(path[-1], jax.tree_util.GetAttrKey):
        out.pop()
    return tuple(out)


def path_str(path: PathLike) -> str:
    """`("layers", 0, "kernel")` -> `"layers/0/kernel"` (for messages)."""
    return "/".join(str(p) for p in path)


@dataclasses.dataclass(frozen=True)
class PermutationSpec:
    """Which permutation acts on which axis of which array.

    Attributes:
      axes_to_perm: normalised path -> one permutation name (or None: not permuted) per axis of that array.
      perm_to_axes: permutation name -> ((path, axis), ...), derived from `axes_to_perm`.
      optional: paths that may be absent from a tree (BatchNorm running statistics: a params-only tree has
        none of them). They must be absent or present all together.
    """

    axes_to_perm: Mapping[PathLike, tuple[str | None, ...]]
    perm_to_axes: Mapping[str, tuple[tuple[PathLike, int], ...]] = dataclasses.field(init=False)
    optional: frozenset = frozenset()

    def __post_init__(self):
        if not isinstance(self.axes_to_perm, Mapping) or not self.axes_to_perm:
            raise ValueError("axes_to_perm must be a non-empty mapping path -> axes")
        normalised: dict[PathLike, tuple[str | None, ...]] = {}
        perm_to_axes: dict[str, list[tuple[PathLike, int]]] = {}
        for raw_path, axes in self.axes_to_perm.items():
            path = normalize_path(raw_path)
            if path in normalised:
                raise ValueError(f"path {path_str(path)} appears twice in axes_to_perm")
            if isinstance(axes, str) or not isinstance(axes, Iterable):
                raise ValueError(f"axes_to_perm[{path_str(path)}] must be a tuple of names/None, got {axes!r}")
            axes = tuple(axes)
            for name in axes:
                if name is not None and (not isinstance(name, str) or not name):
                    raise ValueError(f"axes_to_perm[{path_str(path)}] holds {name!r}: use non-empty str or None")
            named = [a for a in axes if a is not None]
            if len(named) != len(set(named)):
                # One permutation on two axes of one array breaks the linear cost matrix of weight matching.
                raise ValueError(f"axes_to_perm[{path_str(path)}] uses one permutation on two axes: {axes}")
            normalised[path] = axes
            for axis, name in enumerate(axes):
                if name is not None:
                    perm_to_axes.setdefault(name, []).append((path, axis))
        if not perm_to_axes:
            raise ValueError("the spec names no permutation on any axis")
        optional = frozenset(normalize_path(p) for p in self.optional)
        unknown = optional - set(normalised)
        if unknown:
            raise ValueError(f"optional names paths not in the spec: {sorted(map(path_str, unknown))}")
        object.__setattr__(self, "axes_to_perm", normalised)
        object.__setattr__(self, "perm_to_axes", {k: tuple(v) for k, v in perm_to_axes.items()})
        object.__setattr__(self, "optional", optional)

    @property
    def perm_names(self) -> tuple[str, ...]:
        return tuple(self.perm_to_axes)

    def with_prefix(self, prefix: PathLike) -> "PermutationSpec":
        """The same spec for a tree that holds this one's under `prefix` (e.g. `("model",)`)."""
        prefix = normalize_path(tuple(prefix))
        return PermutationSpec(
            {prefix + p: a for p, a in self.axes_to_perm.items()},
            optional=frozenset(prefix + p for p in self.optional),
        )


def _dense(axes: dict, path: PathLike, p_in, p_out, *, bias: bool) -> None:
    axes[(*path, "kernel")] = (p_in, p_out)
    if bias and p_out is not None:
        axes[(*path, "bias")] = (p_out,)


def _conv(axes: dict, path: PathLike, p_in, p_out, *, bias: bool) -> None:
    axes[(*path, "kernel")] = (None, None, p_in, p_out)
    if bias and p_out is not None:
        axes[(*path, "bias")] = (p_out,)


def _norm(axes: dict, optional: set, path: PathLike, p, *, running_stats: bool) -> None:
    axes[(*path, "scale")] = (p,)
    axes[(*path, "bias")] = (p,)
    if running_stats:
        for stat in _STAT_NAMES:
            axes[(*path, stat)] = (p,)
            optional.add((*path, stat))


def _check_count(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return value


def mlp_permutation_spec(num_layers: int, *, prefix: PathLike = ("layers",), bias: bool = True) -> PermutationSpec:
    """Spec of a chain of `num_layers` Dense layers stored at `prefix/i/{kernel,bias}` (e.g. `jaxsparse.nn.MLP`).

    Hidden layer i's units get permutation `"P_i"`; the input and the logits are not permuted.
    """
    _check_count(num_layers, "num_layers", 2)
    prefix = tuple(prefix)
    axes: dict = {}
    for i in range(num_layers):
        p_in = None if i == 0 else f"P_{i - 1}"
        p_out = None if i == num_layers - 1 else f"P_{i}"
        _dense(axes, (*prefix, i), p_in, p_out, bias=bias)
    return PermutationSpec(axes)


def vgg_permutation_spec(
    num_convs: int,
    *,
    num_dense: int = 1,
    batch_norm: bool = True,
    prefix: PathLike = ("layers",),
    conv_bias: bool | None = None,
) -> PermutationSpec:
    """Spec of a VGG-style chain: `num_convs` convs (each optionally followed by BatchNorm), global pooling,
    then `num_dense` Dense layers, stored in order at `prefix/j` (BatchNorms take their own index j).

    Conv c's output channels get `"P_c"`; hidden Dense d's units get `"P_{num_convs + d}"`. `conv_bias`
    defaults to `not batch_norm`.
    """
    _check_count(num_convs, "num_convs", 1)
    _check_count(num_dense, "num_dense", 1)
    conv_bias = (not batch_norm) if conv_bias is None else conv_bias
    prefix = tuple(prefix)
    axes: dict = {}
    optional: set = set()
    j, current = 0, None
    for c in range(num_convs):
        name = f"P_{c}"
        _conv(axes, (*prefix, j), current, name, bias=conv_bias)
        j += 1
        if batch_norm:
            _norm(axes, optional, (*prefix, j), name, running_stats=True)
            j += 1
        current = name
    for d in range(num_dense):
        name = None if d == num_dense - 1 else f"P_{num_convs + d}"
        _dense(axes, (*prefix, j), current, name, bias=True)
        j += 1
        current = name
    return PermutationSpec(axes, optional=frozenset(optional))


def resnet20_permutation_spec(
    *, blocks_per_stage: int = 3, num_stages: int = 3, head_bias: bool = True
) -> PermutationSpec:
    """Spec of `jaxsparse.lth.ResNet20` (REPAIR-style CIFAR ResNet with BatchNorm).

    Layout: `stem`, `stem_bn`; `blocks/i/{conv1,bn1,conv2,bn2}` and, in the first block of every stage after
    the first, `blocks/i/{shortcut,shortcut_bn}`; `head` (Dense). Permutations: `"stage_s"` is the residual
    stream of stage s, shared by the stem (s = 0), every block's conv2/bn2 output and the shortcut's output,
    the next block's conv1 and shortcut inputs and the head's input; `"block_i_inner"` is block i's
    conv1 -> bn1 -> conv2 channels.
    """
    _check_count(blocks_per_stage, "blocks_per_stage", 1)
    _check_count(num_stages, "num_stages", 1)
    axes: dict = {}
    optional: set = set()
    _conv(axes, ("stem",), None, "stage_0", bias=False)
    _norm(axes, optional, ("stem_bn",), "stage_0", running_stats=True)
    stream = "stage_0"
    for s in range(num_stages):
        out_stream = f"stage_{s}"
        for b in range(blocks_per_stage):
            i = s * blocks_per_stage + b
            inner = f"block_{i}_inner"
            block = ("blocks", i)
            _conv(axes, (*block, "conv1"), stream, inner, bias=False)
            _norm(axes, optional, (*block, "bn1"), inner, running_stats=True)
            _conv(axes, (*block, "conv2"), inner, out_stream, bias=False)
            _norm(axes, optional, (*block, "bn2"), out_stream, running_stats=True)
            if stream != out_stream:
                _conv(axes, (*block, "shortcut"), stream, out_stream, bias=False)
                _norm(axes, optional, (*block, "shortcut_bn"), out_stream, running_stats=True)
            stream = out_stream
    _dense(axes, ("head",), stream, None, bias=head_bias)
    return PermutationSpec(axes, optional=frozenset(optional))
