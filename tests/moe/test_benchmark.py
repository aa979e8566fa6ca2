from benchmarks import moe_observer


def test_moe_observer_benchmark_tiny_structure():
    result = moe_observer.run(quick=True, tiny=True)
    for key in (
        "plain_forward_median_s",
        "observer_median_s",
        "official_observer_median_s",
        "ragged_dot_forward_median_s",
    ):
        assert result[key] > 0
    assert result["observer_overhead"] > 0 and result["target"] == 1.3
    assert set(result["timings"]) == {
        "plain forward",
        "jaxsparse observer",
        "official-style observer",
        "ragged_dot forward",
    }
    assert result["shape"]["experts"] == 4
