"""Config of the `xmc` reproduction: dense vs fixed fan-in heads on the stdlib identifier task."""

import dataclasses

from jaxsparse.xmc import VARIANTS


@dataclasses.dataclass(frozen=True)
class XMCConfig:
    variants: tuple[str, ...] = VARIANTS
    seeds: tuple[int, ...] = (0, 1)
    num_labels: int = 4096
    num_features: int = 4096
    hidden: int = 128
    intermediate: int = 1024
    fan_in: int = 8  # 8 of 128 encoder outputs: 93.75% sparse; 99.2% behind the 1024-wide intermediate layer
    num_clusters: int = 64
    steps: int = 3000
    batch_size: int = 128
    learning_rate: float = 2e-3
    loss: str = "squared_hinge"
    alpha0: float = 0.4
    aux_cutoff_fraction: float = 0.5
    rewire_every: int = 200
    rewire_end_fraction: float = 0.66
    rewire_fraction: float = 0.2
    max_files: int | None = None  # cap on stdlib files read (None: all), for fast smoke runs

    def __post_init__(self):
        if not self.variants or not set(self.variants) <= set(VARIANTS):
            raise ValueError(f"variants must be a non-empty subset of {VARIANTS}, got {self.variants}")
        if not self.seeds:
            raise ValueError("seeds must be non-empty")
        if min(self.num_labels, self.num_features, self.hidden, self.fan_in, self.steps, self.batch_size) <= 0:
            raise ValueError("sizes, steps and batch_size must be positive")
        if self.fan_in > self.hidden:
            raise ValueError(f"fan_in={self.fan_in} must not exceed hidden={self.hidden}")
        if self.loss not in ("squared_hinge", "bce"):
            raise ValueError(f"loss must be 'squared_hinge' or 'bce', got {self.loss!r}")
        if not 0.0 <= self.rewire_fraction <= 1.0:
            raise ValueError(f"rewire_fraction must be in [0, 1], got {self.rewire_fraction}")


def get_config(quick: bool = False) -> XMCConfig:
    if quick:
        return XMCConfig(seeds=(0,), num_labels=2048, steps=800)
    return XMCConfig()
