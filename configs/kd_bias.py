"""Config of the `kd_bias` reproduction: class-wise bias and group fairness of distilled students."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class KDBiasConfig:
    temperatures: tuple[float, ...] = (1, 2, 4, 8, 10)
    seeds: tuple[int, ...] = tuple(range(10))  # more seeds, more power for the per-class tests
    steps: int = 3000
    teacher_hidden: tuple[int, ...] = (256, 256)
    student_hidden: tuple[int, ...] = (16,)
    alpha: float = 0.5
    q: float = 0.05
    test: str = "welch"
    batch_size: int = 64
    learning_rate: float = 1e-3
    scale_by_t2: bool = True
    fairness_dataset: str | None = "breast_cancer"

    def __post_init__(self):
        if not self.temperatures or min(self.temperatures) <= 0:
            raise ValueError(f"temperatures must be non-empty and positive, got {self.temperatures}")
        if len(self.seeds) < 2:
            raise ValueError(f"seeds must hold at least 2 seeds (across-seed tests), got {self.seeds}")
        if self.steps <= 0 or self.batch_size <= 0:
            raise ValueError("steps and batch_size must be positive")


def get_config(quick: bool = False) -> KDBiasConfig:
    if quick:
        return KDBiasConfig(steps=1000, seeds=(0, 1, 2), temperatures=(1, 4, 10))
    return KDBiasConfig()
