"""jax-triton backend of the condensed forward (optional: needs a GPU jaxlib, `triton` and `jax-triton`).

The same tiling as the Pallas kernel (feature-major xT with a zero row, BO x BK x BB gathers, float32
accumulator), written against Triton directly and launched with `jax_triton.triton_call`; its backward reuses
the Pallas backward kernels. `triton_call` has no vmap rule, so this backend does not batch under `jax.vmap`.
"""

import functools

import jax
import jax.numpy as jnp

from . import pallas_triton

__all__ = ["available", "condensed_matmul_triton"]

try:
    import jax_triton as jt
    import triton
    import triton.language as tl
except Exception:  # ImportError, or a CPU-only jaxlib that jax-triton refuses at import
    jt = None


def available() -> bool:
    return jt is not None


if jt is not None:

    @triton.jit
    def _forward_kernel(
        idx_ptr,
        val_ptr,
        xt_ptr,
        y_ptr,
        n_in: tl.constexpr,
        k_pad: tl.constexpr,
        batch_pad: tl.constexpr,
        n_out_pad: tl.constexpr,
        block_out: tl.constexpr,
        block_k: tl.constexpr,
        block_batch: tl.constexpr,
    ):
        offs_o = tl.program_id(0) * block_out + tl.arange(0, block_out)
        offs_b = tl.program_id(1) * block_batch + tl.arange(0, block_batch)
        acc = tl.zeros((block_out, block_batch), dtype=tl.float32)
        for k0 in range(0, k_pad, block_k):
            offs_k = k0 + tl.arange(0, block_k)
            slot = offs_o[:, None] * k_pad + offs_k[None, :]
            idx = tl.load(idx_ptr + slot, eviction_policy="evict_first").to(tl.int32)
            idx = tl.where((idx >= 0) & (idx < n_in), idx, n_in)
            v = tl.load(val_ptr + slot, eviction_policy="evict_first").to(tl.float32)
            xg = tl.load(xt_ptr + idx[:, :, None] * batch_pad + offs_b[None, None, :], eviction_policy="evict_last")
            acc += tl.sum(v[:, :, None] * xg.to(tl.float32), axis=1)
        y_ptrs = y_ptr + offs_b[None, :] * n_out_pad + offs_o[:, None]
        tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty))


def _forward(xt, values_p, indices_p, blocks):
    n_in, batch_pad = xt.shape[0] - 1, xt.shape[1]
    n_out_pad, k_pad = values_p.shape
    bo, bk, bb = blocks.block_out, blocks.block_k, blocks.block_batch
    return jt.triton_call(
        indices_p,
        values_p,
        xt,
        kernel=_forward_kernel,
        out_shape=jax.ShapeDtypeStruct((batch_pad, n_out_pad), xt.dtype),
        grid=(n_out_pad // bo, batch_pad // bb),
        num_warps=blocks.num_warps,
        num_stages=blocks.num_stages,
        n_in=n_in,
        k_pad=k_pad,
        batch_pad=batch_pad,
        n_out_pad=n_out_pad,
        block_out=bo,
        block_k=bk,
        block_batch=bb,
    )


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _condensed(x2d, values, indices, blocks):
    return _condensed_fwd(x2d, values, indices, blocks)[0]


def _condensed_fwd(x2d, values, indices, blocks):
    operands = pallas_triton._operands(x2d, values, indices, blocks)
    y = _forward(*operands, blocks)[: x2d.shape[0], : values.shape[0]]
    return y, (*operands, indices)  # the Pallas backward's residuals


def _condensed_bwd(blocks, residuals, g):
    return pallas_triton.backward(blocks, False, residuals, g)


_condensed.defvjp(_condensed_fwd, _condensed_bwd)


def condensed_matmul_triton(x2d, values, indices, *, blocks=None):
    """The jax-triton backend on checked 2-D inputs; raises RuntimeError when jax-triton is unavailable."""
    if jt is None:
        raise RuntimeError(
            "implementation='triton' needs jax-triton and a GPU jaxlib (pip install 'jaxsparse[gpu]'); "
            "use implementation='pallas' or 'auto'"
        )
    if blocks is None:
        # The backward's tiling: this forward reads the padded operands, as the backward does.
        blocks = pallas_triton.default_backward_block_sizes(x2d.shape[0], values.shape[0], values.shape[1])
    elif blocks.batch_major:
        raise ValueError("block_sizes.batch_major is a Pallas-backend option; the jax-triton kernel is feature-major")
    dtype = jnp.result_type(x2d.dtype, values.dtype)
    return _condensed(x2d.astype(dtype), values.astype(dtype), indices, blocks)
