"""Deriving a permutation spec from an NNX model whose layers form one ordered chain."""

from ._spec import PermutationSpec, path_str

__all__ = ["permutation_spec_from_model"]


def permutation_spec_from_model(model, *, attribute: str = "layers") -> PermutationSpec:
    """Spec of a model whose layers run in the order of the list `model.<attribute>`.

    Works for `nnx.Sequential`, `jaxsparse.nn.MLP` and `jaxsparse.lth.VGG`: `Linear` and `Conv` layers in
    sequence, each optionally followed by `BatchNorm`/`LayerNorm` (its scale, bias and running statistics take
    the preceding layer's output permutation), with parameter-free callables (activations, pooling) in
    between. Every hidden output gets `"P_k"` (k counts Linear/Conv layers); the last layer's output is not
    permuted. A Conv feeding a Linear must go through global pooling (the Linear's input size equals the
    channel count); a flatten of spatial positions, residual connections or branching cannot be read from
    a chain, so use a builder (`resnet20_permutation_spec`) or write `axes_to_perm` by hand.

    Raises:
      ValueError: the attribute is missing, a layer type is unsupported, or sizes do not chain.
    """
    from flax import nnx  # lazy: the permutation core itself is framework-free

    layers = getattr(model, attribute, None)
    if layers is None:
        raise ValueError(f"model has no attribute {attribute!r} holding its ordered layers")
    layers = list(layers)
    weighted = [i for i, layer in enumerate(layers) if isinstance(layer, nnx.Linear | nnx.Conv)]
    if len(weighted) < 2:
        raise ValueError(f"model.{attribute} needs at least two Linear/Conv layers to have a hidden permutation")
    axes: dict = {}
    optional: set = set()
    current, width, k = None, None, 0
    for i, layer in enumerate(layers):
        path = (attribute, i)
        if isinstance(layer, nnx.Linear | nnx.Conv):
            is_conv = isinstance(layer, nnx.Conv)
            fan_in = layer.in_features
            if width is not None and fan_in != width:
                raise ValueError(
                    f"{path_str(path)} takes {fan_in} inputs but the previous layer gives {width} channels: "
                    "not a chain (a spatial flatten or a skip connection); write the spec by hand"
                )
            out = None if i == weighted[-1] else f"P_{k}"
            lead = (None, None) if is_conv else ()
            if is_conv and len(layer.kernel_size) != 2:
                lead = (None,) * len(layer.kernel_size)
            axes[(*path, "kernel")] = (*lead, current, out)
            if getattr(layer, "bias", None) is not None and out is not None:
                axes[(*path, "bias")] = (out,)
            current, width, k = out, layer.out_features, k + 1
        elif isinstance(layer, nnx.BatchNorm | nnx.LayerNorm):
            if current is None:
                continue  # a norm on the input or the logits: not permuted
            if layer.num_features != width:
                raise ValueError(f"{path_str(path)} normalises {layer.num_features} features, expected {width}")
            if getattr(layer, "scale", None) is not None:
                axes[(*path, "scale")] = (current,)
            if getattr(layer, "bias", None) is not None:
                axes[(*path, "bias")] = (current,)
            if isinstance(layer, nnx.BatchNorm):
                for stat in ("mean", "var"):
                    axes[(*path, stat)] = (current,)
                    optional.add((*path, stat))
        elif isinstance(layer, nnx.Module) and nnx.state(layer, nnx.Param):
            raise ValueError(f"unsupported layer type {type(layer).__name__} at {path_str(path)}")
    return PermutationSpec(axes, optional=frozenset(optional))
