"""The Pallas gather-GEMM kernels, interpreted on CPU: forward and grads vs the reference and dense numpy math."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.grouped_condensed_matmul import (
    BlockSizes,
    default_block_sizes,
    grouped_condensed_matmul,
    grouped_condensed_matmul_reference,
)

from ._cases import assert_close, check_against_truth, make_case

# Tiles that force several fan-in steps (k not a multiple of 16), several programs per group and batch tiles.
SMALL = BlockSizes(block_group=16, block_k=16, block_batch=16)


@pytest.mark.parametrize(
    ("batch", "k", "group_size", "n_groups", "dtype", "index_dtype", "blocks"),
    [
        (1, 20, 16, 2, jnp.float32, jnp.int32, SMALL),  # batch 1, two fan-in steps, k padded 20 -> 32
        (5, 37, 32, 3, jnp.float32, jnp.int16, SMALL),  # G = 2 * BG: two programs share each index row
        (3, 20, 16, 3, jnp.bfloat16, jnp.int32, None),  # default tiles
        (19, 37, 32, 2, jnp.bfloat16, jnp.int16, BlockSizes(block_group=32, block_k=16, block_batch=16)),
        (7, 33, 48, 2, jnp.float32, jnp.int32, None),  # G = 48 is not a power of two: BG = 16, 3 per group
    ],
)
def test_forward_and_grads_match_reference_and_dense(batch, k, group_size, n_groups, dtype, index_dtype, blocks):
    x, values, indices, bias = make_case(batch, 24, group_size, n_groups, k, dtype, index_dtype)
    check_against_truth(
        x, values, indices, bias, group_size, implementation="pallas", block_sizes=blocks, interpret=True
    )


def test_jit_vmap_and_per_example_grads():
    x, values, indices, bias = make_case(6, 24, 16, 2, 20)
    f = functools.partial(grouped_condensed_matmul, group_size=16, implementation="pallas", interpret=True)
    xs = x.reshape(2, 3, 24)
    y = jax.jit(jax.vmap(f, in_axes=(0, None, None, None)))(xs, values, indices, bias)
    assert_close(y, grouped_condensed_matmul_reference(xs, values, indices, bias, group_size=16), jnp.float32)
    # vmap over the weights (a batched pallas_call grid), and per-example grads through the custom VJP.
    vs = jnp.stack([values, -2 * values])
    y_v = jax.vmap(f, in_axes=(None, 0, None, None))(x, vs, indices, bias)
    assert_close(y_v[1], grouped_condensed_matmul_reference(x, vs[1], indices, bias, group_size=16), jnp.float32)
    loss = lambda fn, v, xi: fn(xi[None], v, indices, bias).sum()
    per_example = jax.jit(jax.vmap(jax.grad(functools.partial(loss, f)), in_axes=(None, 0)))(values, x)
    ref = jax.vmap(
        jax.grad(functools.partial(loss, functools.partial(grouped_condensed_matmul_reference, group_size=16))),
        in_axes=(None, 0),
    )(values, x)
    assert per_example.shape == (6, *values.shape)
    assert_close(per_example, ref, jnp.float32)


def test_leading_dims_and_mixed_dtypes():
    x, values, indices, bias = make_case(6, 24, 16, 2, 20)
    x3 = x.astype(jnp.bfloat16).reshape(2, 3, 24)  # bf16 x with f32 values promotes to f32
    y = grouped_condensed_matmul(x3, values, indices, bias, group_size=16, implementation="pallas", interpret=True)
    assert y.shape == (2, 3, 32) and y.dtype == jnp.float32
    assert_close(y, grouped_condensed_matmul_reference(x3, values, indices, bias, group_size=16), jnp.float32)


def test_padding_reads_the_zero_row_not_feature_zero():
    # k = 20 pads to 32 and batch 3 to 16. Padding with index 0 would multiply the Inf in x[:, 0] by a zero value.
    x, values, indices, _ = make_case(3, 24, 16, 2, 20)
    x = x.at[:, 0].set(jnp.inf)
    indices = jnp.where(indices == 0, 1, indices)
    y = grouped_condensed_matmul(x, values, indices, group_size=16, implementation="pallas", interpret=True)
    assert np.isfinite(np.asarray(y)).all()
    assert_close(y, grouped_condensed_matmul_reference(x, values, indices, group_size=16), jnp.float32)


def test_traced_out_of_range_indices_are_empty_slots():
    # Under jit the indices are not range-checked; the kernels must map them to the zero row. Interpret-mode
    # gathers wrap negative ids and clamp large ones (onto the zero row, the last): -3 would read x[:, 22].
    x, values, indices, _ = make_case(3, 24, 16, 2, 20)
    bad = indices.at[:, 3].set(-1).at[:, 4].set(-3).at[:, 5].set(24 + 5).at[:, 6].set(40000)
    f = jax.jit(
        lambda x, v, i: grouped_condensed_matmul(x, v, i, group_size=16, implementation="pallas", interpret=True)
    )
    y, vjp = jax.vjp(lambda x, v: f(x, v, bad), x, values)
    cleaned = jnp.where((bad >= 0) & (bad < 24), bad, 24)
    y_ref, vjp_ref = jax.vjp(lambda x, v: grouped_condensed_matmul_reference(x, v, cleaned, group_size=16), x, values)
    assert_close(y, y_ref, jnp.float32)
    for g, g_ref in zip(vjp(jnp.ones_like(y)), vjp_ref(jnp.ones_like(y)), strict=True):
        assert_close(g, g_ref, jnp.float32)


def test_int16_indices_with_more_inputs_than_int16_holds_the_padding_id():
    # n_in = 40000 > int16 max: the padding id cannot be int16, the kernel must widen before padding.
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(2, 40000)), jnp.float32)
    values = jnp.asarray(rng.normal(size=(16, 5)), jnp.float32)
    indices = jnp.asarray(rng.integers(0, 32767, size=(1, 5)), jnp.int16)
    y = grouped_condensed_matmul(x, values, indices, group_size=16, implementation="pallas", interpret=True)
    assert_close(y, grouped_condensed_matmul_reference(x, values, indices, group_size=16), jnp.float32)


def test_default_block_sizes():
    assert default_block_sizes(1, 16, 20) == BlockSizes(block_group=16, block_k=32, block_batch=16)
    blocks = default_block_sizes(300, 256, 410)
    assert (blocks.block_group, blocks.block_k, blocks.block_batch, blocks.num_warps) == (64, 64, 128, 8)
    assert default_block_sizes(40, 48, 8).block_group == 16  # the largest power of two dividing 48
    assert default_block_sizes(40, 48, 8).block_batch == 64
    with pytest.raises(ValueError, match="multiple of 16"):
        default_block_sizes(4, 8, 20)
