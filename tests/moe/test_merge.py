"""HC-SMoE and M-SMoE merging: identities, hand-computed weighted averages, clustering vs scikit-learn, alignment."""

import dataclasses

import numpy as np
import pytest
from sklearn.cluster import AgglomerativeClustering

from jaxsparse.moe import ExpertStats, MoEParams, moe_forward
from jaxsparse.moe._merge import (
    hc_smoe_clusters,
    m_smoe_clusters,
    m_smoe_dominant_experts,
    merge_clusters,
    merge_hc_smoe,
    merge_m_smoe,
)

E, D, F = 6, 8, 5


def _np_layer_stats(params, x, top_k):
    """The statistics merging reads, computed in numpy (float64) with every expert run on every token."""
    p = {k: np.asarray(getattr(params, k), np.float64) for k in ("router", "w_gate", "w_up", "w_down")}
    logits = x @ p["router"]
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    h = np.einsum("td,edf->tef", x, p["w_gate"])
    outs = np.einsum("tef,efd->ted", h / (1 + np.exp(-h)) * np.einsum("td,edf->tef", x, p["w_up"]), p["w_down"])
    routed = np.zeros((x.shape[0], E), bool)
    for t in range(x.shape[0]):
        routed[t, np.argsort(-probs[t], kind="stable")[:top_k]] = True
    zeros = np.zeros(E)
    return ExpertStats(
        n_tokens=np.asarray(x.shape[0]),
        tokens=routed.sum(0),
        gate_sum=zeros,
        ean_sum=zeros,
        weighted_ean_sum=zeros,
        max_act=zeros,
        output_sum=np.einsum("te,ted->ed", routed, outs),
        logit_sum=logits.sum(0),
        logit_outer=logits.T @ logits,
        dense_output_sum=outs.sum(0),
    )


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(0)
    params = MoEParams(
        router=(rng.standard_normal((D, E)) * 3.0).astype(np.float32),  # peaky routing: unequal frequencies
        w_gate=(rng.standard_normal((E, D, F)) / D**0.5).astype(np.float32),
        w_up=(rng.standard_normal((E, D, F)) / D**0.5).astype(np.float32),
        w_down=(rng.standard_normal((E, F, D)) / F**0.5).astype(np.float32),
    )
    x = rng.standard_normal((64, D)).astype(np.float32)
    return params, x, _np_layer_stats(params, x.astype(np.float64), 2)


def _stats(tokens, output_mean=None, logit_outer=None, d=D):
    """Hand-made statistics (numpy only: no device work)."""
    tokens = np.asarray(tokens)
    e = tokens.size
    out = np.zeros((e, d)) if output_mean is None else np.asarray(output_mean, np.float64)
    zeros = np.zeros(e, np.float32)
    return ExpertStats(
        n_tokens=np.asarray(int(tokens.sum())),
        tokens=tokens.astype(np.int32),
        gate_sum=zeros,
        ean_sum=zeros,
        weighted_ean_sum=zeros,
        max_act=zeros,
        output_sum=(out * tokens[:, None]).astype(np.float32),
        logit_sum=zeros,
        logit_outer=np.asarray(np.eye(e) if logit_outer is None else logit_outer, np.float32),
    )


def _np_params(seed, e=3):
    rng = np.random.default_rng(seed)
    return MoEParams(
        router=rng.standard_normal((D, e)).astype(np.float32),
        w_gate=(rng.standard_normal((e, D, F)) / D**0.5).astype(np.float32),
        w_up=(rng.standard_normal((e, D, F)) / D**0.5).astype(np.float32),
        w_down=(rng.standard_normal((e, F, D)) / F**0.5).astype(np.float32),
    )


def _assert_params_equal(a: MoEParams, b: MoEParams):
    for f in ("router", "w_gate", "w_up", "w_down"):
        np.testing.assert_array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)), err_msg=f)


@pytest.mark.parametrize("layout", ["compact", "replicated"])
def test_no_merging_is_the_identity(layer, layout):
    params, _, stats = layer
    _assert_params_equal(merge_hc_smoe(params, stats, E, layout=layout), params)
    _assert_params_equal(merge_m_smoe(params, stats, E, layout=layout), params)


