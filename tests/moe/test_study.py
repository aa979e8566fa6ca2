import numpy as np
import pytest

from jaxsparse.moe import reap_study

TINY = dict(
    num_layers=1, num_experts=4, top_k=2, d_model=16, d_ff=16, num_heads=2, seq_len=16, batch_size=4,
    train_steps=6, calib_batches=1, eval_windows=6, max_bytes=200_000,
)  # fmt: skip


def test_reap_study_end_to_end_on_a_tiny_config():
    result = reap_study(**TINY)
    rows = result["rows"]
    methods = ("reap", "frequency", "ean_sum", "random", "hc_smoe", "m_smoe")
    assert [(r["method"], r["ratio"]) for r in rows] == [("original", 0.0)] + [
        (m, r) for r in (0.25, 0.5) for m in methods
    ]
    for r in rows:
        assert np.isfinite(r["loss"]) and 0 <= r["accuracy"] <= 1 and np.isclose(r["perplexity"], np.exp(r["loss"]))
    pruned = {(r["method"], r["ratio"]): r["experts_per_layer"] for r in rows}
    assert pruned[("reap", 0.25)] == [3] and pruned[("reap", 0.5)] == [2] and pruned[("hc_smoe", 0.5)] == [2]
    for name in ("zero_ratio_pruning_is_identity_zero_diff", "kept_expert_density_matches_budget",
                 "weighted_ean_sum_equals_reap_times_frequency"):  # fmt: skip
        assert result["checks"][name]["passed"], result["checks"][name]
    assert {"original", "reap", "hc_smoe"} <= set(result["subspace"])
    assert len(result["train_losses"]) == TINY["train_steps"]
    assert result["corpus"]["heldout_files"] >= 1 and result["calibration"]["tokens"] == 4 * 16


def test_reap_study_rejects_bad_arguments():
    for bad, match in (
        ({"ratios": (1.0,)}, "ratio"),
        ({"methods": ("reap", "magnitude")}, "unknown method"),
        ({"eval_windows": 0}, "eval_windows"),
        ({"calib_batches": 0}, "calib_batches"),
    ):
        with pytest.raises(ValueError, match=match):
            reap_study(**{**TINY, **bad})
