"""Group and individual fairness metrics with fairlearn / AIF360 semantics, reweighing and group thresholds.

* `group_counts` (jittable, static `num_groups`) -> `GroupCounts`; every group metric is a ratio of these
  integer counts, so batches combine exactly by summing them.
* fairlearn-compatible (unsigned): `demographic_parity_difference`/`_ratio`, `equalized_odds_difference`/
  `_ratio` (method "between_groups"/"to_overall", agg "worst_case"/"mean"), `selection_rate`.
* AIF360-compatible (signed, unprivileged vs `privileged_group`): `statistical_parity_difference`,
  `equal_opportunity_difference`, `average_odds_difference`, `predictive_parity_difference`,
  `disparate_impact`.
* `calibration_by_group`; individual: `consistency_score`, `lipschitz_violation`,
  `generalized_entropy_index`, `generalized_entropy_error`.
* Mitigation: `reweighing_weights`, `fit_group_thresholds`, `apply_group_thresholds`.
"""

from ._counts import GroupCounts as GroupCounts
from ._counts import group_counts as group_counts
from ._counts import selection_rate as selection_rate
from ._group import CalibrationCounts as CalibrationCounts
from ._group import average_odds_difference as average_odds_difference
from ._group import calibration_by_group as calibration_by_group
from ._group import demographic_parity_difference as demographic_parity_difference
from ._group import demographic_parity_ratio as demographic_parity_ratio
from ._group import disparate_impact as disparate_impact
from ._group import equal_opportunity_difference as equal_opportunity_difference
from ._group import equalized_odds_difference as equalized_odds_difference
from ._group import equalized_odds_ratio as equalized_odds_ratio
from ._group import predictive_parity_difference as predictive_parity_difference
from ._group import statistical_parity_difference as statistical_parity_difference
from ._individual import consistency_score as consistency_score
from ._individual import generalized_entropy_error as generalized_entropy_error
from ._individual import generalized_entropy_index as generalized_entropy_index
from ._individual import lipschitz_violation as lipschitz_violation
from ._mitigation import GroupThresholds as GroupThresholds
from ._mitigation import apply_group_thresholds as apply_group_thresholds
from ._mitigation import fit_group_thresholds as fit_group_thresholds
from ._mitigation import reweighing_weights as reweighing_weights

__all__ = [
    "CalibrationCounts",
    "GroupCounts",
    "GroupThresholds",
    "apply_group_thresholds",
    "average_odds_difference",
    "calibration_by_group",
    "consistency_score",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "disparate_impact",
    "equal_opportunity_difference",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "fit_group_thresholds",
    "generalized_entropy_error",
    "generalized_entropy_index",
    "group_counts",
    "lipschitz_violation",
    "predictive_parity_difference",
    "reweighing_weights",
    "selection_rate",
    "statistical_parity_difference",
]
