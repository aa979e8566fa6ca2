"""One invariant suite for every sparse updater (static, SET, RigL, SRigL) on a small params pytree.

Each updater runs a 13-step jitted trajectory (ΔT = 3, T_end = 10: mask updates at counts 3, 6, 9) that is
shared by the tests below. The optax.chain and sharding tests share one more compile per updater (the updater
inside a chain, on sharded params); drop-fraction 0 and one eager step add the rest. Gradient noise comes
from numpy, as jax.random compiles slowly on CPU.
"""

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxsparse import dst
from jaxsparse.masks import erk_sparsities, num_active

from ._common import (
    ALPHA,
    DYNAMIC,
    END_STEP,
    GAMMA_SAL,
    K0,
    LAYERS,
    MASK_UPDATE_STEPS,
    METHODS,
    N_STEPS,
    NNZ_TARGET,
    check_masks,
    fake_grads,
    kernel_masks,
    make_params,
    make_tx,
    n_prune_for,
    noise,
    sparse_names,
    srigl_reference,
    top_k,
    unstructured_reference,
)


@dataclasses.dataclass
class Run:
    method: str
    tx: Any
    step: Any  # un-jitted step (params, state, noise) -> (params, state, grads)
    jstep: Any
    params0: Any
    state0: Any
    history: list  # [(params, state, grads)] after each of the N_STEPS steps
    traces_after_run: int


def make_step(tx, counter):
    def step(params, state, step_noise):
        counter[0] += 1  # Python side effect: runs once per trace
        grads = fake_grads(params, step_noise)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, grads

    return step


def run_steps(step, params, state, n, start=0):
    history = []
    for i in range(start, start + n):
        params, state, grads = step(params, state, noise(i))
        history.append((params, state, grads))
    return history


@pytest.fixture(scope="module", params=METHODS)
def run(request):
    method = request.param
    tx = make_tx(method, jax.random.key(0))
    counter = [0]
    step = make_step(tx, counter)
    jstep = jax.jit(step)
    state0 = tx.init(make_params())
    params0 = dst.apply_initial_masks(make_params(), state0)
    history = run_steps(jstep, params0, state0, N_STEPS)
    jax.block_until_ready(history)
    return Run(method, tx, step, jstep, params0, state0, history, counter[0])


def states(run):
    return [run.state0] + [s for _, s, _ in run.history]


def assert_trees_equal(a, b):
    """Bitwise equality, None leaves included (structures must match)."""
    la, ta = jax.tree.flatten(a, is_leaf=lambda x: x is None)
    lb, tb = jax.tree.flatten(b, is_leaf=lambda x: x is None)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        if x is None or y is None:
            assert x is None and y is None
        else:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def adam_state(opt_state):
    inner = dst.find_sparse_state(opt_state).inner_state
    assert isinstance(inner[0], optax.ScaleByAdamState)
    return inner[0]


# ------------------------------------------------------------------------------------ density


def test_init_exact_density_and_masked_params(run):
    assert isinstance(run.state0, dst.SparseState)
    assert int(run.state0.count) == 0 and run.state0.count.dtype == jnp.int32
    check_masks(run.method, run.state0.masks, initial=True)
    for name, m in kernel_masks(run.state0.masks).items():
        p = np.asarray(run.params0[name]["kernel"])
        assert np.all(p[~m] == 0)
        np.testing.assert_array_equal(p[m], np.asarray(make_params()[name]["kernel"])[m])


def test_exact_density_after_every_update(run):
    for state in states(run)[1:]:
        check_masks(run.method, state.masks)


