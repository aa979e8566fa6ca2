"""SRigL on CIFAR-10 with ResNet-18 (the paper's CIFAR setting), for users with the data and a GPU.

Run: `.venv/bin/python scripts/train_srigl_cifar10.py --data-dir /path/to/tensorflow_datasets`
(CIFAR-10 prepared in ArrayRecord format; nothing is downloaded unless --download is given).
Paper reference (arXiv 2305.02299, ResNet-18 CIFAR-10, 90% sparsity): SRigL 94.6% vs RigL 94.4%, dense 95.3%.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class SRigLCifar10Config:
    dataset: str = "cifar10"
    method: str = "srigl"  # dense | static | set | rigl | srigl
    sparsity: float = 0.9
    distribution: str = "erk"
    epochs: int = 250
    batch_size: int = 128
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    update_every: int = 100  # ΔT
    end_fraction: float = 0.75  # T_end
    drop_fraction: float = 0.3  # alpha
    gamma_sal: float = 0.3
    width: int = 64
    seed: int = 0
    max_train_examples: int | None = None

    def __post_init__(self):
        if self.method not in ("dense", "static", "set", "rigl", "srigl"):
            raise ValueError(f"method must be dense|static|set|rigl|srigl, got {self.method!r}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.epochs <= 0 or self.batch_size <= 0 or self.width <= 0:
            raise ValueError("epochs, batch_size and width must be positive")


def get_config(quick: bool = False) -> SRigLCifar10Config:
    if quick:
        return SRigLCifar10Config(epochs=1, width=16, max_train_examples=2048)
    return SRigLCifar10Config()
