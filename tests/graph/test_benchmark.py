"""benchmarks/meta_gcn_step.py runs in-process at tiny size and returns well-formed timings (no time limits)."""

from benchmarks import meta_gcn_step


def test_meta_gcn_step_benchmark_tiny():
    result = meta_gcn_step.run(quick=True, tiny=True)
    assert result["sizes"]["nodes"] == 64 and result["sizes"]["undirected_edges"] > 0
    labels = ("plain GCN step", "Meta-GCN step")  # tiny leaves out the full-graph meta variants
    assert set(result["steps"]) == {f"{label}, {form}" for label in labels for form in ("dense", "edge list")}
    for timing in result["steps"].values():
        assert timing["median_s"] > 0 and timing["min_s"] <= timing["median_s"]
    assert set(result["ratios"]) == {
        "meta_vs_plain_dense",
        "meta_vs_plain_edge_list",
        "edge_list_vs_dense_plain",
        "edge_list_vs_dense_meta",
    }
    assert all(r > 0 for r in result["ratios"].values())