@pytest.mark.parametrize("run", ["srigl"], indirect=True)
def test_srigl_trajectory_ablates_neurons(run):
    """Guard that the shared SRigL trajectory exercises ablation (gamma_sal = 0.9), not just k' = k0."""
    summary = dst.mask_summary(run.history[-1][1].masks)
    assert any(s["n_ablated"] > 0 for s in summary.values())
    for name in sparse_names():
        s = summary[f"['{name}']['kernel']"]
        assert s["fan_ins"] == [NNZ_TARGET[name] // s["n_active"]]


# ------------------------------------------------------------------------------------ zeros


def test_pruned_weights_exactly_zero_after_every_step(run):
    for params, state, _ in run.history:
        for name, m in kernel_masks(state.masks).items():
            p = np.asarray(params[name]["kernel"])
            assert np.all(p[~m] == 0), name
    # Dense leaves are trained normally.
    assert not np.array_equal(np.asarray(run.history[-1][0]["head"]["kernel"]), make_params()["head"]["kernel"])


def test_inner_moments_exactly_zero_at_inactive_positions(run):
    for _, state, _ in run.history:
        adam = adam_state(state)
        for name, m in kernel_masks(state.masks).items():
            for moment in (adam.mu, adam.nu):
                assert np.all(np.asarray(moment[name]["kernel"])[~m] == 0), name


def test_mask_updates_only_at_multiples_of_update_every_before_end_step(run):
    changed = []
    prev = run.state0
    for i, (_, state, _) in enumerate(run.history):
        assert int(state.count) == i + 1
        before, after = kernel_masks(prev.masks), kernel_masks(state.masks)
        if any(not np.array_equal(before[n], after[n]) for n in before):
            changed.append(i)  # the count at the update call was i
        prev = state
    n_mask_steps = 0 if run.method == "static" else len(MASK_UPDATE_STEPS)
    if run.method == "static":
        assert changed == []
    else:
        assert set(changed) <= set(MASK_UPDATE_STEPS)
        assert {3, 6} <= set(changed)  # drop(3), drop(6) > 0 change every method's masks
    # The optimizer steps on every call (at a mask update, for the kept weights): the inner count never skips.
    del n_mask_steps
    assert int(adam_state(run.history[-1][1]).count) == N_STEPS


@pytest.mark.parametrize("run", DYNAMIC, indirect=True)
def test_mask_update_steps_zero_grown_weights_and_moments(run):
    """At a mask update: new and regrown weights exactly 0 with zero moments; kept weights take the Adam step
    of the masked gradient (first moment checked exactly: mu = b1 * mu_old + (1 - b1) * g)."""
    for i in MASK_UPDATE_STEPS:
        old_params, old_state = run.history[i - 1][:2]
        new_params, new_state, grads = run.history[i]
        assert int(old_state.count) == i
        drop = float(dst.cosine_drop_fraction(i, alpha=ALPHA, end_step=END_STEP))
        old_adam, new_adam = adam_state(old_state), adam_state(new_state)
        for name, old_m in kernel_masks(old_state.masks).items():
            new_m = kernel_masks(new_state.masks)[name]
            w_old, w_new = np.asarray(old_params[name]["kernel"]), np.asarray(new_params[name]["kernel"])
            g = np.asarray(grads[name]["kernel"])
            if run.method == "rigl":
                exp_mask, exp_grown = unstructured_reference(w_old, np.abs(g), old_m, drop)
            elif run.method == "srigl":
                exp_mask, exp_grown = srigl_reference(
                    w_old, g, old_m, drop, nnz_target=NNZ_TARGET[name], k0=K0[name], gamma_sal=GAMMA_SAL
                )
            else:  # SET: the kept set is deterministic (magnitude); growth is random among the rest
                nnz = int(old_m.sum())
                n_prune = n_prune_for(nnz, drop)
                keep = old_m & top_k(np.where(old_m, np.abs(w_old), -np.inf), nnz - n_prune)
                exp_grown = new_m & ~keep
                assert np.all(new_m[keep]) and int(exp_grown.sum()) == n_prune
                exp_mask = new_m
            np.testing.assert_array_equal(new_m, exp_mask, err_msg=f"{name} at step {i}")
            kept = exp_mask & ~exp_grown
            # Dropped, grown (new, or dropped-and-regrown) and inactive weights are exactly 0 after the step.
            assert np.all(w_new[~kept] == 0)
            assert np.all(w_new[exp_grown] == 0) and np.all(w_new[new_m & ~old_m] == 0)
            assert np.any(w_new[kept] != w_old[kept])  # kept weights did take the optimizer step
            mu_old = np.asarray(old_adam.mu[name]["kernel"])
            mu_new = np.asarray(new_adam.mu[name]["kernel"])
            np.testing.assert_allclose(mu_new, np.where(kept, 0.9 * mu_old + 0.1 * g, 0.0), rtol=1e-5, atol=1e-7)
            assert np.all(np.asarray(new_adam.nu[name]["kernel"])[~kept] == 0)
        # Dense leaves take their normal optimizer step at a mask update too.
        for name in LAYERS:
            assert not np.array_equal(np.asarray(new_params[name]["bias"]), np.asarray(old_params[name]["bias"]))
        assert not np.array_equal(np.asarray(new_params["head"]["kernel"]), np.asarray(old_params["head"]["kernel"]))


@pytest.mark.parametrize("method", DYNAMIC)
def test_drop_fraction_zero_leaves_masks_unchanged(method, key):
    tx = make_tx(method, key, drop_fraction=0.0, gamma_sal=0.0)
    step = jax.jit(make_step(tx, [0]))
    state0 = tx.init(make_params())
    params0 = dst.apply_initial_masks(make_params(), state0)
    init = kernel_masks(state0.masks)
    for params, state, _ in run_steps(step, params0, state0, END_STEP):  # covers updates at 3, 6, 9
        for name, m in kernel_masks(state.masks).items():
            np.testing.assert_array_equal(m, init[name])
            assert np.all(np.asarray(params[name]["kernel"])[~m] == 0)
        check_masks(method, state.masks, initial=True)  # SRigL: no ablation, k' = k0


# ------------------------------------------------------------------------ determinism and jit


def test_deterministic_given_key(run):
    state0 = run.tx.init(make_params())
    assert_trees_equal(state0.masks, run.state0.masks)
    np.testing.assert_array_equal(jax.random.key_data(state0.key), jax.random.key_data(run.state0.key))
    again = run_steps(run.jstep, dst.apply_initial_masks(make_params(), state0), state0, N_STEPS)
    for (p1, s1, _), (p2, s2, _) in zip(run.history, again, strict=True):
        assert_trees_equal(s1.masks, s2.masks)
        assert_trees_equal(p1, p2)


def test_different_keys_give_different_masks(run):
    other = make_tx(run.method, jax.random.key(1)).init(make_params())
    a, b = kernel_masks(run.state0.masks), kernel_masks(other.masks)
    assert all(not np.array_equal(a[n], b[n]) for n in a)


def test_jit_equals_no_jit(run):
    """A step run eagerly matches the jitted trajectory (count 3: a mask update; static: an optimizer step).

    Eager `lax.cond` compiles both branches at every call, so one eager step per updater keeps this fast.
    """
    params, state, _ = run.history[2]
    pe, se, _ = run.step(params, state, noise(3))
    pj, sj, _ = run.history[3]
    assert_trees_equal(sj.masks, se.masks)
    assert int(sj.count) == int(se.count) == 4
    close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    jax.tree.map(close, pj, pe)
    jax.tree.map(close, adam_state(sj).mu, adam_state(se).mu)
    jax.tree.map(close, adam_state(sj).nu, adam_state(se).nu)


def test_traced_once_across_mask_updates(run):
    assert run.traces_after_run == 1


# ---------------------------------------------------------------------------------- composition


@pytest.fixture(scope="module")
def chain_run(run):
    """The updater inside chain(clip_by_global_norm, updater), jitted once, on params sharded over 8 devices.

    `max_norm` is traced, so one compile serves a clip that never triggers (must reproduce the plain
    trajectory) and an active clip (|g| is ~50). Sharding: the output axis where it divides by 8.
    """
    mesh = Mesh(np.array(jax.devices()[:8]), ("x",))
    assert mesh.size == 8

    def spec(x):
        return P(*([None] * (x.ndim - 1)), "x") if x.ndim and x.shape[-1] % 8 == 0 else P()

    shard = lambda tree: jax.tree.map(lambda x: jax.device_put(x, NamedSharding(mesh, spec(x))), tree)

    traces = [0]

    def chained_step(params, state, step_noise, max_norm):
        traces[0] += 1
        chained = optax.chain(optax.clip_by_global_norm(max_norm), run.tx)
        updates, state = chained.update(fake_grads(params, step_noise), state, params)
        return optax.apply_updates(params, updates), state

    state0 = shard(optax.chain(optax.clip_by_global_norm(1.0), run.tx).init(shard(make_params())))
    params0 = shard(dst.apply_initial_masks(make_params(), state0))
    # Outputs keep the input shardings, so the second call does not recompile for new shardings.
    shardings = lambda tree: jax.tree.map(lambda x: x.sharding, tree)
    chained_step = jax.jit(chained_step, out_shardings=(shardings(params0), shardings(state0)))

    def trajectory(params, state, max_norm):
        out = []
        for i in range(7):  # mask updates at counts 3 and 6
            params, state = chained_step(params, state, shard(noise(i)), jnp.float32(max_norm))
            out.append((params, state))
        return out

    return {
        "state0": state0,
        "params0": params0,
        "noop": trajectory(params0, state0, 1e9),
        "clipped": trajectory(params0, state0, 0.5),
        "traces": traces[0],
    }


def test_inside_optax_chain(run, chain_run):
    """chain(clip_by_global_norm, updater): params flow through, find_sparse_state finds the state."""
    sparse_state = dst.find_sparse_state(chain_run["state0"])
    assert isinstance(sparse_state, dst.SparseState)
    assert_trees_equal(sparse_state.masks, run.state0.masks)
    assert_trees_equal(chain_run["params0"], run.params0)
    # A clip that never triggers reproduces the plain trajectory.
    for (params, state), (ref_params, ref_state, _) in zip(chain_run["noop"], run.history, strict=False):
        assert_trees_equal(dst.find_sparse_state(state).masks, ref_state.masks)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), params, ref_params)
    # An active clip changes the trajectory; every invariant still holds.
    for i, (params, state) in enumerate(chain_run["clipped"]):
        found = dst.find_sparse_state(state)
        assert int(found.count) == i + 1
        check_masks(run.method, found.masks)
        for name, m in kernel_masks(found.masks).items():
            assert np.all(np.asarray(params[name]["kernel"])[~m] == 0)
    last = np.asarray(chain_run["clipped"][-1][0]["head"]["kernel"])
    assert not np.allclose(last, np.asarray(run.history[6][0]["head"]["kernel"]))