def test_hc_smoe_frequency_weighted_average_by_hand():
    params = _np_params(3)
    # mean outputs: experts 0 and 2 are close, 1 is far -> clusters {0, 2}, {1}
    means = np.zeros((3, D))
    means[1, 0] = 10.0
    means[2, 1] = 0.5
    stats = _stats([3, 5, 1], means)
    np.testing.assert_array_equal(hc_smoe_clusters(stats, 2), [0, 1, 0])
    merged = merge_hc_smoe(params, stats, 2)
    assert merged.num_experts == 2
    w = {f: np.asarray(getattr(params, f), np.float64) for f in ("w_gate", "w_up", "w_down")}
    for f, arr in w.items():
        np.testing.assert_allclose(np.asarray(getattr(merged, f))[0], (3 * arr[0] + 1 * arr[2]) / 4, rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(getattr(merged, f))[1], np.asarray(getattr(params, f))[1])
    router = np.asarray(params.router)
    np.testing.assert_array_equal(np.asarray(merged.router), router[:, [0, 1]])  # expert 0: the most frequent of {0,2}
    rep = merge_hc_smoe(params, stats, 2, layout="replicated")
    assert rep.num_experts == 3
    np.testing.assert_array_equal(np.asarray(rep.router), router)
    for f in w:
        got = np.asarray(getattr(rep, f))
        np.testing.assert_array_equal(got[0], got[2])
        np.testing.assert_array_equal(got[0], np.asarray(getattr(merged, f))[0])
    # a cluster of never-routed experts is averaged (the repo's eps denominator would zero it)
    zero = merge_hc_smoe(params, _stats([0, 5, 0], means), 2)
    np.testing.assert_allclose(np.asarray(zero.w_up)[0], (w["w_up"][0] + w["w_up"][2]) / 2, rtol=1e-6)


