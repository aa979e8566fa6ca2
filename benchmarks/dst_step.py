"""Training-step cost of dynamic sparse training: SRigL / RigL / SET vs static sparse (same sparsity).

MLP 784 -> 1024 -> 1024 -> 10 (ReLU), batch 128, Adam, 90% sparsity (ERK) on both hidden kernels (the
classifier stays dense). Each variant is one jitted step `grads -> tx.update -> apply_updates` with the
params and optimizer state donated; the DST updaters use update_every = 100 and a T_end past the end of
the run, so they keep updating masks at their real frequency.

Two measurements, each side by side with alternating variants and medians over repeats:
  1. steady state: a sample is one block of 100 consecutive steps (99 optimizer steps + 1 mask-update
     step, dispatched back to back, blocked at the end); ratio = block time / static sparse block time.
  2. single step: one mask-update step vs one ordinary step (fixed inputs, blocked every call).

Run: `python -m benchmarks --only dst_step` (`--quick` for fewer repeats, `--tiny` for a toy MLP).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxsparse import dst
from jaxsparse.nn import MLP, cross_entropy, get_params

from ._timing import interleaved_medians

NAME = "dst_step"

FULL = {"in_features": 784, "hidden": (1024, 1024), "classes": 10, "batch": 128}
TINY = {"in_features": 64, "hidden": (64, 64), "classes": 10, "batch": 16}
SPARSITY = 0.9
UPDATE_EVERY = 100
LEARNING_RATE = 1e-3
TARGET_RATIO = 1.15
METHODS = ("srigl", "rigl", "set")
BASELINE = "static"


def _make_tx(method: str, sparse_leaves):
    inner = optax.adam(LEARNING_RATE)
    if method == "dense":
        return inner
    common = dict(sparsity=SPARSITY, key=jax.random.key(1), sparse_leaves=sparse_leaves)
    if method == "static":
        return dst.static_sparse(inner, **common)
    dynamic = dict(common, update_every=UPDATE_EVERY, total_steps=10**9)  # T_end never reached here
    if method == "srigl":
        return dst.srigl(inner, **dynamic)
    if method == "rigl":
        return dst.rigl(inner, **dynamic)
    if method == "set":
        return dst.sparse_evolutionary(inner, **dynamic)
    raise ValueError(method)


class _Trainer:
    """Functional training state for one method; `block()` runs `n` steps and returns the last loss."""

    def __init__(self, method: str, size: dict, x, y):
        model = MLP(size["in_features"], size["hidden"], size["classes"], rngs=nnx.Rngs(0))
        self.graphdef = nnx.graphdef(model)
        params = get_params(model)
        kernels = [path for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0] if np.ndim(leaf) == 2]
        last = kernels[-1]  # the classifier stays dense
        sparse_leaves = lambda path, leaf: np.ndim(leaf) == 2 and path != last
        self.tx = _make_tx(method, sparse_leaves)
        self.opt_state = self.tx.init(params)
        if method != "dense":
            params = dst.apply_initial_masks(params, self.opt_state)
        self.params, self.x, self.y = params, x, y

        def loss_fn(params, x, y):
            return cross_entropy(nnx.merge(self.graphdef, params)(x), y)

        def step(params, opt_state, x, y):
            loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
            updates, opt_state = self.tx.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, loss

        self.step = jax.jit(step, donate_argnums=(0, 1))
        self.step_fixed = jax.jit(step)  # no donation: re-run on the same inputs

    def block(self, n: int):
        loss = None
        for _ in range(n):
            self.params, self.opt_state, loss = self.step(self.params, self.opt_state, self.x, self.y)
        return loss

    def count(self) -> int:
        if isinstance(self.opt_state, dst.SparseState):
            return int(self.opt_state.count)
        return -1

    def fixed_step_at(self, count: int):
        """A zero-argument callable running one step from a copy of the state with `count` set."""
        state = self.opt_state
        if isinstance(state, dst.SparseState):
            state = state._replace(count=jnp.asarray(count, state.count.dtype))
        params = jax.tree.map(jnp.copy, self.params)
        state = jax.tree.map(lambda a: jnp.copy(a) if isinstance(a, jax.Array) else a, state)
        return functools.partial(self.step_fixed, params, state, self.x, self.y)


def _densities(trainer: _Trainer) -> list:
    if not isinstance(trainer.opt_state, dst.SparseState):
        return []
    return [
        None if m is None else round(float(np.asarray(m).mean()), 4)
        for m in jax.tree.leaves(trainer.opt_state.masks, is_leaf=lambda v: v is None)
    ]


def run(*, quick: bool = False, tiny: bool = False) -> dict:
    size = TINY if tiny else FULL
    block_steps = UPDATE_EVERY  # one mask update per block
    repeats = 3 if tiny else 3 if quick else 11
    step_repeats = 3 if tiny else 5 if quick else 15
    methods = ("dense", BASELINE, *METHODS)

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((size["batch"], size["in_features"])), jnp.float32)
    y = jnp.asarray(rng.integers(0, size["classes"], size["batch"]), jnp.int32)
    trainers = {m: _Trainer(m, size, x, y) for m in methods}
    sizes_text = " -> ".join(str(s) for s in (size["in_features"], *size["hidden"], size["classes"]))
    print(
        f"[{NAME}] MLP {sizes_text}, batch {size['batch']}, adam, sparsity {SPARSITY:.0%} (ERK, hidden kernels), "
        f"update_every {UPDATE_EVERY}; densities per leaf (bias, kernel, ...): {_densities(trainers['srigl'])}"
    )
    for t in trainers.values():  # compile (both lax.cond branches) and run one step
        jax.block_until_ready(t.block(1))

    # 1. Steady state over whole blocks of 100 steps (each block holds exactly one mask update).
    variants = {m: functools.partial(trainers[m].block, block_steps) for m in methods}
    for t in trainers.values():  # align counts to a multiple of the period; keeps sampling phase equal
        done = t.count()
        if done > 0:
            jax.block_until_ready(t.block((-done) % block_steps))
    start_counts = {m: t.count() for m, t in trainers.items()}
    blocks = interleaved_medians(variants, repeats=repeats, inner=1, warmup=0)
    for m in METHODS:  # every block really went through its mask updates
        n_blocks = repeats
        end = trainers[m].count()
        updates = sum(
            1 for c in range(start_counts[m], end) if c > 0 and c % UPDATE_EVERY == 0
        )  # == n_blocks by construction
        assert updates == n_blocks, (m, updates, n_blocks)
    base = blocks[BASELINE]["median_s"]
    print(f" steady state, {block_steps}-step blocks ({repeats} alternating repeats, medians):")
    print(f"  {'variant':<28} {'ms/step':>10}  {'vs static':>10}")
    steady = {}
    for m in methods:
        per_step = blocks[m]["median_s"] / block_steps
        ratio = blocks[m]["median_s"] / base
        flag = ""
        if m in METHODS:
            flag = "  ok (<= 1.15x)" if ratio <= TARGET_RATIO else f"  ABOVE target {TARGET_RATIO}x"
        label = {"dense": "dense adam (no masks)", "static": "static_sparse (baseline)"}.get(m, m)
        print(f"  {label:<28} {per_step * 1e3:10.3f}  {ratio:9.3f}x{flag}")
        steady[m] = {"block_median_s": blocks[m]["median_s"], "step_median_s": per_step, "ratio_vs_static": ratio}

    # 2. One mask-update step vs one ordinary step.
    mask_count, plain_count = 10 * UPDATE_EVERY, 10 * UPDATE_EVERY + 1
    single = {f"{BASELINE} step": trainers[BASELINE].fixed_step_at(plain_count)}
    for m in METHODS:
        single[f"{m} ordinary step"] = trainers[m].fixed_step_at(plain_count)
        single[f"{m} mask-update step"] = trainers[m].fixed_step_at(mask_count)
    steps = interleaved_medians(single, repeats=step_repeats, target_s=0.0, inner=1, warmup=1)
    static_step = steps[f"{BASELINE} step"]["median_s"]
    print(f" single steps ({step_repeats} alternating repeats, medians, blocked every call):")
    print(f"  {'static_sparse ordinary step':<28} {static_step * 1e3:10.3f} ms")
    per_method = {}
    for m in METHODS:
        plain = steps[f"{m} ordinary step"]["median_s"]
        mask = steps[f"{m} mask-update step"]["median_s"]
        extra = mask - static_step
        amortized = extra / UPDATE_EVERY / static_step
        print(
            f"  {m:<6} ordinary {plain * 1e3:9.3f} ms ({plain / static_step:5.2f}x static)   "
            f"mask update {mask * 1e3:9.3f} ms ({mask / static_step:6.2f}x static; "
            f"+{amortized:.1%} per step amortized over {UPDATE_EVERY})"
        )
        per_method[m] = {
            "ordinary_step_median_s": plain,
            "mask_update_step_median_s": mask,
            "mask_update_vs_static_step": mask / static_step,
            "amortized_overhead_fraction": amortized,
        }
    return {
        "sizes": {
            **{k: list(v) if isinstance(v, tuple) else v for k, v in size.items()},
            "sparsity": SPARSITY,
            "update_every": UPDATE_EVERY,
            "block_steps": block_steps,
            "repeats": repeats,
            "step_repeats": step_repeats,
            "densities_srigl": _densities(trainers["srigl"]),
        },
        "target_ratio": TARGET_RATIO,
        "steady_state": steady,
        "static_step_median_s": static_step,
        "single_step": per_method,
        "medians_s": {**{f"block {k}": v["median_s"] for k, v in blocks.items()}, **{
            k: v["median_s"] for k, v in steps.items()
        }},
    }