def test_find_sparse_state_requires_exactly_one(key):
    tx = make_tx("rigl", key)
    with pytest.raises(ValueError, match="opt_state"):
        dst.find_sparse_state(optax.adam(1e-3).init(make_params()))
    with pytest.raises(ValueError, match="opt_state"):
        dst.find_sparse_state(optax.chain(tx, tx).init(make_params()))


def test_orbax_checkpoint_roundtrip(run, tmp_path):
    state = run.history[MASK_UPDATE_STEPS[0]][1]  # just after a mask update
    checkpointer = ocp.StandardCheckpointer()
    try:
        checkpointer.save(tmp_path / "state", state)
        checkpointer.wait_until_finished()
        restored = checkpointer.restore(tmp_path / "state", state)
    finally:
        checkpointer.close()
    assert isinstance(restored, dst.SparseState)
    assert int(restored.count) == int(state.count) and restored.count.dtype == jnp.int32
    assert_trees_equal(restored.masks, state.masks)  # dense leaves stay None
    assert jnp.issubdtype(restored.key.dtype, jax.dtypes.prng_key)
    np.testing.assert_array_equal(jax.random.key_data(restored.key), jax.random.key_data(state.key))
    assert_trees_equal(restored.inner_state, state.inner_state)


def test_sharded_inputs_match_unsharded(run, chain_run):
    """A jitted step on params sharded over a Mesh of 8 devices gives the unsharded trajectory."""
    params0 = chain_run["params0"]
    assert params0["l0"]["kernel"].sharding.shard_shape((16, 32)) == (16, 4)
    assert params0["conv"]["kernel"].sharding.shard_shape((3, 3, 4, 8)) == (3, 3, 4, 1)
    for (ps, ss), (pu, su, _) in zip(chain_run["noop"], run.history, strict=False):
        assert_trees_equal(dst.find_sparse_state(ss).masks, su.masks)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), ps, pu)
        assert len(ps["l0"]["kernel"].sharding.device_set) == 8
    assert chain_run["traces"] == 1  # 14 sharded calls across 4 mask updates, traced once


