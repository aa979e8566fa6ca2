"""Training-step cost of dynamic sparse training: SRigL / RigL / SET vs static sparse (same sparsity).

MLP 784 -> 1024 -> 1024 -> 10 (ReLU), batch 128, Adam, 90% sparsity (ERK) on both hidden kernels (the
classifier stays dense). Each variant is one jitted step `grads -> tx.update -> apply_updates` with the
params and optimizer state donated; the DST updaters use update_every = 100 and a T_end past the end of
the run, so they keep updating masks at their real frequency.

Two measurements, each side by side with alternating variants and medians over repeats:
  1. steady state: a sample is one block of 100 consecutive steps (99 optimizer steps + 1 mask-update
     step, dispatched back to back, blocked at the end); ratio = block time / static sparse block time.
  2. single step: one mask-update step vs one ordinary step (same program, the count is forced before
     each call; blocked every call).

The steady-state table also prints page faults per step (one extra block per variant): a step whose XLA
arena goes back to the kernel between executions faults it in again (see jaxsparse/cli/_cpu_runtime.py).

Run: `python -m benchmarks --only dst_step` (`--quick` for fewer repeats, `--tiny` for a toy MLP).
"""

import functools
import resource

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
# --quick: the same shape of problem at quarter width (a 1024-wide SRigL mask update alone takes seconds on CPU).
QUICK = {"in_features": 784, "hidden": (256, 256), "classes": 10, "batch": 128}
TINY = {"in_features": 64, "hidden": (64, 64), "classes": 10, "batch": 16}
SPARSITY = 0.9
UPDATE_EVERY = 100
LEARNING_RATE = 1e-3
TARGET_RATIO = 1.15
METHODS = ("srigl", "rigl", "set")
BASELINE = "static"


def _make_tx(method: str, sparse_leaves, update_every: int):
    inner = optax.adam(LEARNING_RATE)
    if method == "dense":
        return inner
    common = dict(sparsity=SPARSITY, key=jax.random.key(1), sparse_leaves=sparse_leaves)
    if method == "static":
        return dst.static_sparse(inner, **common)
    dynamic = dict(common, update_every=update_every, total_steps=10**9)  # T_end never reached here
    if method == "srigl":
        return dst.srigl(inner, **dynamic)
    if method == "rigl":
        return dst.rigl(inner, **dynamic)
    if method == "set":
        return dst.sparse_evolutionary(inner, **dynamic)
    raise ValueError(method)


class _Trainer:
    """Functional training state for one method; `block()` runs `n` steps and returns the last loss."""

    def __init__(self, method: str, size: dict, x, y, *, update_every: int = UPDATE_EVERY):
        model = MLP(size["in_features"], size["hidden"], size["classes"], rngs=nnx.Rngs(0))
        self.graphdef = nnx.graphdef(model)
        params = get_params(model)
        kernels = [path for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0] if np.ndim(leaf) == 2]
        last = kernels[-1]  # the classifier stays dense
        sparse_leaves = lambda path, leaf: np.ndim(leaf) == 2 and path != last
        self.tx = _make_tx(method, sparse_leaves, update_every)
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

    def block(self, n: int):
        loss = None
        for _ in range(n):
            self.params, self.opt_state, loss = self.step(self.params, self.opt_state, self.x, self.y)
        return loss

    def count(self) -> int:
        if isinstance(self.opt_state, dst.SparseState):
            return int(self.opt_state.count)
        return -1

    def step_at(self, count: int):
        """A zero-argument callable running one (donated) step from the current state with `count` set.

        Mask-update steps and ordinary steps reuse the one compiled program: only the scalar count differs.
        """

        def one_step():
            if isinstance(self.opt_state, dst.SparseState):  # a fresh host scalar: the count gets donated too
                self.opt_state = self.opt_state._replace(count=np.asarray(count, np.int32))
            return self.block(1)

        return one_step


def _densities(trainer: _Trainer) -> list:
    if not isinstance(trainer.opt_state, dst.SparseState):
        return []
    return [
        None if m is None else round(float(np.asarray(m).mean()), 4)
        for m in jax.tree.leaves(trainer.opt_state.masks, is_leaf=lambda v: v is None)
    ]


def _label(name: str) -> str:
    return {"dense": "dense adam (no masks)", BASELINE: "static_sparse (baseline)"}.get(name, name)


