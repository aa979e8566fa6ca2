"""Speed benchmarks, one command: `python -m benchmarks [--only NAME] [--quick] [--tiny] [--json PATH]`.

Each benchmark times its variants side by side in one process (compiled first, alternated over repeats,
medians) and prints ratios, so the numbers compare within a run on one machine:

* `dst_step`: training-step time of SRigL / RigL / SET vs static sparse training (same sparsity), mask
  updates included at their real frequency, and the cost of one mask-update step.
* `condensed_inference`: condensed (gather) vs dense inference of SRigL's 3072 -> 768 layer at 90%.
* `icb`: one input-compression bound for N = 2000 on CPU, native closed-form kernel vs neural-tangents' kernel_fn.
* `meta_gcn_step`: Meta-GCN step vs plain GCN step, dense adjacency vs edge-list segment_sum.
* `moe_observer`: the MoE observer (forward + REAP statistics) vs a plain MoE forward and vs an official-style
  observer that runs every expert on every token.
* `weight_matching`: Git Re-Basin weight matching of two ResNet-20 x4 on CPU vs upstream's plain scipy loop.
* `xmc_scale`: training steps of a fixed fan-in head with 1,000,000 labels (d = 768, fan-in 64) on CPU, and
  its exact memory next to the dense head's.
"""

BENCHMARKS = (
    "dst_step",
    "condensed_inference",
    "xmc_scale",
    "kernels",
    "icb",
    "meta_gcn_step",
    "weight_matching",
    "moe_observer",
)

__all__ = ["BENCHMARKS"]
