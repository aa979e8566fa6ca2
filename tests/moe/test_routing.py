import jax.numpy as jnp
import numpy as np
import pytest

from jaxsparse.moe import route

from ._reference import np_route


@pytest.mark.parametrize("renormalize", [True, False])
def test_route_matches_numpy(renormalize):
    logits = np.random.default_rng(0).normal(size=(12, 6)) * 2
    idx, gates, probs = route(jnp.asarray(logits, jnp.float32), top_k=2, renormalize=renormalize)
    ref_idx, ref_gates, ref_probs = np_route(logits, 2, renormalize)
    np.testing.assert_array_equal(np.asarray(idx), ref_idx)
    np.testing.assert_allclose(np.asarray(gates), ref_gates, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(probs), ref_probs, rtol=1e-6, atol=1e-7)
    assert idx.dtype == jnp.int32 and gates.dtype == jnp.float32
    sums = np.asarray(gates).sum(-1)
    if renormalize:
        np.testing.assert_allclose(sums, 1.0, rtol=1e-6)
    else:
        assert np.all(sums < 1.0)


def test_route_ties_go_to_lower_expert_id():
    logits = jnp.asarray([[1.0, 3.0, 3.0, 3.0], [0.0, 0.0, 0.0, 0.0]])
    idx, gates, _ = route(logits, top_k=2, renormalize=True)
    np.testing.assert_array_equal(np.asarray(idx), [[1, 2], [0, 1]])
    np.testing.assert_allclose(np.asarray(gates), 0.5, rtol=1e-7)


def test_route_computes_in_float32_from_bfloat16():
    logits = jnp.asarray([[0.5, -1.0, 2.0]], jnp.bfloat16)
    _, gates, probs = route(logits, top_k=1, renormalize=False)
    assert gates.dtype == jnp.float32 and probs.dtype == jnp.float32


def test_route_rejects_bad_input():
    logits = jnp.zeros((3, 4))
    with pytest.raises(ValueError, match="top_k"):
        route(logits, top_k=5, renormalize=True)
    with pytest.raises(ValueError, match="top_k"):
        route(logits, top_k=0, renormalize=True)
    with pytest.raises(TypeError, match="top_k"):
        route(logits, top_k=2.0, renormalize=True)
    with pytest.raises(ValueError, match="logits"):
        route(jnp.zeros((3, 4, 2)), top_k=1, renormalize=True)
    with pytest.raises(TypeError, match="renormalize"):
        route(logits, top_k=1, renormalize=1)
