"""Hugging Face safetensors MoE checkpoints (Mixtral, Qwen3-MoE, OLMoE): read into `MoEParams`, write back.

A checkpoint directory holds `config.json`, one `model.safetensors` or several shards plus
`model.safetensors.index.json`, and other files (tokenizer, generation config) that are copied verbatim.

Hugging Face linear weights are `[out, in]` (`y = x @ W.T`); `MoEParams` uses `y = x @ W`, so every expert matrix
and the router are transposed on the way in and back on the way out (exact: no arithmetic). Tensors keep their
dtype; everything that is not a router or expert weight is kept verbatim, so load + save is bit-exact.
"""

import dataclasses
import json
import os
import pathlib
import re
import shutil
import tempfile

import numpy as np

from ._params import MoEParams
from ._safetensors import read_safetensors, write_safetensors

__all__ = ["SUPPORTED_ARCHITECTURES", "HFMoECheckpoint", "load_hf_moe", "save_hf_moe"]

_INDEX = "model.safetensors.index.json"
_SINGLE = "model.safetensors"
# Weights in other formats (e.g. Mixtral's consolidated.*.pt) would describe the unpruned model: never copied.
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf", ".npz", ".index.json")


@dataclasses.dataclass(frozen=True)
class _Layout:
    block: str  # per-layer prefix of the MoE block, formatted with the layer index
    names: tuple[str, str, str]  # expert tensor names for (gate, up, down)
    count_key: str  # config field holding the number of experts
    renorm_key: str | None  # config field for top-k renormalisation; None = always renormalise


_LAYOUTS = {
    "mixtral": _Layout("model.layers.{}.block_sparse_moe", ("w1", "w3", "w2"), "num_local_experts", None),
    "qwen3_moe": _Layout("model.layers.{}.mlp", ("gate_proj", "up_proj", "down_proj"), "num_experts", "norm_topk_prob"),
    "olmoe": _Layout("model.layers.{}.mlp", ("gate_proj", "up_proj", "down_proj"), "num_experts", "norm_topk_prob"),
}
SUPPORTED_ARCHITECTURES = tuple(_LAYOUTS)


@dataclasses.dataclass(frozen=True)
class HFMoECheckpoint:
    """A loaded checkpoint.

    Attributes:
        config: the parsed `config.json`.
        architecture: `"mixtral"`, `"qwen3_moe"` or `"olmoe"` (the config's `model_type`).
        moe_layer_ids: decoder-layer index of each MoE layer (Qwen3-MoE may interleave dense MLP layers).
        layers: one `MoEParams` per MoE layer (numpy arrays in the checkpoint dtype, our `x @ W` orientation).
        tensors: every other tensor, by its checkpoint name, verbatim.
        shard_of: the file each tensor name was read from (used to keep the sharding when writing).
        metadata: the safetensors `__metadata__` of the first shard (e.g. `{"format": "pt"}`).
        source: the directory it was read from (other files there are copied on save).
    """

    config: dict
    architecture: str
    moe_layer_ids: tuple[int, ...]
    layers: tuple[MoEParams, ...]
    tensors: dict
    shard_of: dict
    metadata: dict
    source: str

    @property
    def num_experts(self) -> int:
        """Experts per MoE layer (raises if the layers disagree, which a checkpoint cannot express)."""
        counts = {int(p.w_gate.shape[0]) for p in self.layers}
        if len(counts) != 1:
            raise ValueError(f"MoE layers hold different expert counts {sorted(counts)}; a HF config has one count")
        return counts.pop()

    @property
    def top_k(self) -> int:
        return int(self.config["num_experts_per_tok"])

    @property
    def renormalize(self) -> bool:
        key = _LAYOUTS[self.architecture].renorm_key
        return True if key is None else bool(self.config.get(key, False))

    def with_layers(self, layers) -> "HFMoECheckpoint":
        """A copy holding new MoE layers (e.g. pruned), one per MoE layer, same order."""
        layers = tuple(layers)
        if len(layers) != len(self.layers):
            raise ValueError(f"layers must hold {len(self.layers)} MoEParams (one per MoE layer), got {len(layers)}")
        for i, (p, old) in enumerate(zip(layers, self.layers, strict=True)):
            if not isinstance(p, MoEParams):
                raise TypeError(f"layers[{i}] must be a MoEParams, got {type(p).__name__}")
            for field in ("router", "w_gate", "w_up", "w_down"):
                new_dtype, old_dtype = np.dtype(getattr(p, field).dtype), np.dtype(getattr(old, field).dtype)
                if new_dtype != old_dtype:  # a silent dtype change would mix dtypes in the written checkpoint
                    raise ValueError(f"layers[{i}].{field} has dtype {new_dtype}; the checkpoint stores {old_dtype}")
        return dataclasses.replace(self, layers=layers)


