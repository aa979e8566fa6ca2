"""N:M matmul: format conversion, every backend against the reference and numpy, the CUDA lowering, the GPU."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.nm_matmul import (
    GPU_KERNEL_MAX_BATCH,
    BlockSizes,
    auto_implementation,
    default_block_sizes,
    nm_compress,
    nm_decompress,
    nm_matmul,
    nm_matmul_reference,
    pack_positions,
    packed_length,
    position_bits,
    unpack_positions,
)
from tests.pallas_kernels._cuda_lowering import TRITON_CALL, lower_for_cuda

# Small tiles so odd shapes span several programs and loop steps while the interpreted grid stays tiny.
SMALL = BlockSizes(block_out=16, block_in=16, block_batch=16)
# On a GPU, f32 dots (the kernel's and XLA's at default precision) run as TF32 with a 10-bit mantissa.
TOL = {jnp.float32: 1e-5 if jax.default_backend() == "cpu" else 1e-2, jnp.bfloat16: 2e-2}


def _layer(rng, n_out, groups, n, m, dtype=jnp.float32):
    """Random N:M layer: distinct sorted positions per group, values bounded away from zero."""
    positions = np.sort(np.argsort(rng.random((n_out, groups, m)), axis=-1)[..., :n], axis=-1).astype(np.uint8)
    values = rng.choice([-1.0, 1.0], (n_out, groups, n)) * rng.uniform(0.5, 1.5, (n_out, groups, n))
    return jnp.asarray(values, dtype), jnp.asarray(positions)


def _dense_np(values, positions, m):
    """Numpy float64 W [in, n_out], independent of the library's decompression."""
    values, positions = np.asarray(values, np.float64), np.asarray(positions)
    n_out, groups, n = values.shape
    w = np.zeros((groups * m, n_out))
    for o in range(n_out):
        for g in range(groups):
            for k in range(n):
                w[g * m + positions[o, g, k], o] += values[o, g, k]
    return w


