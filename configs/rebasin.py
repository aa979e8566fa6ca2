"""Config of the `rebasin` reproduction: lottery-ticket masks permuted across basins (arXiv 2505.05143).

A digits MLP wide enough for the effect (hidden (64, 64) times `width`): dense A and B per seed, A's IMP mask
at each sparsity, B matched to A by weight matching, then LTH / naive / permuted sparse runs from the inits.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class RebasinConfig:
    model: str = "mlp"
    dataset: str = "digits"
    width: int = 8
    hidden: tuple[int, ...] = (64, 64)
    vgg_channels: tuple[int, ...] = (16, 32, 64, 64)
    blocks_per_stage: int = 3
    sparsities: tuple[float, ...] = (0.8, 0.9, 0.95)
    seeds: tuple[int, ...] = (0, 1, 2)
    dense_steps: int = 3000
    imp_fraction: float = 0.2
    imp_retrain_steps: int = 300
    sparse_steps: int = 3000
    rewind_step: int = 0
    batch_size: int = 128
    learning_rate: float = 0.08
    imp_learning_rate: float = 0.01
    imp_rewind_step: int | None = None  # None: IMP continues from the current weights (the paper's code)
    sparse_learning_rate: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 5e-4
    matching: str = "weight"
    matching_samples: int = 512
    ensemble: bool = True
    data_dir: str | None = None
    max_train: int | None = None

    def __post_init__(self):
        if self.model not in ("mlp", "vgg", "resnet20"):
            raise ValueError(f"model must be mlp|vgg|resnet20, got {self.model!r}")
        if self.dataset not in ("digits", "cifar10"):
            raise ValueError(f"dataset must be digits|cifar10, got {self.dataset!r}")
        if self.matching not in ("weight", "activation"):
            raise ValueError(f"matching must be weight|activation, got {self.matching!r}")
        if not self.sparsities or list(self.sparsities) != sorted(set(self.sparsities)):
            raise ValueError(f"sparsities must be non-empty and increasing, got {self.sparsities}")
        if not all(0.0 < s < 1.0 for s in self.sparsities):
            raise ValueError(f"sparsities must lie in (0, 1), got {self.sparsities}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be non-empty and distinct, got {self.seeds}")
        if min(self.width, self.dense_steps, self.sparse_steps, self.batch_size) <= 0 or self.imp_retrain_steps < 0:
            raise ValueError("width, dense_steps, sparse_steps and batch_size must be positive")
        if not 0 <= self.rewind_step < min(self.dense_steps, self.sparse_steps):
            raise ValueError(f"rewind_step must be in [0, min(dense_steps, sparse_steps)), got {self.rewind_step}")
        if self.imp_rewind_step is not None and not 0 <= self.imp_rewind_step < self.dense_steps:
            raise ValueError(f"imp_rewind_step must be None or in [0, dense_steps), got {self.imp_rewind_step}")
        if not 0.0 < self.imp_fraction < 1.0:
            raise ValueError(f"imp_fraction must be in (0, 1), got {self.imp_fraction}")


def get_config(quick: bool = False) -> RebasinConfig:
    if quick:
        return RebasinConfig(
            width=4, sparsities=(0.8, 0.95), seeds=(0, 1), dense_steps=800, imp_retrain_steps=100, sparse_steps=800
        )
    return RebasinConfig()