# ------------------------------------------------------------------------------- sparsity plans


@pytest.mark.parametrize("method", METHODS)
def test_number_sparsity_with_sparse_leaves_filter(method, key):
    only_body = lambda path, leaf: np.ndim(leaf) >= 2 and path[0].key != "head"
    tx = make_tx(method, key, sparsity=0.8, distribution="uniform", sparse_leaves=only_body)
    masks = tx.init(make_params()).masks
    assert masks["head"]["kernel"] is None and all(masks[n]["bias"] is None for n in LAYERS)
    expected = {"l0": 102, "l1": 153, "conv": 57}  # floor(512 * .2), floor(768 * .2), floor(288 * .2)
    for name, nnz in expected.items():
        m = np.asarray(masks[name]["kernel"])
        if method == "srigl":
            fan = m.reshape(-1, m.shape[-1]).sum(axis=0)
            np.testing.assert_array_equal(fan, nnz // m.shape[-1])
        else:
            assert int(m.sum()) == nnz


@pytest.mark.parametrize("method", ["rigl", "srigl"])
def test_default_erk_on_default_sparse_leaves(method, key):
    params = make_params()
    # Sorted dict order: conv, head, l0, l1 -> the first and last ndim >= 2 leaves (conv, l1) stay dense.
    tx = make_tx(method, key, sparsity=0.8)
    masks = tx.init(params).masks
    assert masks["conv"]["kernel"] is None and masks["l1"]["kernel"] is None
    sparsities = erk_sparsities(params, 0.8, filter_fn=dst.default_sparse_leaves(params))
    for name in ("head", "l0"):
        m = np.asarray(masks[name]["kernel"])
        nnz = num_active(m.size, sparsities[name]["kernel"])
        if method == "srigl":
            np.testing.assert_array_equal(m.reshape(-1, m.shape[-1]).sum(axis=0), nnz // m.shape[-1])
        else:
            assert int(m.sum()) == nnz


def test_static_sparse_masks_never_change_and_updates_match_inner(key):
    """Static sparse = inner optimizer on masked gradients, projected onto the mask."""
    tx = make_tx("static", key, inner=optax.sgd(0.1))
    state = tx.init(make_params())
    params = dst.apply_initial_masks(make_params(), state)
    grads = fake_grads(params, noise(0))
    updates, new_state = tx.update(grads, state, params)
    assert_trees_equal(new_state.masks, state.masks)
    for name in LAYERS:
        m = state.masks[name]["kernel"]
        g = np.asarray(grads[name]["kernel"])
        expected = -0.1 * g if m is None else np.where(np.asarray(m), -0.1 * g, 0.0)
        np.testing.assert_allclose(np.asarray(updates[name]["kernel"]), expected, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(updates[name]["bias"]), -0.1 * np.asarray(grads[name]["bias"]), rtol=1e-6)


def test_sgd_momentum_trace_zeroed_at_mask_update(key):
    """Moment zeroing is not Adam-specific: the momentum trace of SGD is masked the same way (RigL; the
    moment masking code is shared by every method)."""
    params = {"w": jnp.asarray(np.random.default_rng(0).standard_normal((6, 5)), jnp.float32)}
    tx = dst.rigl(optax.sgd(0.1, 0.9), sparsity={"w": 0.5}, key=key, update_every=2, end_step=10, drop_fraction=0.5)
    state = tx.init(params)
    params = dst.apply_initial_masks(params, state)

    @jax.jit
    def step(params, state, i):
        grads = {"w": params["w"] - 1.0 + 0.1 * jnp.sin(i + jnp.arange(30.0).reshape(6, 5))}
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    old_mask = np.asarray(state.masks["w"])
    for i in range(3):  # counts 0, 1: momentum steps; count 2: mask update
        params, state = step(params, state, jnp.float32(i))
    mask = np.asarray(state.masks["w"])
    trace = np.asarray(state.inner_state[0].trace["w"])
    assert not np.array_equal(mask, old_mask)
    assert np.all(trace[~mask] == 0) and np.all(trace[mask & ~old_mask] == 0)
    assert np.any(trace[mask & old_mask] != 0)  # kept weights keep their momentum
    assert np.all(np.asarray(params["w"])[~mask] == 0) and np.all(np.asarray(params["w"])[mask & ~old_mask] == 0)


@pytest.mark.parametrize("method", DYNAMIC)
def test_apply_initial_masks_rescale(method, key):
    tx = make_tx(method, key)
    state = tx.init(make_params())
    out = dst.apply_initial_masks(make_params(), state, rescale=True)
    for name, m in kernel_masks(state.masks).items():
        n_out = m.shape[-1]
        fan_dense = m.size // n_out
        fan = m.reshape(fan_dense, n_out).sum(axis=0)
        scale = np.sqrt(fan_dense / np.maximum(fan, 1))
        w = np.asarray(make_params()[name]["kernel"]).reshape(fan_dense, n_out)
        expected = np.where(m.reshape(fan_dense, n_out), w * scale, 0.0).reshape(m.shape)
        np.testing.assert_allclose(np.asarray(out[name]["kernel"]), expected, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(out["head"]["kernel"]), np.asarray(make_params()["head"]["kernel"]))