def _close(actual, expected, dtype):
    expected = np.asarray(expected, np.float64)
    tol = TOL[dtype]
    scale = max(1.0, float(np.max(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=tol, atol=tol * scale)


def _value_and_vjp(fn, x, values, cot):
    """y = fn(x, values) and the cotangents of (x, values) for dy = cot, from one trace of the forward."""

    def run(x, values):
        y, pullback = jax.vjp(fn, x, values)
        return y, pullback(cot.astype(y.dtype))

    return jax.jit(run)(x, values)


# -------------------------------------------------------------------------------------------- format conversion


@pytest.mark.parametrize("m", [2, 4, 8, 16])
@pytest.mark.parametrize("n", [1, 2, 3])
def test_pack_unpack_round_trip(m, n):
    rng = np.random.default_rng(m * 10 + n)
    groups = 7  # groups * n is not a multiple of the fields per byte for most (n, m)
    positions = jnp.asarray(rng.integers(0, m, (5, groups, n)), jnp.int32)
    packed = pack_positions(positions, m)
    assert packed.dtype == jnp.uint8
    assert packed.shape == (5, packed_length(groups, n, m))
    assert packed.shape[1] == -(-(groups * n * position_bits(m)) // 8)
    back = unpack_positions(packed, n, m, groups)
    assert back.dtype == jnp.uint8
    np.testing.assert_array_equal(np.asarray(back), np.asarray(positions))


def test_pack_bit_layout_m4_is_two_bits_little_endian():
    positions = jnp.asarray([[[0, 1], [2, 3], [3, 0]]])  # 6 entries -> 2 bytes, 4 per byte
    packed = np.asarray(pack_positions(positions, 4))
    assert packed.tolist() == [[0 | 1 << 2 | 2 << 4 | 3 << 6, 3]]
    assert [position_bits(m) for m in (2, 4, 8, 16)] == [1, 2, 4, 4]


def test_compress_keeps_exactly_n_largest_per_group():
    rng = np.random.default_rng(1)
    n, m = 2, 4
    kernel = rng.standard_normal((24, 6)).astype(np.float32)
    values, positions = nm_compress(jnp.asarray(kernel), n, m)
    assert values.shape == positions.shape == (6, 6, n)
    assert positions.dtype == jnp.uint8
    pos = np.asarray(positions)
    assert np.all(np.diff(pos.astype(int), axis=-1) > 0)  # n distinct offsets, sorted
    by_group = kernel.T.reshape(6, 6, m)
    expected = np.sort(np.argsort(-np.abs(by_group), axis=-1, kind="stable")[..., :n], axis=-1)
    np.testing.assert_array_equal(pos, expected)
    np.testing.assert_array_equal(np.asarray(values), np.take_along_axis(by_group, expected, axis=-1))
    dense = np.asarray(nm_decompress(values, positions, m))
    kept = np.abs(dense.T.reshape(6, 6, m))
    assert np.all((kept != 0).sum(-1) == n)
    dropped = np.where(kept == 0, np.abs(by_group), 0).max(-1)
    assert np.all(dropped <= np.where(kept > 0, kept, np.inf).min(-1))


def test_compress_ties_keep_lowest_offsets():
    kernel = jnp.asarray([[1.0, -2.0], [-1.0, 2.0], [1.0, 2.0], [1.0, -2.0]])  # |w| ties within each group
    values, positions = nm_compress(kernel, 2, 4)
    np.testing.assert_array_equal(np.asarray(positions), [[[0, 1]], [[0, 1]]])
    np.testing.assert_array_equal(np.asarray(values), [[[1.0, -1.0]], [[-2.0, 2.0]]])


@pytest.mark.parametrize(("n", "m"), [(2, 4), (1, 4), (4, 8), (3, 3)])
def test_compress_decompress_round_trip_and_packed_decompress(n, m):
    rng = np.random.default_rng(n + m)
    values, positions = _layer(rng, 5, 4, n, m)
    dense = _dense_np(values, positions, m)
    np.testing.assert_array_equal(np.asarray(nm_decompress(values, positions, m)), dense)
    v2, p2 = nm_compress(jnp.asarray(dense, jnp.float32), n, m)
    np.testing.assert_array_equal(_dense_np(v2, p2, m), dense)
    if m in (2, 4, 8, 16):
        packed = pack_positions(positions, m)
        np.testing.assert_array_equal(np.asarray(nm_decompress(values, packed, m, packed=True)), dense)


# ------------------------------------------------------------------------------------------ matmul correctness


# Every (n:m, dtype, packed) pair and both batch sizes appear, without the full product's interpret time.
PALLAS_CASES = [
    (2, 4, jnp.float32, False, 5),
    (2, 4, jnp.float32, True, 1),
    (2, 4, jnp.bfloat16, False, 1),
    (2, 4, jnp.bfloat16, True, 5),
    (1, 4, jnp.float32, True, 5),
    (1, 4, jnp.bfloat16, False, 1),
    (4, 8, jnp.float32, False, 1),
    (4, 8, jnp.bfloat16, True, 5),
]


@pytest.mark.parametrize(("n", "m", "dtype", "packed", "batch"), PALLAS_CASES)
def test_pallas_forward_and_grads(n, m, dtype, packed, batch):
    """Odd batch and n_out, in_features = 9 groups (not a multiple of block_in), 2x2 programs x several steps."""
    rng = np.random.default_rng(hash((n, m, batch)) % 2**32)
    n_out, groups = 19, 9
    values, positions = _layer(rng, n_out, groups, n, m, dtype)
    stored = pack_positions(positions, m) if packed else positions
    x = jnp.asarray(rng.standard_normal((batch, groups * m)), dtype)
    cot = jnp.asarray(rng.standard_normal((batch, n_out)), jnp.float32)

    def pallas(x, values):
        return nm_matmul(x, values, stored, m=m, packed=packed, implementation="pallas", block_sizes=SMALL)

    y, (gx, gv) = _value_and_vjp(pallas, x, values, cot)
    assert y.shape == (batch, n_out) and y.dtype == dtype
    reference = nm_matmul_reference(x, values, stored, packed=packed)
    _close(y, reference, dtype)
    w = _dense_np(values, positions, m)
    x64 = np.asarray(x, np.float64)
    _close(y, x64 @ w, dtype)

    _, (rgx, rgv) = _value_and_vjp(lambda x, v: nm_matmul_reference(x, v, stored, packed=packed), x, values, cot)
    assert gx.dtype == dtype and gv.dtype == dtype
    _close(gx, rgx, dtype)
    _close(gv, rgv, dtype)
    cot64 = np.asarray(cot.astype(dtype), np.float64)
    _close(gx, cot64 @ w.T, dtype)
    grad_w = x64.T @ cot64
    pos = np.asarray(positions).astype(int)
    expected_gv = grad_w[np.arange(groups)[None, :, None] * m + pos, np.arange(n_out)[:, None, None]]
    _close(gv, expected_gv, dtype)


@pytest.mark.parametrize(("n", "m", "packed"), [(3, 4, False), (3, 4, True), (2, 3, False), (1, 32, False)])
def test_pallas_pads_non_power_of_two_n_and_m(n, m, packed):
    rng = np.random.default_rng(7)
    values, positions = _layer(rng, 17, 5, n, m)
    stored = pack_positions(positions, m) if packed else positions
    x = jnp.asarray(rng.standard_normal((3, 5 * m)), jnp.float32)
    blocks = BlockSizes(block_out=16, block_in=max(16, 1 << (m - 1).bit_length()), block_batch=16)
    y = nm_matmul(x, values, stored, m=m, packed=packed, implementation="pallas", block_sizes=blocks)
    _close(y, np.asarray(x, np.float64) @ _dense_np(values, positions, m), jnp.float32)


def test_pallas_default_block_sizes_and_leading_dims_and_bias():
    rng = np.random.default_rng(3)
    n, m = 2, 4
    values, positions = _layer(rng, 37, 11, n, m)
    packed = pack_positions(positions, m)
    x = jnp.asarray(rng.standard_normal((2, 3, 44)), jnp.float32)
    bias = jnp.asarray(rng.standard_normal(37), jnp.float32)
    y = nm_matmul(x, values, packed, bias, m=m, packed=True, implementation="pallas")
    assert y.shape == (2, 3, 37)
    expected = np.asarray(x, np.float64).reshape(6, 44) @ _dense_np(values, positions, m) + np.asarray(bias)
    _close(y.reshape(6, 37), expected, jnp.float32)
    blocks = default_block_sizes(6, 44, n, m, packed=True)
    assert blocks.block_in % m == 0 and blocks.block_out * blocks.block_in * n <= 8192


@pytest.mark.parametrize("implementation", ["xla", "dense", "auto"])
@pytest.mark.parametrize("packed", [False, True])
def test_xla_and_dense_backends(implementation, packed):
    rng = np.random.default_rng(4)
    n, m = 2, 4
    values, positions = _layer(rng, 7, 5, n, m)
    stored = pack_positions(positions, m) if packed else positions
    x = jnp.asarray(rng.standard_normal((5, 20)), jnp.float32)
    cot = jnp.asarray(rng.standard_normal((5, 7)), jnp.float32)
    fn = lambda x, v: nm_matmul(x, v, stored, m=m, packed=packed, implementation=implementation)
    y, (gx, gv) = _value_and_vjp(fn, x, values, cot)
    _, (rgx, rgv) = _value_and_vjp(lambda x, v: nm_matmul_reference(x, v, stored, packed=packed), x, values, cot)
    _close(y, nm_matmul_reference(x, values, stored, packed=packed), jnp.float32)
    _close(gx, rgx, jnp.float32)
    _close(gv, rgv, jnp.float32)


def test_dense_backend_uses_cached_kernel():
    rng = np.random.default_rng(5)
    values, positions = _layer(rng, 7, 5, 2, 4)
    x = jnp.asarray(rng.standard_normal((3, 20)), jnp.float32)
    cached = 2.0 * nm_decompress(values, positions, 4)  # a different kernel proves the cache is what is used
    y = nm_matmul(x, values, positions, m=4, implementation="dense", dense_kernel=cached)
    _close(y, 2.0 * np.asarray(x, np.float64) @ _dense_np(values, positions, 4), jnp.float32)


@pytest.mark.parametrize("packed", [False, True])
def test_cached_kernel_never_bends_gradients(packed):
    # Differentiated, the dense path rebuilds W from values: even a wrong cache gives the true gradients.
    rng = np.random.default_rng(15)
    values, positions = _layer(rng, 7, 5, 2, 4)
    if packed:
        positions = pack_positions(positions, 4)
    x = jnp.asarray(rng.standard_normal((3, 20)), jnp.float32)
    g = jnp.asarray(rng.standard_normal((3, 7)), jnp.float32)
    wrong = 2.0 * nm_decompress(values, positions, 4, packed=packed)

    def loss(x, v, cache, implementation):
        y = nm_matmul(x, v, positions, m=4, packed=packed, implementation=implementation, dense_kernel=cache)
        return jnp.sum(y * g)

    gx, gv, gw = jax.grad(loss, argnums=(0, 1, 2))(x, values, wrong, "dense")
    rgx, rgv = jax.grad(loss, argnums=(0, 1))(x, values, None, "xla")
    _close(gx, rgx, jnp.float32)
    _close(gv, rgv, jnp.float32)
    np.testing.assert_array_equal(np.asarray(gw), 0.0)


def test_vmap_over_x_and_over_weights():
    rng = np.random.default_rng(6)
    n, m = 2, 4
    values, positions = _layer(rng, 17, 5, n, m)
    stacked_values = jnp.stack([values, -0.5 * values])
    x = jnp.asarray(rng.standard_normal((2, 3, 20)), jnp.float32)
    fn = lambda x, v: nm_matmul(x, v, positions, m=m, implementation="pallas", block_sizes=SMALL)
    w = _dense_np(values, positions, m)
    over_x = jax.jit(jax.vmap(fn, in_axes=(0, None)))(x, values)
    _close(over_x, np.asarray(x, np.float64) @ w, jnp.float32)
    over_both = jax.jit(jax.vmap(fn))(x, stacked_values)
    _close(over_both[0], np.asarray(x[0], np.float64) @ w, jnp.float32)
    _close(over_both[1], np.asarray(x[1], np.float64) @ (-0.5 * w), jnp.float32)


@pytest.mark.parametrize("implementation", ["pallas", "xla"])
@pytest.mark.parametrize("m", [4, 3])  # m = 3: position 3 lands in the kernel's zero-padded 4th group column
def test_traced_out_of_range_positions_contribute_nothing(implementation, m):
    rng = np.random.default_rng(8)
    values, positions = _layer(rng, 17, 5, 2, m)
    bad = positions.astype(jnp.int32).at[0, 0, 0].set(m).at[3, 2, 1].set(-1).at[5, 4, 0].set(200)
    keep = np.ones(values.shape)
    keep[0, 0, 0] = keep[3, 2, 1] = keep[5, 4, 0] = 0
    x = jnp.asarray(rng.standard_normal((2, 5 * m)), jnp.float32)
    fn = jax.jit(lambda x, p: nm_matmul(x, values, p, m=m, implementation=implementation, block_sizes=SMALL))
    expected = np.asarray(x, np.float64) @ _dense_np(np.asarray(values) * keep, np.clip(bad, 0, m - 1), m)
    _close(fn(x, bad), expected, jnp.float32)


# ------------------------------------------------------------------------------------------------ dispatch, errors


def test_auto_implementation():
    if GPU_KERNEL_MAX_BATCH >= 1:
        assert auto_implementation(1, jnp.bfloat16, platform="gpu") == "pallas"
        assert auto_implementation(GPU_KERNEL_MAX_BATCH, platform="cuda") == "pallas"
    else:  # measured slower than decompress-then-dot on an H200: never picked
        assert auto_implementation(1, jnp.bfloat16, platform="gpu") == "xla"
    assert auto_implementation(GPU_KERNEL_MAX_BATCH + 1, platform="gpu") == "xla"
    assert auto_implementation(GPU_KERNEL_MAX_BATCH + 1, platform="gpu", dense_kernel=True) == "dense"
    assert auto_implementation(1, jnp.float64, platform="gpu") == "xla"
    assert auto_implementation(1, platform="cpu") == "xla"
    assert auto_implementation(1, platform="tpu") == "xla"


def _bad_call(**overrides):
    values, positions = _layer(np.random.default_rng(0), 4, 3, 2, 4)
    args = {"x": jnp.ones((2, 12)), "values": values, "positions": positions, "m": 4}
    args.update(overrides)
    return nm_matmul(args.pop("x"), args.pop("values"), args.pop("positions"), **args)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"m": 0}, "m must be a positive int"),
        ({"m": 4.0}, "m must be a positive int"),
        ({"m": 3}, "in_features must equal groups"),
        ({"x": jnp.ones((2, 13))}, "in_features must equal groups"),
        ({"x": jnp.ones((2, 12), jnp.int32)}, "x must be floating point"),
        ({"values": jnp.ones((4, 3, 5)), "positions": jnp.zeros((4, 3, 5), jnp.int32)}, "1 <= n <= m"),
        ({"values": jnp.ones((4, 6))}, r"values must have shape \[n_out, groups, n\]"),
        ({"positions": jnp.zeros((4, 3, 2), jnp.float32)}, "positions must be an integer array"),
        ({"positions": jnp.zeros((4, 3, 1), jnp.int32)}, "pass packed=True"),
        ({"positions": jnp.full((4, 3, 2), 4, jnp.int32)}, r"positions out of range \[0, 4\)"),
        ({"positions": jnp.zeros((4, 3), jnp.uint8), "packed": True}, r"packed positions must have shape \(4, 2\)"),
        ({"positions": jnp.zeros((4, 2), jnp.int32), "packed": True}, "packed positions must be uint8"),
        ({"packed": 1}, "packed must be a bool"),
        ({"implementation": "triton"}, "implementation must be one of"),
        ({"block_sizes": (16, 16, 16)}, "block_sizes must be a BlockSizes"),
        ({"bias": jnp.ones(3)}, r"bias must have shape \(4,\)"),
        ({"dense_kernel": jnp.ones((12, 3)), "implementation": "dense"}, r"dense_kernel must have shape \(12, 4\)"),
        ({"dense_kernel": jnp.ones((12, 4)), "implementation": "xla"}, "dense_kernel is only used"),
        ({"interpret": "yes"}, "interpret must be a bool"),
    ],
)
def test_bad_arguments_raise(overrides, match):
    with pytest.raises(ValueError, match=match):
        _bad_call(**overrides)


