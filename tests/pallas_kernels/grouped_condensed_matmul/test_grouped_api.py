"""The XLA and dense backends, `auto` dispatch, the dense <-> grouped helpers and argument errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.grouped_condensed_matmul import (
    GPU_KERNEL_MIN_BATCH,
    GPU_KERNEL_MIN_GROUP,
    XLA_GATHER_MAX_BATCH,
    BlockSizes,
    auto_implementation,
    grouped_condensed_from_dense_kernel,
    grouped_condensed_matmul,
    grouped_condensed_matmul_reference,
    grouped_condensed_to_dense_kernel,
)
from pallas_kernels.grouped_condensed_matmul.xla import grad_x, grad_x_via_dense

from ._cases import assert_close, check_against_truth, make_case, numpy_dense_math


@pytest.mark.parametrize("implementation", ["xla", "dense"])
@pytest.mark.parametrize(
    ("batch", "k", "group_size", "n_groups", "dtype", "index_dtype"),
    [
        (1, 20, 16, 2, jnp.float32, jnp.int32),
        (5, 37, 32, 3, jnp.bfloat16, jnp.int16),
        (3, 6, 3, 3, jnp.float32, jnp.int16),  # G = 3: fine off the Pallas path
        (40, 9, 1, 4, jnp.float32, jnp.int32),  # G = 1 is the ungrouped layer
    ],
)
def test_forward_and_grads_match_reference_and_dense(
    implementation, batch, k, group_size, n_groups, dtype, index_dtype
):
    x, values, indices, bias = make_case(batch, 24, group_size, n_groups, k, dtype, index_dtype)
    check_against_truth(x, values, indices, bias, group_size, implementation=implementation)


@pytest.mark.parametrize("batch", [XLA_GATHER_MAX_BATCH, XLA_GATHER_MAX_BATCH + 1])
def test_auto_runs_on_either_side_of_the_gather_bound(batch):
    x, values, indices, bias = make_case(batch, 24, 4, 2, 8)
    y = grouped_condensed_matmul(x, values, indices, bias, group_size=4)
    assert_close(y, grouped_condensed_matmul_reference(x, values, indices, bias, group_size=4), jnp.float32)


@pytest.mark.parametrize("batch", [2, 64])
def test_grad_x_segment_sum_and_densified_strategies(batch):
    # p [n_groups * k, batch] = [40, batch] outgrows W [24, 32] past batch 19: batch 64 takes the dense branch.
    x, values, indices, bias = make_case(batch, 24, 16, 2, 20)
    assert grad_x_via_dense(2, 20, batch, 24, 32) == (batch == 64)
    cotangent = jnp.asarray(np.random.default_rng(2).normal(size=(batch, 32)), jnp.float32)
    _, (grad_x_np, _, _) = numpy_dense_math(x, values, indices, bias, cotangent, 16)
    assert_close(grad_x(cotangent, values, indices, 24, 16, jnp.float32), grad_x_np, jnp.float32)


@pytest.mark.parametrize("implementation", ["xla", "dense"])
def test_traced_out_of_range_indices_are_empty_slots(implementation):
    # jnp gathers clamp and `.at[]` wraps negative ids: both would silently read real features here.
    x, values, indices, _ = make_case(3, 24, 4, 2, 8)
    bad = indices.at[:, 3].set(-1).at[:, 4].set(24 + 5)
    f = jax.jit(lambda x, v, i: grouped_condensed_matmul(x, v, i, group_size=4, implementation=implementation))
    cleaned = jnp.where((bad >= 0) & (bad < 24), bad, 24)
    y, vjp = jax.vjp(lambda x, v: f(x, v, bad), x, values)
    y_ref, vjp_ref = jax.vjp(lambda x, v: grouped_condensed_matmul_reference(x, v, cleaned, group_size=4), x, values)
    assert_close(y, y_ref, jnp.float32)
    for g, g_ref in zip(vjp(jnp.ones_like(y)), vjp_ref(jnp.ones_like(y)), strict=True):
        assert_close(g, g_ref, jnp.float32)


def test_xla_empty_slots_never_touch_feature_zero():
    x, values, indices, _ = make_case(3, 24, 4, 2, 8)
    x = x.at[:, 0].set(jnp.inf)
    indices = jnp.where(indices == 0, 1, indices)
    y = grouped_condensed_matmul(x, values, indices, group_size=4, implementation="xla")
    assert np.isfinite(np.asarray(y)).all()


def test_cached_dense_kernel_is_used():
    x, values, indices, bias = make_case(4, 24, 4, 2, 8)
    w = grouped_condensed_to_dense_kernel(values, indices, 24, 4)
    y = grouped_condensed_matmul(x, values, indices, bias, group_size=4, implementation="dense", dense_kernel=2 * w)
    ref = grouped_condensed_matmul_reference(x, 2 * values, indices, 2 * bias, group_size=4) - bias[None, :]
    assert_close(y, ref, jnp.float32)


def test_cached_dense_kernel_never_bends_gradients():
    # Differentiated, the dense path rebuilds W from values: even a wrong cache gives the true gradients.
    x, values, indices, bias = make_case(5, 24, 4, 2, 8)
    g = jnp.asarray(np.random.default_rng(3).standard_normal((5, 8)), jnp.float32)
    wrong = 2 * grouped_condensed_to_dense_kernel(values, indices, 24, 4)

    def loss(x, v, cache):
        y = grouped_condensed_matmul(x, v, indices, bias, group_size=4, implementation="dense", dense_kernel=cache)
        return jnp.sum(y * g)

    def ref_loss(x, v):
        return jnp.sum(grouped_condensed_matmul_reference(x, v, indices, bias, group_size=4) * g)

    gx, gv, gw = jax.grad(loss, argnums=(0, 1, 2))(x, values, wrong)
    rgx, rgv = jax.grad(ref_loss, argnums=(0, 1))(x, values)
    assert_close(gx, rgx, jnp.float32)
    assert_close(gv, rgv, jnp.float32)
    np.testing.assert_array_equal(np.asarray(gw), 0.0)


def test_jit_and_vmap_xla():
    x, values, indices, bias = make_case(6, 24, 4, 2, 8)
    f = functools.partial(grouped_condensed_matmul, group_size=4, implementation="xla")
    xs = x.reshape(3, 2, 24)
    y = jax.jit(jax.vmap(f, in_axes=(0, None, None, None)))(xs, values, indices, bias)
    assert_close(y, grouped_condensed_matmul_reference(xs, values, indices, bias, group_size=4), jnp.float32)


def test_auto_implementation():
    gpu = functools.partial(auto_implementation, platform="gpu")
    assert gpu(1, 16) == "xla"  # no measured win at small batch yet
    assert gpu(GPU_KERNEL_MIN_BATCH, GPU_KERNEL_MIN_GROUP, jnp.bfloat16) == "pallas"
    assert gpu(GPU_KERNEL_MIN_BATCH, 16) == "dense"  # G=16 measured slower than dense at B=4096
    assert gpu(GPU_KERNEL_MIN_BATCH - 1, 64) == "dense"
    assert gpu(4, 8) == "xla"  # G not a multiple of 16: the gather at small batch
    assert gpu(4, 24) == "xla"
    assert gpu(XLA_GATHER_MAX_BATCH + 1, 8) == "dense"
    for platform in ("cpu", "tpu"):
        assert auto_implementation(XLA_GATHER_MAX_BATCH, 16, platform=platform) == "xla"
        assert auto_implementation(XLA_GATHER_MAX_BATCH + 1, 16, platform=platform) == "dense"


def test_to_dense_and_from_dense_round_trip():
    rng = np.random.default_rng(0)
    n_in, group_size, n_groups, k = 30, 4, 3, 5
    indices = np.stack([rng.choice(n_in, k, replace=False) for _ in range(n_groups)])
    values = rng.normal(size=(group_size * n_groups, k)).astype(np.float32)
    w = np.asarray(grouped_condensed_to_dense_kernel(jnp.asarray(values), jnp.asarray(indices), n_in, group_size))
    expected = np.zeros((n_in, group_size * n_groups), np.float32)
    for o in range(group_size * n_groups):
        expected[indices[o // group_size], o] = values[o]
    np.testing.assert_array_equal(w, expected)

    values2, indices2 = grouped_condensed_from_dense_kernel(w, group_size)
    assert indices2.shape == (n_groups, k) and indices2.dtype == jnp.int16 and values2.shape == values.shape
    np.testing.assert_array_equal(np.sort(np.asarray(indices2), axis=1), np.sort(indices, axis=1))
    np.testing.assert_array_equal(grouped_condensed_to_dense_kernel(values2, indices2, n_in, group_size), w)

    values3, indices3 = grouped_condensed_from_dense_kernel(w, group_size, k=k + 2, index_dtype=jnp.int32)
    assert indices3.dtype == jnp.int32
    assert (np.asarray(indices3)[:, k:] == n_in).all() and (np.asarray(values3)[:, k:] == 0).all()
    np.testing.assert_array_equal(grouped_condensed_to_dense_kernel(values3, indices3, n_in, group_size), w)


def test_to_dense_adds_duplicates_and_drops_empty_slots():
    values = jnp.ones((2, 3), jnp.float32)
    indices = jnp.asarray([[1, 1, 4]], jnp.int32)  # id 4 == in_features: empty
    w = grouped_condensed_to_dense_kernel(values, indices, 4, 2)
    np.testing.assert_array_equal(w, np.array([[0, 0], [2, 2], [0, 0], [0, 0]], np.float32))


def _args(**overrides):
    x, values, indices, bias = make_case(3, 24, 16, 2, 8)
    args = {"x": x, "values": values, "indices": indices, "bias": bias, "group_size": 16}
    args.update(overrides)
    return args


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"group_size": 0}, "group_size must be a positive int"),
        ({"group_size": True}, "group_size must be a positive int"),
        ({"group_size": 2.0}, "group_size must be a positive int"),
        ({"group_size": 5}, "group_size=5 must divide n_out=32"),
        ({"indices": jnp.zeros((1, 8), jnp.int32)}, r"indices must have shape \(n_out // group_size, k\)"),
        ({"indices": jnp.zeros((2, 8), jnp.float32)}, "indices must be an integer array"),
        ({"indices": jnp.full((2, 8), 25, jnp.int32)}, r"indices out of range \[0, 24\]"),
        ({"indices": jnp.full((2, 8), -1, jnp.int32)}, r"indices out of range \[0, 24\]"),
        ({"x": jnp.ones((3, 24), jnp.int32)}, "x must be floating point"),
        ({"values": jnp.ones((32,), jnp.float32)}, r"values must have shape \[n_out, k\]"),
        ({"bias": jnp.ones((31,), jnp.float32)}, r"bias must have shape \(32,\)"),
        ({"implementation": "triton"}, "implementation must be one of"),
        ({"implementation": "pallas", "group_size": 8, "indices": jnp.zeros((4, 8), jnp.int32)}, "multiple of 16"),
        ({"implementation": "pallas", "block_sizes": BlockSizes(block_group=32)}, "block_group=32 must divide"),
        ({"block_sizes": (16, 16, 16)}, "block_sizes must be a BlockSizes"),
        ({"interpret": "yes"}, "interpret must be a bool"),
        ({"dense_kernel": jnp.ones((24, 31))}, r"dense_kernel must have shape \(24, 32\)"),
    ],
)
def test_errors_name_the_bad_argument(overrides, match):
    args = _args(**overrides)
    with pytest.raises(ValueError, match=match):
        grouped_condensed_matmul(args.pop("x"), args.pop("values"), args.pop("indices"), args.pop("bias"), **args)


def test_pallas_rejects_group_sizes_that_are_not_multiples_of_16():
    x, values, indices, _ = make_case(3, 24, 24, 1, 8)
    with pytest.raises(ValueError, match="group_size to be a multiple of 16"):
        grouped_condensed_matmul(x, values, indices, group_size=24, implementation="pallas")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"block_k": 8}, "block_k must be >= 16"),
        ({"block_batch": 24}, "block_batch must be a positive power of two"),
        ({"block_group": 0}, "block_group must be a positive power of two"),
        ({"num_warps": 0}, "num_warps must be a positive int"),
        ({"block_group": 128, "block_batch": 256}, "block_group \\* block_batch = 32768 exceeds"),
    ],
)
def test_block_sizes_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BlockSizes(**kwargs)


def test_from_dense_errors():
    with pytest.raises(ValueError, match="kernel must have shape"):
        grouped_condensed_from_dense_kernel(np.ones(8), 2)
    with pytest.raises(ValueError, match="group_size=3 must divide n_out=4"):
        grouped_condensed_from_dense_kernel(np.ones((5, 4)), 3)
    with pytest.raises(ValueError, match="k must be an int >= 5"):
        grouped_condensed_from_dense_kernel(np.ones((5, 4)), 2, k=4)
