"""A DST training step's XLA temporary arena stays under glibc's 32 MiB mmap threshold and, with the malloc
settings of `python -m benchmarks`, is reused without page faults from step to step (jaxsparse/cli/_cpu_runtime.py).

Past the mmap threshold glibc maps the arena afresh on every step, and below it the default trim threshold
still hands the freed arena back to the kernel: either way the page faults make every step, mask update or
not, 1.1-1.6x a static-sparse step on CPU (benchmarks/dst_step.py). Run in a subprocess because XLA reads
its flags once per process and the malloc settings are process-wide.
"""

import os
import subprocess
import sys

import pytest

from jaxsparse.cli._cpu_runtime import CPU_SCHEDULER_FLAG

_SCRIPT = """
import resource, sys
from jaxsparse.cli._cpu_runtime import keep_freed_memory_in_process
if sys.argv[1] == "tuned":
    assert keep_freed_memory_in_process({}), "mallopt was not applied"
import jax, jax.numpy as jnp, numpy as np, optax
from flax import nnx
from jaxsparse import dst
from jaxsparse.nn import MLP, cross_entropy, get_params

model = MLP(784, (1024, 1024), 10, rngs=nnx.Rngs(0))
graphdef, params = nnx.graphdef(model), get_params(model)
last = [p for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0] if np.ndim(leaf) == 2][-1]
x, y = jnp.zeros((128, 784)), jnp.zeros((128,), jnp.int32)
steps, temps = {}, {}
for name, make in (("static", dst.static_sparse), ("srigl", dst.srigl), ("rigl", dst.rigl),
                   ("set", dst.sparse_evolutionary)):
    kw = dict(sparsity=0.9, key=jax.random.key(1), sparse_leaves=lambda p, l: np.ndim(l) == 2 and p != last)
    if name != "static":
        kw.update(update_every=100, total_steps=10**9)
    tx = make(optax.adam(1e-3), **kw)

    def step(params, state, x, y, tx=tx):
        grads = jax.grad(lambda p: cross_entropy(nnx.merge(graphdef, p)(x), y))(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    state = tx.init(params)
    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, x, y).compile()
    temps[name] = compiled.memory_analysis().temp_size_in_bytes
    steps[name] = [compiled, jax.tree.map(jnp.copy, params), state]

# Blocks of ordinary steps (counts 1-60, no mask update) of the four programs in turn, as a benchmark or a
# notebook comparing them does: each program's arena is freed and allocated again between blocks.
faults = dict.fromkeys(steps, 0)
for block in range(4):
    for name, entry in steps.items():
        compiled = entry[0]
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(15):
            entry[1], entry[2] = compiled(entry[1], entry[2], x, y)
        jax.block_until_ready(entry[1])
        if block:  # the first round warms up
            faults[name] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
for name in steps:
    print(name, temps[name], faults[name] / 45)
"""


def _run(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "JAXSPARSE_KEEP_XLA_FLAGS"}
    env.update(XLA_FLAGS=CPU_SCHEDULER_FLAG, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, mode], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split() for line in out.stdout.splitlines() if line.strip()]
    return {name: (int(temp), float(faults)) for name, temp, faults in rows}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc settings: Linux only")
def test_mask_update_step_arena_fits_under_the_mmap_threshold_and_is_reused():
    tuned = _run("tuned")
    assert set(tuned) == {"static", "srigl", "rigl", "set"}
    for name, (temp, faults) in tuned.items():
        assert temp < 32 * 2**20, (name, temp / 2**20)
        # An arena mapped afresh would fault in ~5800 pages (23 MB) per step; glibc's default trimming ~1200.
        assert faults < 400, (name, faults)
