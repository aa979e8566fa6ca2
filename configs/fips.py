"""Config of the `fips` reproduction: a digits ViT's MLPs compressed to 50/40/25% with FiPS."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class FiPSConfig:
    budgets: tuple[float, ...] = (0.5, 0.4, 0.25)
    factor_sparsity: float = 0.75  # the Swin-L/DeiT-B configs' s
    groups: tuple[tuple[int, ...], ...] = ((0, 1, 2, 3),)  # DeiT-B groups 4 consecutive blocks
    dim: int = 64
    depth: int = 4
    heads: int = 4
    patch_size: int = 2
    train_steps: int = 800
    train_lr: float = 3e-3
    train_weight_decay: float = 1.0
    batch_size: int = 64
    calibration_size: int = 1024
    recon_steps: int = 600  # Swin-L: 20 epochs x 30 steps
    recon_batch_size: int = 128
    recon_lr: float = 1e-3
    sparsifier: str = "rigl"
    update_every: int = 50
    drop_fraction: float = 0.1
    finetune_steps: int = 300
    finetune_lr: float = 3e-4
    seed: int = 0

    def __post_init__(self):
        if not self.budgets or not all(0.0 < p < 1.0 for p in self.budgets):
            raise ValueError(f"budgets must be non-empty fractions in (0, 1), got {self.budgets}")
        if not 0.0 <= self.factor_sparsity < 1.0:
            raise ValueError(f"factor_sparsity must be in [0, 1), got {self.factor_sparsity}")
        if min(self.train_steps, self.recon_steps, self.batch_size, self.calibration_size) <= 0:
            raise ValueError("steps, batch sizes and calibration_size must be positive")


def get_config(quick: bool = False) -> FiPSConfig:
    if quick:
        return FiPSConfig(train_steps=600, recon_steps=300, finetune_steps=150, calibration_size=512)
    return FiPSConfig()