def _moe_layer_ids(config: dict, architecture: str) -> tuple[int, ...]:
    n_layers = int(config["num_hidden_layers"])
    if architecture != "qwen3_moe":
        return tuple(range(n_layers))
    step = int(config.get("decoder_sparse_step", 1))
    dense = set(config.get("mlp_only_layers") or ())
    if int(config.get("num_experts", 0)) <= 0 or step < 1:
        return ()
    return tuple(i for i in range(n_layers) if i not in dense and (i + 1) % step == 0)


def _read_config(path: pathlib.Path) -> dict:
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise ValueError(f"checkpoint {path} has no config.json")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"checkpoint {path}: config.json is not valid JSON: {err}") from None
    arch = config.get("model_type")
    if arch not in _LAYOUTS:
        raise ValueError(
            f"checkpoint {path}: model_type {arch!r} is not supported; supported: {SUPPORTED_ARCHITECTURES}"
        )
    required = ("num_hidden_layers", "hidden_size", "num_experts_per_tok", _LAYOUTS[arch].count_key)
    missing = [k for k in required if k not in config]
    if missing:
        raise ValueError(f"checkpoint {path}: config.json lacks {missing} (needed for model_type {arch!r})")
    return config


def _read_tensors(path: pathlib.Path) -> tuple[dict, dict, dict]:
    index_path = path / _INDEX
    if index_path.is_file():
        index = json.loads(index_path.read_text())
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError(f"checkpoint {path}: {_INDEX} has no weight_map")
        files = sorted(set(weight_map.values()))
    elif (path / _SINGLE).is_file():
        weight_map, files = None, [_SINGLE]
    else:
        raise ValueError(f"checkpoint {path} has neither {_SINGLE} nor {_INDEX}")
    tensors, shard_of, metadata = {}, {}, None
    for fname in files:
        fpath = path / fname
        if not fpath.is_file():
            raise ValueError(f"checkpoint {path}: shard {fname} listed in {_INDEX} is missing")
        shard, meta = read_safetensors(fpath)
        metadata = meta if metadata is None else metadata
        for name, array in shard.items():
            if name in tensors:
                raise ValueError(f"checkpoint {path}: tensor {name!r} appears in both {shard_of[name]} and {fname}")
            tensors[name], shard_of[name] = array, fname
    if weight_map is not None:
        absent = sorted(n for n in weight_map if n not in tensors)
        if absent:
            raise ValueError(f"checkpoint {path}: tensors listed in {_INDEX} are missing from the shards: {absent[:5]}")
        wrong = sorted(n for n in weight_map if shard_of[n] != weight_map[n])
        if wrong:
            raise ValueError(f"checkpoint {path}: {_INDEX} maps {wrong[:5]} to the wrong shard")
    return tensors, shard_of, metadata or {}


