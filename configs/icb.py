"""Config of the `icb` reproduction: the input-compression bound vs the generalization gap on binary digit tasks."""

import dataclasses

from jaxsparse.infowidth import ACTIVATIONS
from jaxsparse.infowidth._study import DIGIT_TASKS

_ARCHITECTURES = (
    ("relu", 1, 1.5, 0.1, "ntk", 0.0),
    ("relu", 3, 1.5, 0.1, "ntk", 0.0),
    ("erf", 2, 1.5, 0.1, "ntk", 0.0),
    ("relu", 2, 1.5, 0.1, "nngp", 0.01),
    ("erf", 1, 2.0, 0.5, "ntk", 0.1),
)


@dataclasses.dataclass(frozen=True)
class ICBConfig:
    tasks: tuple[str, ...] = ("odd_even", "low_high", "3v5", "4v9", "1v7")
    n_train: int = 1000
    n_test: int = 500
    # (activation, depth, W_std, b_std, mode, diag_reg)
    architectures: tuple[tuple, ...] = _ARCHITECTURES
    times: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0, 10000.0)
    random_label_fractions: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)
    sample_sizes: tuple[int, ...] = (25, 50, 100, 200, 400)
    delta: float = 0.05
    num_samples: int = 4
    seed: int = 0
    backend: str = "native"

    def __post_init__(self):
        if not self.tasks or any(t not in DIGIT_TASKS for t in self.tasks):
            raise ValueError(f"tasks must be non-empty and among {sorted(DIGIT_TASKS)}, got {self.tasks}")
        if self.n_train < 2 or self.n_train > 2000 or self.n_test < 2:
            raise ValueError(f"need 2 <= n_train <= 2000 and n_test >= 2, got {self.n_train}, {self.n_test}")
        for a in self.architectures:
            if len(a) != 6 or a[0] not in ACTIVATIONS or a[4] not in ("ntk", "nngp"):
                raise ValueError(f"architecture must be (activation, depth, W_std, b_std, mode, diag_reg), got {a}")
        if not self.architectures or not self.times or min(self.times) < 0:
            raise ValueError("architectures and times must be non-empty, times >= 0")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must lie in (0, 1), got {self.delta}")
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.backend not in ("native", "neural_tangents"):
            raise ValueError(f"backend must be 'native' or 'neural_tangents', got {self.backend!r}")


def get_config(quick: bool = False) -> ICBConfig:
    if quick:
        return ICBConfig(
            tasks=("odd_even", "low_high", "3v5", "4v9"),
            n_train=1000,
            n_test=400,
            architectures=_ARCHITECTURES[:4],
            times=(1.0, 10.0, 100.0, 1000.0),
            sample_sizes=(25, 50, 100, 200),
            num_samples=2,
        )
    return ICBConfig()
