"""Small models for the permutation tests, built from `nnx.eval_shape` with numpy-random states (no JAX
init compile) and BatchNorm statistics far from their defaults, so a wrong permutation shows."""

import functools

import jax
import numpy as np
from flax import nnx

from jaxsparse.lth import VGG, ResNet20, model_permutation_spec
from jaxsparse.nn import MLP

CTORS = {
    "mlp": (lambda r: MLP(6, [9, 7, 5], 3, rngs=r), (16, 6)),
    "vgg": (lambda r: VGG(2, 3, channels=(4, 6, 5), pool_after=(0,), rngs=r), (4, 6, 6, 2)),
    "vgg_nobn": (lambda r: VGG(2, 3, channels=(4, 6, 5), pool_after=(1,), batch_norm=False, rngs=r), (4, 6, 6, 2)),
    "resnet20": (lambda r: ResNet20(3, in_channels=2, width=1, rngs=r), (2, 8, 8, 2)),
    "resnet20_x2": (lambda r: ResNet20(3, in_channels=2, width=2, rngs=r), (2, 8, 8, 2)),
}


def random_state(abstract_state, seed: int):
    """Numpy state with the abstract state's structure: N(0, 1/fan_in) kernels, BN stats and affine random."""
    rng = np.random.default_rng(seed)

    def fn(path, leaf):
        name = path[-1].key if hasattr(path[-1], "key") else str(path[-1])
        shape = leaf.shape
        if name == "var":
            return rng.uniform(0.5, 2.0, shape).astype(np.float32)
        if name == "scale":
            return (1.0 + 0.3 * rng.normal(size=shape)).astype(np.float32)
        if name in ("mean", "bias"):
            return (0.3 * rng.normal(size=shape)).astype(np.float32)
        fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        return (rng.normal(size=shape) / np.sqrt(fan_in)).astype(np.float32)

    return jax.tree_util.tree_map_with_path(fn, abstract_state)


@functools.cache
def _abstract(kind: str):
    ctor, _ = CTORS[kind]
    model = nnx.eval_shape(lambda: ctor(nnx.Rngs(0)))
    model.eval()
    graphdef, state = nnx.split(model)
    forward = jax.jit(lambda st, x: nnx.merge(graphdef, st)(x))
    return graphdef, nnx.as_pure(state), forward, model_permutation_spec(model)


def make(kind: str, seed: int = 0):
    """(graphdef, numpy state, inputs, spec, forward(state, x) in eval mode)."""
    graphdef, abstract, forward, spec = _abstract(kind)
    state = random_state(abstract, seed)
    x = np.random.default_rng(100 + seed).normal(size=CTORS[kind][1]).astype(np.float32)
    return graphdef, state, x, spec, forward


def params_of(graphdef, state):
    """The `nnx.Param` part of a full pure state."""
    return nnx.as_pure(nnx.state(nnx.merge(graphdef, state), nnx.Param))