def load_hf_moe(path: str | os.PathLike) -> HFMoECheckpoint:
    """Reads a Mixtral / Qwen3-MoE / OLMoE safetensors checkpoint directory.

    Raises:
        ValueError: no config or weights, an unsupported `model_type`, a missing router or expert tensor, a tensor
            shape that disagrees with the config (hidden size, expert count), or expert tensors beyond the config's
            expert count.
    """
    path = pathlib.Path(path)
    if not path.is_dir():
        raise ValueError(f"checkpoint must be a directory, got {str(path)!r}")
    config = _read_config(path)
    arch = config["model_type"]
    layout = _LAYOUTS[arch]
    tensors, shard_of, metadata = _read_tensors(path)
    n_exp, d = int(config[layout.count_key]), int(config["hidden_size"])
    if n_exp < 1:
        raise ValueError(f"checkpoint {path}: config {layout.count_key}={n_exp} must be >= 1")
    rest = dict(tensors)
    layers = []
    layer_ids = _moe_layer_ids(config, arch)
    for lid in layer_ids:
        prefix = layout.block.format(lid)

        def take(name, prefix=prefix, lid=lid):
            full = f"{prefix}.{name}"
            if full not in rest:
                raise ValueError(f"checkpoint {path}: missing tensor {full!r} (MoE layer {lid} of {arch})")
            return rest.pop(full)

        router = take("gate.weight")
        if router.shape != (n_exp, d):
            raise ValueError(
                f"checkpoint {path}: {prefix}.gate.weight has shape {router.shape}, but config says "
                f"{layout.count_key}={n_exp}, hidden_size={d} (expected {(n_exp, d)})"
            )
        if f"{prefix}.gate.bias" in rest:
            raise ValueError(f"checkpoint {path}: router bias {prefix}.gate.bias is not supported")
        extra = sorted(
            n
            for n in rest
            if (m := re.match(re.escape(prefix) + r"\.experts\.(\d+)\.", n)) and int(m.group(1)) >= n_exp
        )
        if extra:
            raise ValueError(
                f"checkpoint {path}: config {layout.count_key}={n_exp} but the checkpoint has more experts: {extra[:3]}"
            )
        mats = {k: [] for k in layout.names}
        for e in range(n_exp):
            for k in layout.names:
                mats[k].append(take(f"experts.{e}.{k}.weight"))
        g, u, dn = layout.names
        f = mats[g][0].shape[0]
        for e in range(n_exp):
            for k, want in ((g, (f, d)), (u, (f, d)), (dn, (d, f))):
                if mats[k][e].shape != want:
                    raise ValueError(
                        f"checkpoint {path}: {prefix}.experts.{e}.{k}.weight has shape {mats[k][e].shape}, expected "
                        f"{want} (hidden_size={d}, intermediate={f})"
                    )
        layers.append(
            MoEParams(
                router=np.ascontiguousarray(router.T),
                w_gate=np.stack([w.T for w in mats[g]]),
                w_up=np.stack([w.T for w in mats[u]]),
                w_down=np.stack([w.T for w in mats[dn]]),
            )
        )
    stray = sorted(n for n in rest if ".experts." in n or n.endswith(".gate.weight"))
    if stray:
        raise ValueError(f"checkpoint {path}: expert tensors outside the config's MoE layers: {stray[:3]}")
    return HFMoECheckpoint(
        config=config,
        architecture=arch,
        moe_layer_ids=layer_ids,
        layers=tuple(layers),
        tensors=rest,
        shard_of=shard_of,
        metadata=dict(metadata),
        source=str(path),
    )


def _host(array) -> np.ndarray:
    return np.asarray(array)


