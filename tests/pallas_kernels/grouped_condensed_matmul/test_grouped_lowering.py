"""The Triton lowering, checked on CPU by lowering for CUDA, and one comparison on a real GPU (skipped elsewhere)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pallas_kernels.grouped_condensed_matmul import BlockSizes, grouped_condensed_matmul
from tests.pallas_kernels._cuda_lowering import TRITON_CALL, lower_for_cuda

from ._cases import assert_close, check_against_truth, make_case

# JAX >= 0.11 deprecates the Pallas Triton backend and warns at every lowering; the kernel still targets it.
pytestmark = pytest.mark.filterwarnings("ignore:The Pallas Triton backend is deprecated:DeprecationWarning")


@pytest.mark.parametrize(
    ("dtype", "index_dtype", "blocks"),
    [
        (jnp.float32, jnp.int32, None),
        (jnp.bfloat16, jnp.int16, None),
        (jnp.bfloat16, jnp.int32, BlockSizes(block_group=64, block_k=64, block_batch=128, num_warps=8)),
    ],
)
@pytest.mark.parametrize("mode", ["forward", "grad"])
def test_lowers_to_triton_for_cuda(dtype, index_dtype, blocks, mode):
    # G = 64, k = 37 (padded) and batch 5 (padded); the grad lowers the forward and the grad-values kernels.
    batch, n_in, group_size, n_groups, k = 5, 40, 64, 2, 37

    def forward(x, values, indices):
        return grouped_condensed_matmul(
            x, values, indices, group_size=group_size, implementation="pallas", block_sizes=blocks, interpret=False
        )

    fn = forward
    if mode == "grad":
        fn = jax.grad(lambda x, v, i: forward(x, v, i).astype(jnp.float32).sum(), argnums=(0, 1))
    specs = (
        jax.ShapeDtypeStruct((batch, n_in), dtype),
        jax.ShapeDtypeStruct((group_size * n_groups, k), dtype),
        jax.ShapeDtypeStruct((n_groups, k), index_dtype),
    )
    text = lower_for_cuda(fn, *specs)
    assert "custom_call" in text
    assert text.count(TRITON_CALL) == (1 if mode == "forward" else 2)


@pytest.mark.gpu
@pytest.mark.parametrize(("dtype", "batch"), [(jnp.float32, 1), (jnp.float32, 200), (jnp.bfloat16, 33)])
def test_gpu_kernel_matches_reference(dtype, batch):
    # Batch 200 takes the densified grad-x branch (p [4 * 70, 200] outgrows W [300, 128]); the others the scatter.
    x, values, indices, bias = make_case(batch, 300, 32, 4, 70, dtype, jnp.int16)
    check_against_truth(x, values, indices, bias, 32, implementation="pallas", interpret=False)
    # A second tiling (two programs per group, 16-wide batch tiles) must give the same result as the default.
    blocks = BlockSizes(block_group=16, block_k=16, block_batch=16)
    y = grouped_condensed_matmul(x, values, indices, bias, group_size=32, implementation="pallas", block_sizes=blocks)
    y_default = grouped_condensed_matmul(x, values, indices, bias, group_size=32, implementation="pallas")
    assert_close(y, np.asarray(y_default, np.float32), dtype)
