"""Knowledge distillation and its effect on class-wise bias and group fairness (arXiv 2410.08407).

* `kd_loss`, `soft_kl`: the KD loss, alpha on the hard-label term, optional T**2 scaling.
* `train_teacher_and_students`: teacher, non-distilled and distilled MLP students per seed and temperature.
* `per_class_accuracy`, `mcnemar_test`, `classwise_seed_test`, `benjamini_hochberg`, `class_bias_report`:
  class-wise bias statistics (#TC / #SC counts).
* `kd_bias_study`: the end-to-end study on digits (class bias) and breast cancer (DPD / EOD).
"""

from ._loss import kd_loss as kd_loss
from ._loss import soft_kl as soft_kl
from ._report import class_bias_report as class_bias_report
from ._stats import McNemarResult as McNemarResult
from ._stats import benjamini_hochberg as benjamini_hochberg
from ._stats import classwise_seed_test as classwise_seed_test
from ._stats import mcnemar_test as mcnemar_test
from ._stats import per_class_accuracy as per_class_accuracy
from ._study import FAIRNESS_DATASETS as FAIRNESS_DATASETS
from ._study import SENSITIVE_FEATURE as SENSITIVE_FEATURE
from ._study import kd_bias_study as kd_bias_study
from ._train import train_teacher_and_students as train_teacher_and_students

__all__ = [
    "FAIRNESS_DATASETS",
    "SENSITIVE_FEATURE",
    "McNemarResult",
    "benjamini_hochberg",
    "class_bias_report",
    "classwise_seed_test",
    "kd_bias_study",
    "kd_loss",
    "mcnemar_test",
    "per_class_accuracy",
    "soft_kl",
    "train_teacher_and_students",
]
