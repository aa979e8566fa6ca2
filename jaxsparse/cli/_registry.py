"""The one explicit table of reproductions run by `jaxsparse reproduce`.

Each entry names a module (imported only when that reproduction runs) exposing
`run(config, out_dir: pathlib.Path) -> dict` and a config factory in `configs/` taking `quick: bool`.
The dict `run` returns has: "summary" (markdown), "rows" (list of dicts, the table), "plots" (file names
written into out_dir), "checks" ({name: {"passed": bool, "detail": str}}) and "metrics" (plain numbers).
"""

import dataclasses

__all__ = ["REPRODUCTIONS", "Reproduction", "find"]


@dataclasses.dataclass(frozen=True)
class Reproduction:
    name: str
    title: str
    runner: str  # "module:function"
    config: str  # "module:function" taking quick: bool
    quick_budget_s: float  # the share of `reproduce --quick` (15 minutes over everything, 2 CPU cores)


REPRODUCTIONS: tuple[Reproduction, ...] = (
    Reproduction(
        name="oneshot",
        title="One-shot pruning of a digits MLP: magnitude, global, N:M and constant fan-in masks",
        runner="jaxsparse.cli._repro_oneshot:run",
        config="configs.oneshot:get_config",
        quick_budget_s=60.0,
    ),
    Reproduction(
        name="srigl",
        title="Dynamic sparse training with structured sparsity (SRigL) vs RigL, SET, static and dense on digits",
        runner="jaxsparse.cli._repro_srigl:run",
        config="configs.srigl:get_config",
        quick_budget_s=170.0,
    ),
    Reproduction(
        name="xmc",
        title="Dynamic sparsity in large output spaces: fixed fan-in heads, intermediate layer, auxiliary loss",
        runner="jaxsparse.cli._repro_xmc:run",
        config="configs.xmc:get_config",
        quick_budget_s=120.0,
    ),
    Reproduction(
        name="fips",
        title="FiPS: a shared SVD base and sparse factors across a digits ViT's MLPs (50/40/25% of parameters)",
        runner="jaxsparse.cli._repro_fips:run",
        config="configs.fips:get_config",
        quick_budget_s=200.0,
    ),
    Reproduction(
        name="kd_bias",
        title="Knowledge distillation: class-wise bias on digits and group fairness (DPD, EOD) vs temperature",
        runner="jaxsparse.cli._repro_kd_bias:run",
        config="configs.kd_bias:get_config",
        quick_budget_s=50.0,
    ),
    Reproduction(
        name="reap",
        title="REAP: one-shot MoE expert pruning vs frequency / EAN / random and HC-SMoE / M-SMoE merging (code LM)",
        runner="jaxsparse.cli._repro_reap:run",
        config="configs.reap:get_config",
        quick_budget_s=70.0,
    ),
    Reproduction(
        name="rebasin",
        title="Lottery-ticket masks across basins: LTH vs naive vs permuted (weight-matched) masks, wide digits MLP",
        runner="jaxsparse.cli._repro_rebasin:run",
        config="configs.rebasin:get_config",
        quick_budget_s=80.0,
    ),
    Reproduction(
        name="meta_gcn",
        title="Meta-GCN vs unweighted and class-weighted GCN on imbalanced breast-cancer patient graphs",
        runner="jaxsparse.cli._repro_meta_gcn:run",
        config="configs.meta_gcn:get_config",
        quick_budget_s=50.0,
    ),
    Reproduction(
        name="icb",
        title="Input-compression bound vs generalization gap of infinite-width ensembles on binary digit tasks",
        runner="jaxsparse.cli._repro_icb:run",
        config="configs.icb:get_config",
        quick_budget_s=40.0,
    ),
    Reproduction(
        name="shortcut",
        title="Shortcut detection with mutual information: I(X;Z) vs NTK time with and without a patch shortcut",
        runner="jaxsparse.cli._repro_shortcut:run",
        config="configs.shortcut:get_config",
        quick_budget_s=40.0,
    ),
)


def find(names: list[str]) -> list[Reproduction]:
    """The entries named (all when empty), in table order; raises ValueError on an unknown name."""
    known = {r.name: r for r in REPRODUCTIONS}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown reproduction(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if not names:
        return list(REPRODUCTIONS)
    return [r for r in REPRODUCTIONS if r.name in set(names)]
