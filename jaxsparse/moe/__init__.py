"""Sparse mixture-of-experts pruning: REAP (arXiv 2510.13999) and its baselines, in JAX.

* `MoEParams`, `route`, `moe_forward`, `expert_outputs`: one sparse-MoE layer with stacked SwiGLU experts and a
  dropless forward pass (sort + exact grouped matmul: `jax.lax.ragged_dot`, tiled on CPU); `moe_forward_dense` is
  the all-experts reference.
* `ExpertStats`, `observe_layer`, `moe_forward_with_stats`: per-expert sums and counts over routed, non-padding
  tokens (frequency, soft frequency, EAN, weighted EAN / REAP, max activation, mean outputs, router-logit Gram).
* `expert_scores`, `experts_to_keep`, `prune_experts`, `prune_layers`, `num_experts_after_pruning`: criteria and
  one-shot pruning with router slicing, uniform or global budgets, top_k and expert-parallel rules.
* `shard_moe_params`, `observe_layer_sharded`, `moe_forward_with_stats_sharded`, `prune_experts_sharded`: the same
  on a `Mesh` whose `expert` axis shards the expert dimension (shard_map; optional data axis).
* `merge_hc_smoe`, `merge_m_smoe` (+ `hc_smoe_clusters`, `m_smoe_clusters`, `m_smoe_dominant_experts`,
  `merge_clusters`): the merging baselines, compact (E' experts) or the repo's replicated layout.
* `load_hf_moe`, `save_hf_moe`, `HFMoECheckpoint`: Mixtral / Qwen3-MoE / OLMoE safetensors checkpoints (sharded,
  bit-exact round trip, atomic writes); `prepare_hf_moe`, `hf_moe_forward`, `hf_moe_layer_inputs`, `hf_moe_observe`:
  their JAX forward pass and fused calibration observer.
* `MoELM` (+ `train_moe_lm`, `calibrate_lm`, `evaluate_lm`, `get_moe_params`, `with_moe_params`,
  `lm_moe_inputs`): a tiny NNX decoder LM with MoE blocks; `reap_study`: the small-scale reproduction.
* `subspace_spread`, `plot_subspaces`: the functional-subspace-collapse (PCA spread) measurement.
"""

from ._analysis import plot_subspaces as plot_subspaces
from ._analysis import subspace_spread as subspace_spread
from ._checkpoint import SUPPORTED_ARCHITECTURES as SUPPORTED_ARCHITECTURES
from ._checkpoint import HFMoECheckpoint as HFMoECheckpoint
from ._checkpoint import load_hf_moe as load_hf_moe
from ._checkpoint import save_hf_moe as save_hf_moe
from ._hf_model import HFMoEWeights as HFMoEWeights
from ._hf_model import hf_moe_forward as hf_moe_forward
from ._hf_model import hf_moe_layer_inputs as hf_moe_layer_inputs
from ._hf_model import hf_moe_nll as hf_moe_nll
from ._hf_model import hf_moe_observe as hf_moe_observe
from ._hf_model import prepare_hf_moe as prepare_hf_moe
from ._layer import dense_expert_outputs as dense_expert_outputs
from ._layer import expert_outputs as expert_outputs
from ._layer import moe_forward as moe_forward
from ._layer import moe_forward_dense as moe_forward_dense
from ._lm import MoEBlock as MoEBlock
from ._lm import MoELM as MoELM
from ._lm import calibrate_lm as calibrate_lm
from ._lm import evaluate_lm as evaluate_lm
from ._lm import get_moe_params as get_moe_params
from ._lm import lm_moe_inputs as lm_moe_inputs
from ._lm import train_moe_lm as train_moe_lm
from ._lm import with_moe_params as with_moe_params
from ._merge import LINKAGES as LINKAGES
from ._merge import hc_smoe_clusters as hc_smoe_clusters
from ._merge import m_smoe_clusters as m_smoe_clusters
from ._merge import m_smoe_dominant_experts as m_smoe_dominant_experts
from ._merge import merge_clusters as merge_clusters
from ._merge import merge_hc_smoe as merge_hc_smoe
from ._merge import merge_m_smoe as merge_m_smoe
from ._observer import ExpertStats as ExpertStats
from ._observer import combine_stats as combine_stats
from ._observer import moe_forward_with_stats as moe_forward_with_stats
from ._observer import observe_layer as observe_layer
from ._params import MoEParams as MoEParams
from ._params import check_moe_params as check_moe_params
from ._params import init_moe_params as init_moe_params
from ._prune import PRUNE_METHODS as PRUNE_METHODS
from ._prune import expert_scores as expert_scores
from ._prune import experts_to_keep as experts_to_keep
from ._prune import num_experts_after_pruning as num_experts_after_pruning
from ._prune import prune_experts as prune_experts
from ._prune import prune_layers as prune_layers
from ._prune import super_experts as super_experts
from ._routing import route as route
from ._sharding import moe_forward_with_stats_sharded as moe_forward_with_stats_sharded
from ._sharding import observe_layer_sharded as observe_layer_sharded
from ._sharding import prune_experts_sharded as prune_experts_sharded
from ._sharding import shard_moe_params as shard_moe_params
from ._study import MERGE_METHODS as MERGE_METHODS
from ._study import reap_study as reap_study

__all__ = [
    "LINKAGES",
    "MERGE_METHODS",
    "PRUNE_METHODS",
    "SUPPORTED_ARCHITECTURES",
    "ExpertStats",
    "HFMoECheckpoint",
    "HFMoEWeights",
    "MoEBlock",
    "MoELM",
    "MoEParams",
    "calibrate_lm",
    "check_moe_params",
    "combine_stats",
    "dense_expert_outputs",
    "evaluate_lm",
    "expert_outputs",
    "expert_scores",
    "experts_to_keep",
    "get_moe_params",
    "hc_smoe_clusters",
    "hf_moe_forward",
    "hf_moe_layer_inputs",
    "hf_moe_nll",
    "hf_moe_observe",
    "init_moe_params",
    "lm_moe_inputs",
    "load_hf_moe",
    "m_smoe_clusters",
    "m_smoe_dominant_experts",
    "merge_clusters",
    "merge_hc_smoe",
    "merge_m_smoe",
    "moe_forward",
    "moe_forward_dense",
    "moe_forward_with_stats",
    "moe_forward_with_stats_sharded",
    "num_experts_after_pruning",
    "observe_layer",
    "observe_layer_sharded",
    "plot_subspaces",
    "prepare_hf_moe",
    "prune_experts",
    "prune_experts_sharded",
    "prune_layers",
    "reap_study",
    "route",
    "save_hf_moe",
    "shard_moe_params",
    "subspace_spread",
    "super_experts",
    "train_moe_lm",
    "with_moe_params",
]
