"""Config of the `srigl` reproduction: dense vs static vs SET vs RigL vs SRigL on digits (MLP and CNN)."""

import dataclasses

from jaxsparse.dst import METHODS


@dataclasses.dataclass(frozen=True)
class SRigLDigitsConfig:
    models: tuple[str, ...] = ("mlp", "cnn")
    methods: tuple[str, ...] = METHODS
    seeds: tuple[int, ...] = (0, 1, 2)
    sparsity: float = 0.9
    steps: int = 2000
    batch_size: int = 64
    learning_rate: float = 2e-3
    update_every: int = 50
    drop_fraction: float = 0.3
    gamma_sal: float = 0.3

    def __post_init__(self):
        if not set(self.models) <= {"mlp", "cnn"} or not self.models:
            raise ValueError(f"models must be a non-empty subset of ('mlp', 'cnn'), got {self.models}")
        if not set(self.methods) <= set(METHODS) or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {self.methods}")
        if not self.seeds:
            raise ValueError("seeds must be non-empty")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.steps <= 0 or self.update_every <= 0 or self.batch_size <= 0:
            raise ValueError("steps, update_every and batch_size must be positive")
        if not 0.0 <= self.gamma_sal <= 1.0:
            raise ValueError(f"gamma_sal must be in [0, 1], got {self.gamma_sal}")


def get_config(quick: bool = False) -> SRigLDigitsConfig:
    if quick:
        return SRigLDigitsConfig(steps=800)
    return SRigLDigitsConfig()
