"""Speed benchmarks, one command: `python -m benchmarks [--only NAME] [--quick] [--tiny] [--json PATH]`.

Each benchmark times its variants side by side in one process (compiled first, alternated over repeats,
medians) and prints ratios, so the numbers compare within a run on one machine:

* `dst_step`: training-step time of SRigL / RigL / SET vs static sparse training (same sparsity), mask
  updates included at their real frequency, and the cost of one mask-update step.
* `condensed_inference`: condensed (gather) vs dense inference of SRigL's 3072 -> 768 layer at 90%.
"""

BENCHMARKS = ("dst_step", "condensed_inference")

__all__ = ["BENCHMARKS"]
