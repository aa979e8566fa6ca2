"""A DST training step's XLA temporary arena stays under glibc's 32 MiB mmap threshold (CLI's XLA flags).

Past that threshold glibc mmaps the arena afresh on every step and the page faults make every step, mask
update or not, 1.4-1.6x a static-sparse step on CPU (benchmarks/dst_step.py). Compiled in a subprocess
because XLA reads its flags once per process.
"""

import os
import subprocess
import sys

from jaxsparse.cli._xla_env import CPU_SCHEDULER_FLAG

_SCRIPT = """
import jax, jax.numpy as jnp, numpy as np, optax
from flax import nnx
from jaxsparse import dst
from jaxsparse.nn import MLP, cross_entropy, get_params

model = MLP(784, (1024, 1024), 10, rngs=nnx.Rngs(0))
graphdef, params = nnx.graphdef(model), get_params(model)
last = [p for p, leaf in jax.tree_util.tree_flatten_with_path(params)[0] if np.ndim(leaf) == 2][-1]
x, y = jnp.zeros((128, 784)), jnp.zeros((128,), jnp.int32)
for name, make in (("static", dst.static_sparse), ("srigl", dst.srigl), ("rigl", dst.rigl),
                   ("set", dst.sparse_evolutionary)):
    kw = dict(sparsity=0.9, key=jax.random.key(1), sparse_leaves=lambda p, l: np.ndim(l) == 2 and p != last)
    if name != "static":
        kw.update(update_every=100, total_steps=10**9)
    tx = make(optax.adam(1e-3), **kw)
    state = tx.init(params)

    def step(params, state, x, y):
        grads = jax.grad(lambda p: cross_entropy(nnx.merge(graphdef, p)(x), y))(params)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    compiled = jax.jit(step, donate_argnums=(0, 1)).lower(params, state, x, y).compile()
    print(name, compiled.memory_analysis().temp_size_in_bytes)
"""


def test_mask_update_step_temporaries_fit_under_the_mmap_threshold():
    env = dict(os.environ, XLA_FLAGS=CPU_SCHEDULER_FLAG, JAX_PLATFORMS="cpu")
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    temps = {line.split()[0]: int(line.split()[1]) for line in out.stdout.splitlines() if line.strip()}
    assert set(temps) == {"static", "srigl", "rigl", "set"}
    for name, size in temps.items():
        assert size < 32 * 2**20, (name, size / 2**20)