def run(*, quick: bool = False, tiny: bool = False) -> dict:
    size = TINY if tiny else QUICK if quick else FULL
    block_steps = UPDATE_EVERY  # one mask update per block
    repeats = 2 if tiny or quick else 9
    step_repeats = 3 if tiny or quick else 9
    methods = ("dense", BASELINE, *METHODS)
    # Full runs also time each DST updater with its mask updates pushed past the run (same program, the
    # lax.cond never fires), separating the cost of ordinary steps from that of the mask updates.
    no_update = () if quick or tiny else METHODS

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((size["batch"], size["in_features"])), jnp.float32)
    y = jnp.asarray(rng.integers(0, size["classes"], size["batch"]), jnp.int32)
    trainers = {m: _Trainer(m, size, x, y) for m in methods}
    trainers.update({f"{m} w/o mask updates": _Trainer(m, size, x, y, update_every=10**8) for m in no_update})
    sizes_text = " -> ".join(str(s) for s in (size["in_features"], *size["hidden"], size["classes"]))
    print(
        f"[{NAME}] MLP {sizes_text}, batch {size['batch']}, adam, sparsity {SPARSITY:.0%} (ERK, hidden kernels), "
        f"update_every {UPDATE_EVERY}; densities per leaf (bias, kernel, ...): {_densities(trainers['srigl'])}"
    )
    for t in trainers.values():  # compile (both lax.cond branches) and run one step
        jax.block_until_ready(t.block(1))
    for t in trainers.values():  # align counts to the period, so every block holds exactly one mask update
        jax.block_until_ready(t.block((-t.count()) % block_steps or block_steps))
    start_counts = {name: t.count() for name, t in trainers.items()}

    # 1. Steady state over whole blocks of 100 donated steps.
    variants = {name: functools.partial(t.block, block_steps) for name, t in trainers.items()}
    blocks = interleaved_medians(variants, repeats=repeats, inner=1, warmup=0)
    for m in METHODS:  # every timed block went through exactly one mask update
        updates = sum(1 for c in range(start_counts[m], trainers[m].count()) if c > 0 and c % UPDATE_EVERY == 0)
        assert updates == repeats, (m, updates, repeats)
    # Page faults per step over one more block of each variant, in the same rotation: a step whose XLA
    # arena is handed back to the kernel between executions faults it in again (see jaxsparse/cli/_cpu_runtime).
    faults = {}
    for name, t in trainers.items():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        jax.block_until_ready(t.block(block_steps))
        faults[name] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / block_steps
    base = blocks[BASELINE]["median_s"]
    print(f" steady state, {block_steps}-step blocks, 1 mask update in each ({repeats} alternating repeats, medians):")
    print(f"  {'variant':<30} {'ms/step':>9}  {'vs static':>9}  {'faults/step':>11}")
    steady = {}
    for name in trainers:
        per_step = blocks[name]["median_s"] / block_steps
        ratio = blocks[name]["median_s"] / base
        flag = ""
        if name in METHODS:
            flag = "   ok (target <= 1.15x)" if ratio <= TARGET_RATIO else f"   ABOVE target {TARGET_RATIO}x"
        print(f"  {_label(name):<30} {per_step * 1e3:9.3f}  {ratio:8.3f}x  {faults[name]:11.0f}{flag}")
        steady[name] = {
            "block_median_s": blocks[name]["median_s"],
            "step_median_s": per_step,
            "ratio_vs_static": ratio,
            "page_faults_per_step": faults[name],
        }

    # 2. One mask-update step vs one ordinary step (the count is forced before each call).
    mask_count, plain_count = 10 * UPDATE_EVERY, 10 * UPDATE_EVERY + 1
    single = {f"{BASELINE} ordinary step": trainers[BASELINE].step_at(plain_count)}
    for m in METHODS:
        single[f"{m} ordinary step"] = trainers[m].step_at(plain_count)
        single[f"{m} mask-update step"] = trainers[m].step_at(mask_count)
    steps = interleaved_medians(single, repeats=step_repeats, inner=1, warmup=1)
    static_step = steps[f"{BASELINE} ordinary step"]["median_s"]
    print(f" single steps ({step_repeats} alternating repeats, medians, blocked every call):")
    print(f"  {'static_sparse ordinary step':<30} {static_step * 1e3:9.3f} ms")
    per_method = {}
    for m in METHODS:
        plain = steps[f"{m} ordinary step"]["median_s"]
        mask = steps[f"{m} mask-update step"]["median_s"]
        amortized = (mask - plain) / UPDATE_EVERY / static_step
        print(
            f"  {m:<6} ordinary {plain * 1e3:9.3f} ms ({plain / static_step:5.2f}x static)   "
            f"mask update {mask * 1e3:10.3f} ms ({mask / static_step:6.1f}x static step; "
            f"+{amortized:.1%} of a static step when spread over {UPDATE_EVERY} steps)"
        )
        per_method[m] = {
            "ordinary_step_median_s": plain,
            "mask_update_step_median_s": mask,
            "mask_update_vs_static_step": mask / static_step,
            "amortized_mask_update_fraction": amortized,
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
        "medians_s": {
            **{f"block {name}": v["median_s"] for name, v in blocks.items()},
            **{name: v["median_s"] for name, v in steps.items()},
        },
    }