def _checkpoint_tensors(ckpt: HFMoECheckpoint) -> tuple[dict, dict]:
    """All tensors by checkpoint name (HF orientation) and the shard file of each."""
    layout = _LAYOUTS[ckpt.architecture]
    tensors, shards = dict(ckpt.tensors), {}
    default = sorted(set(ckpt.shard_of.values()))[0] if ckpt.shard_of else _SINGLE
    for name in tensors:
        shards[name] = ckpt.shard_of.get(name, default)
    for lid, p in zip(ckpt.moe_layer_ids, ckpt.layers, strict=True):
        prefix = layout.block.format(lid)
        router_name = f"{prefix}.gate.weight"
        router_shard = ckpt.shard_of.get(router_name, default)
        tensors[router_name], shards[router_name] = np.ascontiguousarray(_host(p.router).T), router_shard
        w = {layout.names[0]: _host(p.w_gate), layout.names[1]: _host(p.w_up), layout.names[2]: _host(p.w_down)}
        for e in range(int(p.w_gate.shape[0])):
            for k, stack in w.items():
                name = f"{prefix}.experts.{e}.{k}.weight"
                tensors[name] = np.ascontiguousarray(stack[e].T)
                # A new expert e lives where the old expert e lived (always there: E' <= E in pruning/merging).
                shards[name] = ckpt.shard_of.get(name, router_shard)
    return tensors, shards


def save_hf_moe(
    ckpt: HFMoECheckpoint, path: str | os.PathLike, *, overwrite: bool = False, extra_files: dict | None = None
) -> pathlib.Path:
    """Writes `ckpt` as a checkpoint directory at `path`, atomically.

    Everything goes into a temporary directory next to `path` that is renamed into place at the end, so an
    interrupted save leaves no half-written checkpoint. The config's expert count (`num_local_experts` for Mixtral,
    `num_experts` otherwise) is set to the layers' E'; tensors keep their shard files (a pruned-away expert's tensors
    disappear) and the index is rewritten with the new `total_size`. The other top-level files of the source
    directory (tokenizer, generation config, ...) are copied verbatim, except weights in any format (`*.bin`, `*.pt`,
    `*.index.json`, ...: they would describe the unpruned model); subdirectories are not copied. `extra_files` maps
    file names to str/bytes contents to add.

    Raises:
        ValueError: `path` is the source directory or inside it, `path` exists and `overwrite` is False, the layers
            hold different expert counts, or `num_experts_per_tok` exceeds the new expert count.
    """
    if not isinstance(ckpt, HFMoECheckpoint):
        raise TypeError(f"ckpt must be a HFMoECheckpoint, got {type(ckpt).__name__}")
    out = pathlib.Path(path).absolute()
    source = pathlib.Path(ckpt.source).absolute() if ckpt.source else None
    if source is not None and (out == source or source in out.parents):
        raise ValueError(f"path {str(out)!r} is the source checkpoint or inside it; the input is never modified")
    if out.exists() and not overwrite:
        raise ValueError(f"path {str(out)!r} exists; pass overwrite=True to replace it")
    layout = _LAYOUTS[ckpt.architecture]
    n_exp = ckpt.num_experts if ckpt.layers else int(ckpt.config[layout.count_key])
    if ckpt.layers and ckpt.top_k > n_exp:
        raise ValueError(f"num_experts_per_tok={ckpt.top_k} exceeds the new expert count {n_exp}")
    config = dict(ckpt.config)
    config[layout.count_key] = n_exp
    tensors, shards = _checkpoint_tensors(ckpt)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        if source is not None and source.is_dir():
            for item in sorted(source.iterdir()):
                if item.is_file() and item.name != "config.json" and not item.name.endswith(_WEIGHT_SUFFIXES):
                    shutil.copy2(item, tmp / item.name)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        by_file: dict[str, dict] = {}
        for name, fname in shards.items():
            by_file.setdefault(fname, {})[name] = tensors[name]
        for fname, group in sorted(by_file.items()):
            write_safetensors(tmp / fname, group, ckpt.metadata)
        if len(by_file) > 1 or _SINGLE not in by_file:
            total = int(sum(np.asarray(t).nbytes for t in tensors.values()))
            index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(shards.items()))}
            (tmp / _INDEX).write_text(json.dumps(index, indent=2) + "\n")
        for fname, content in (extra_files or {}).items():
            target = tmp / fname
            (target.write_bytes if isinstance(content, bytes) else target.write_text)(content)
        if out.exists():
            old = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