def test_bad_format_and_block_arguments_raise():
    with pytest.raises(ValueError, match="n must be an int with 1 <= n <= m"):
        nm_compress(jnp.ones((8, 2)), 5, 4)
    with pytest.raises(ValueError, match="must be a multiple of m"):
        nm_compress(jnp.ones((10, 2)), 2, 4)
    with pytest.raises(ValueError, match="m must be one of"):
        pack_positions(jnp.zeros((2, 3, 1), jnp.int32), 3)
    with pytest.raises(ValueError, match=r"positions out of range \[0, 4\)"):
        pack_positions(jnp.full((2, 3, 1), 5, jnp.int32), 4)
    with pytest.raises(ValueError, match="packed has 3 bytes per row; groups=3, n=2, m=4 need 2"):
        unpack_positions(jnp.zeros((2, 3), jnp.uint8), 2, 4, 3)
    eight = jnp.full((1, 1), 0x9, jnp.uint8)  # field 0 = 9 >= m = 8 fits the 4-bit field but is no offset
    with pytest.raises(ValueError, match=r"positions out of range \[0, 8\)"):
        nm_decompress(jnp.ones((1, 1, 1)), eight, 8, packed=True)
    for bad in ({"block_out": 24}, {"block_in": 8}, {"block_batch": 0}, {"num_warps": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            BlockSizes(**bad)
    values, positions = _layer(np.random.default_rng(0), 4, 2, 1, 32)
    with pytest.raises(ValueError, match=r"block_sizes.block_in = 16 is too small .* >= 32"):
        nm_matmul(jnp.ones((1, 64)), values, positions, m=32, implementation="pallas", block_sizes=SMALL)
    values, positions = _layer(np.random.default_rng(0), 4, 2, 8, 8)
    big = BlockSizes(block_out=128, block_in=128, block_batch=16)
    with pytest.raises(ValueError, match="exceeds 65536 live decode elements"):
        nm_matmul(jnp.ones((1, 16)), values, positions, m=8, implementation="pallas", block_sizes=big)


# --------------------------------------------------------------------------------------------- GPU lowering, GPU


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize(("n", "m", "packed"), [(2, 4, True), (2, 4, False), (4, 8, True), (3, 3, False)])
def test_lowers_to_triton_for_cuda(dtype, n, m, packed):
    """Lowering for CUDA runs the Pallas-to-Triton lowering, which rejects non-power-of-2 tensors and ops it lacks."""
    batch, n_out, groups = 5, 37, 11
    length = packed_length(groups, n, m) if packed else None
    specs = (
        jax.ShapeDtypeStruct((batch, groups * m), dtype),
        jax.ShapeDtypeStruct((n_out, groups, n), dtype),
        jax.ShapeDtypeStruct((n_out, length) if packed else (n_out, groups, n), jnp.uint8),
    )
    fwd = lambda x, v, p: nm_matmul(x, v, p, m=m, packed=packed, implementation="pallas", interpret=False)
    grad = jax.grad(lambda x, v, p: jnp.sum(fwd(x, v, p).astype(jnp.float32)), argnums=(0, 1))
    for fn in (fwd, grad):
        text = lower_for_cuda(fn, *specs)
        assert text.count("custom_call") == 1
        assert text.count(TRITON_CALL) == 1


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize(("n", "m", "packed"), [(2, 4, True), (1, 4, True), (4, 8, True), (2, 4, False)])
@pytest.mark.parametrize("batch", [1, 24, 64])
def test_gpu_kernel_matches_reference(dtype, n, m, packed, batch):
    rng = np.random.default_rng(batch + n + m)
    n_out, groups = 300, 1024 // m
    values, positions = _layer(rng, n_out, groups, n, m, dtype)
    stored = pack_positions(positions, m) if packed else positions
    x = jnp.asarray(rng.standard_normal((batch, groups * m)), dtype)
    cot = jnp.asarray(rng.standard_normal((batch, n_out)), jnp.float32)
    fn = lambda x, v: nm_matmul(x, v, stored, m=m, packed=packed, implementation="pallas", interpret=False)
    ref = lambda x, v: nm_matmul_reference(x, v, stored, packed=packed)
    tol = TOL[dtype]
    scale = lambda a: max(1.0, float(jnp.max(jnp.abs(a.astype(jnp.float32)))))
    y, grads = _value_and_vjp(fn, x, values, cot)
    r, ref_grads = _value_and_vjp(ref, x, values, cot)
    for got, want in zip((y, *grads), (r, *ref_grads), strict=True):
        np.testing.assert_allclose(
            np.asarray(got, np.float32), np.asarray(want, np.float32), rtol=tol, atol=tol * scale(want)
        )
