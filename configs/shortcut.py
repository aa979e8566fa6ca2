"""Config of the `shortcut` reproduction: I(X; Z) vs NTK time on digits (odd/even) with and without a patch."""

import dataclasses

from jaxsparse.infowidth import ACTIVATIONS


@dataclasses.dataclass(frozen=True)
class ShortcutConfig:
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    task: str = "odd_even"
    n_train: int = 800
    n_test: int = 400
    n_eval: int = 400
    times: tuple[float, ...] = (0.0, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0)
    detect_time: float = 1000.0
    activation: str = "relu"
    depth: int = 2
    W_std: float = 1.5
    b_std: float = 0.1
    mode: str = "ntk"
    diag_reg: float = 0.0
    patch_size: int = 2
    patch_value: float = 1.0
    estimator: str = "loo"
    num_samples: int = 4
    backend: str = "native"

    def __post_init__(self):
        if not self.seeds:
            raise ValueError("seeds must be non-empty")
        if self.n_eval < 2 or self.n_eval > min(self.n_train, self.n_test):
            raise ValueError(f"n_eval must lie in [2, min(n_train, n_test)], got {self.n_eval}")
        if float(self.detect_time) not in [float(t) for t in self.times]:
            raise ValueError(f"detect_time {self.detect_time} must be one of times {self.times}")
        if self.activation not in ACTIVATIONS or self.mode not in ("ntk", "nngp"):
            raise ValueError(f"bad activation/mode: {self.activation!r}, {self.mode!r}")
        if self.estimator not in ("loo", "nce"):
            raise ValueError(f"estimator must be 'loo' or 'nce', got {self.estimator!r}")
        if not 1 <= self.patch_size <= 8:
            raise ValueError(f"patch_size must lie in [1, 8], got {self.patch_size}")


def get_config(quick: bool = False) -> ShortcutConfig:
    if quick:
        return ShortcutConfig(
            n_train=600, n_test=300, n_eval=300, times=(0.0, 1.0, 10.0, 100.0, 1000.0, 10000.0), num_samples=2,
        )  # fmt: skip
    return ShortcutConfig()
