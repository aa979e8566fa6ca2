"""benchmarks/weight_matching.py runs in-process at tiny size and reports both timings side by side."""

from benchmarks.weight_matching import plain_weight_matching, run


def test_weight_matching_benchmark_tiny():
    result = run(quick=True, tiny=True)
    assert result["width"] == 1 and result["num_params"] > 100_000
    assert result["library_median_s"] > 0 and result["plain_scipy_median_s"] > 0
    assert set(result["timings"]) == {"jaxsparse.permute", "plain scipy loop"}
    assert result["same_permutation"] is True  # the library and upstream's loop agree on this spec
    assert abs(result["objective"] - result["objective_plain"]) <= 1e-9 * abs(result["objective"])
    assert callable(plain_weight_matching)