def test_replicated_merge_sums_the_gates_of_cluster_members(layer):
    params, x, stats = layer
    labels = hc_smoe_clusters(stats, 3)
    rep = merge_hc_smoe(params, stats, 3, layout="replicated")
    compact = merge_hc_smoe(params, stats, 3)
    y = np.asarray(moe_forward(rep, x, top_k=2, renormalize=True))
    # by hand: route with the unchanged E-way router; the merged expert of each pick, weighted by the pick's gate
    logits = np.asarray(x, np.float64) @ np.asarray(params.router, np.float64)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    for t in range(8):
        top = np.argsort(-probs[t], kind="stable")[:2]
        gates = probs[t, top] / probs[t, top].sum()
        want = np.zeros(D)
        for g, e in zip(gates, top, strict=True):
            c = labels[e]
            xt = np.asarray(x[t], np.float64)
            h = xt @ np.asarray(compact.w_gate[c], np.float64)
            u = xt @ np.asarray(compact.w_up[c], np.float64)
            want += g * ((h / (1 + np.exp(-h)) * u) @ np.asarray(compact.w_down[c], np.float64))
        np.testing.assert_allclose(y[t], want, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("linkage", ["average", "single", "complete"])
def test_clustering_matches_scikit_learn(linkage):
    rng = np.random.default_rng(7)
    means = rng.standard_normal((12, D)) * rng.uniform(0.2, 3.0, size=(12, 1))
    stats = _stats(np.arange(1, 13), means)
    for k in (1, 3, 5, 12):
        ours = hc_smoe_clusters(stats, k, linkage=linkage, signature="routed")
        ref = AgglomerativeClustering(n_clusters=k, linkage=linkage).fit_predict(
            np.asarray(stats.output_sum) / np.arange(1, 13)[:, None]
        )
        pairs_ours = ours[:, None] == ours[None, :]
        np.testing.assert_array_equal(pairs_ours, ref[:, None] == ref[None, :])
        assert ours[0] == 0 and len(set(ours.tolist())) == k


def test_hc_smoe_signature_uses_all_tokens_when_observed(layer):
    _, _, stats = layer
    n = int(stats.n_tokens)
    want = AgglomerativeClustering(n_clusters=3, linkage="average").fit_predict(np.asarray(stats.dense_output_sum) / n)
    got = hc_smoe_clusters(stats, 3)
    np.testing.assert_array_equal(got[:, None] == got[None, :], want[:, None] == want[:, None].T)
    routed = dataclasses.replace(stats, dense_output_sum=None)
    with pytest.raises(ValueError, match="dense_outputs=True"):
        hc_smoe_clusters(routed, 3, signature="all_tokens")
    assert hc_smoe_clusters(routed, 3).shape == (E,)


def test_m_smoe_grouping_by_router_logit_similarity():
    # logit columns over 3 tokens: expert 2 ~ expert 0, expert 3 ~ expert 1
    cols = np.array([[1.0, 0, 0], [0, 1, 0], [0.9, 0.1, 0], [0.2, 1, 0.1]])
    stats = _stats([9, 7, 2, 1], logit_outer=cols @ cols.T)
    labels, dominant = m_smoe_clusters(stats, 2)
    np.testing.assert_array_equal(dominant, [0, 1])
    np.testing.assert_array_equal(labels, [0, 1, 0, 1])


def test_m_smoe_neuron_alignment_recovers_a_permuted_copy():
    base = _np_params(5)
    perm = np.array([3, 0, 4, 1, 2])
    g, u, dn = (np.array(a) for a in (base.w_gate, base.w_up, base.w_down))
    g[1], u[1], dn[1] = g[0][:, perm], u[0][:, perm], dn[0][perm, :]
    params = MoEParams(router=base.router, w_gate=g, w_up=u, w_down=dn)
    x = np.random.default_rng(6).standard_normal((4, D))

    def swiglu(e):
        h = x @ g[e]
        return (h / (1 + np.exp(-h)) * (x @ u[e])) @ dn[e]

    np.testing.assert_allclose(swiglu(1), swiglu(0), rtol=1e-5, atol=1e-6)  # expert 1 computes expert 0's function
    cols = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    stats = _stats([6, 2, 4], logit_outer=cols @ cols.T)
    merged = merge_m_smoe(params, stats, 2)
    np.testing.assert_array_equal(np.asarray(merged.router), np.asarray(params.router)[:, [0, 2]])
    for f in ("w_gate", "w_up", "w_down"):
        np.testing.assert_allclose(
            np.asarray(getattr(merged, f))[0], np.asarray(getattr(params, f))[0], rtol=1e-6, atol=1e-7
        )
        np.testing.assert_array_equal(np.asarray(getattr(merged, f))[1], np.asarray(getattr(params, f))[2])
    unaligned = merge_m_smoe(params, stats, 2, align=False)
    assert not np.allclose(np.asarray(unaligned.w_gate)[0], g[0], atol=1e-3)
    np.testing.assert_allclose(
        np.asarray(unaligned.w_gate)[0], (6 * g[0].astype(np.float64) + 2 * g[1]) / 8, rtol=1e-6, atol=1e-8
    )


def test_m_smoe_global_dominant_experts_by_hand():
    s0 = _stats([10, 1, 1, 0])
    s1 = _stats([5, 4, 3, 2])
    dom = m_smoe_dominant_experts([s0, s1], 2)
    np.testing.assert_array_equal(dom[0], [0])
    np.testing.assert_array_equal(dom[1], [0, 1, 2])
    params = _np_params(8, e=4)
    merged = merge_m_smoe(params, s1, dominant=dom[1])
    assert merged.num_experts == 3


def test_merged_layers_run_in_moe_forward(layer):
    params, x, stats = layer
    for merged in (merge_hc_smoe(params, stats, 3), merge_m_smoe(params, stats, 3)):
        assert merged.num_experts == 3 and merged.w_down.shape == (3, F, D)
        y = moe_forward(merged, x, top_k=2, renormalize=True)
        assert y.shape == x.shape and bool(np.all(np.isfinite(np.asarray(y))))
    # deterministic
    _assert_params_equal(merge_m_smoe(params, stats, 3), merge_m_smoe(params, stats, 3))
    _assert_params_equal(merge_hc_smoe(params, stats, 3), merge_hc_smoe(params, stats, 3))


def test_bad_input_raises(layer):
    params, _, stats = layer
    with pytest.raises(ValueError, match=r"num_keep must be <= E=6"):
        merge_hc_smoe(params, stats, 7)
    with pytest.raises(ValueError, match="num_keep must be >= 1"):
        merge_m_smoe(params, stats, 0)
    with pytest.raises(ValueError, match="linkage must be one of"):
        merge_hc_smoe(params, stats, 3, linkage="ward")
    with pytest.raises(ValueError, match="layout must be one of"):
        merge_hc_smoe(params, stats, 3, layout="dense")
    with pytest.raises(ValueError, match="stats describe 4 experts but params hold 6"):
        merge_hc_smoe(params, _stats([1, 2, 3, 4]), 3)
    with pytest.raises(TypeError, match="stats must be an ExpertStats"):
        merge_m_smoe(params, {"tokens": 1}, 3)
    with pytest.raises(ValueError, match="dominant must be strictly increasing"):
        merge_m_smoe(params, stats, dominant=np.array([3, 1]))
    with pytest.raises(ValueError, match="labels must use every cluster id"):
        merge_clusters(params, np.array([0, 0, 2, 2, 0, 0]), np.ones(E))
    with pytest.raises(ValueError, match="weights must be"):
        merge_clusters(params, np.zeros(E, int), -np.ones(E))
