"""Config of the `reap` reproduction: one-shot expert pruning (REAP vs baselines) and merging of a tiny MoE LM."""

import dataclasses

_PRUNE = ("reap", "frequency", "soft_frequency", "ean_sum", "ean_mean", "weighted_ean_sum", "random")
_MERGE = ("hc_smoe", "m_smoe")


@dataclasses.dataclass(frozen=True)
class ReapConfig:
    num_layers: int = 4
    num_experts: int = 16
    top_k: int = 2
    renormalize: bool = True  # Qwen3-MoE / Mixtral convention
    d_model: int = 64
    d_ff: int = 64
    num_heads: int = 4
    seq_len: int = 64
    batch_size: int = 16
    train_steps: int = 1500
    learning_rate: float = 3e-3
    balance_weight: float = 0.01
    calib_batches: int = 16
    eval_windows: int = 256
    ratios: tuple[float, ...] = (0.25, 0.5)
    methods: tuple[str, ...] = ("reap", "frequency", "ean_sum", "random", "hc_smoe", "m_smoe")
    max_files: int | None = None
    max_bytes: int | None = 4_000_000
    seed: int = 0

    def __post_init__(self):
        for name in ("num_layers", "num_experts", "top_k", "d_model", "d_ff", "num_heads", "seq_len", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.top_k > self.num_experts:
            raise ValueError(f"top_k={self.top_k} exceeds num_experts={self.num_experts}")
        if self.train_steps < 1 or self.calib_batches < 1 or self.eval_windows < 1:
            raise ValueError("train_steps, calib_batches and eval_windows must be positive")
        if not self.ratios or any(not 0.0 <= r < 1.0 for r in self.ratios):
            raise ValueError(f"ratios must be non-empty and in [0, 1), got {self.ratios}")
        for r in self.ratios:
            if self.num_experts - int(self.num_experts * r) < self.top_k:
                raise ValueError(f"ratio {r} leaves fewer than top_k={self.top_k} of {self.num_experts} experts")
        unknown = [m for m in self.methods if m not in _PRUNE + _MERGE]
        if not self.methods or unknown:
            raise ValueError(f"methods must be non-empty, from {_PRUNE + _MERGE}; unknown: {unknown}")


def get_config(quick: bool = False) -> ReapConfig:
    if quick:
        return ReapConfig(d_model=48, d_ff=48, seq_len=48, train_steps=300, calib_batches=4, eval_windows=64,
                          max_bytes=1_000_000)  # fmt: skip
    return ReapConfig()
