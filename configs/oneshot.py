"""Config of the `oneshot` reproduction (core masks on a digits MLP)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class OneShotConfig:
    seeds: tuple[int, ...] = (0, 1, 2)
    hidden: tuple[int, ...] = (256, 128)
    train_steps: int = 800
    finetune_steps: int = 200
    batch_size: int = 64
    learning_rate: float = 1e-3
    sparsities: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)

    def __post_init__(self):
        if not self.seeds:
            raise ValueError("seeds must be non-empty")
        if self.train_steps <= 0 or self.finetune_steps < 0:
            raise ValueError("train_steps must be > 0 and finetune_steps >= 0")
        if any(not 0.0 <= s < 1.0 for s in self.sparsities):
            raise ValueError(f"sparsities must lie in [0, 1), got {self.sparsities}")


def get_config(quick: bool = False) -> OneShotConfig:
    if quick:
        return OneShotConfig(seeds=(0,), train_steps=300, finetune_steps=60, sparsities=(0.5, 0.9))
    return OneShotConfig()
