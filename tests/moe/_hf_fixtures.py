"""Tiny random Hugging Face MoE checkpoints (Mixtral, Qwen3-MoE, OLMoE layouts), written with safetensors.numpy."""

import hashlib
import json
import pathlib

import numpy as np
import safetensors.numpy

VOCAB = 64
HIDDEN = 16
N_EXPERTS = 6
TOP_K = 2
FF = 8


def tiny_config(arch: str) -> dict:
    common = {
        "vocab_size": VOCAB,
        "hidden_size": HIDDEN,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_experts_per_tok": TOP_K,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "max_position_embeddings": 128,
        "tie_word_embeddings": False,
        "torch_dtype": "float32",
    }
    if arch == "mixtral":
        return {
            **common,
            "model_type": "mixtral",
            "architectures": ["MixtralForCausalLM"],
            "num_hidden_layers": 2,
            "num_local_experts": N_EXPERTS,
            "intermediate_size": FF,
            "sliding_window": None,
        }
    if arch == "qwen3_moe":
        return {
            **common,
            "model_type": "qwen3_moe",
            "architectures": ["Qwen3MoeForCausalLM"],
            "num_hidden_layers": 3,
            "num_experts": N_EXPERTS,
            "moe_intermediate_size": FF,
            "intermediate_size": 12,  # the dense MLP of layer 1 (mlp_only_layers)
            "mlp_only_layers": [1],
            "decoder_sparse_step": 1,
            "norm_topk_prob": True,
            "head_dim": 8,  # != hidden / heads, as in the real Qwen3 models
            "attention_bias": False,
        }
    if arch == "olmoe":
        return {
            **common,
            "model_type": "olmoe",
            "architectures": ["OlmoeForCausalLM"],
            "num_hidden_layers": 2,
            "num_experts": N_EXPERTS,
            "intermediate_size": FF,
            "norm_topk_prob": False,
            "clip_qkv": None,
        }
    raise ValueError(arch)


def _head_dim(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def tiny_tensors(cfg: dict, seed: int = 0, dtype=np.float32) -> dict:
    """HF-named tensors ([out, in] orientation) for `cfg`, random with sane scales."""
    rng = np.random.default_rng(seed)
    d, arch = cfg["hidden_size"], cfg["model_type"]
    hd, nh, nkv = _head_dim(cfg), cfg["num_attention_heads"], cfg["num_key_value_heads"]
    n_exp = cfg.get("num_local_experts", cfg.get("num_experts"))
    f = cfg.get("moe_intermediate_size", cfg["intermediate_size"])

    def mat(out, inp, scale=None):
        return (rng.standard_normal((out, inp)) * (scale or inp**-0.5)).astype(dtype)

    def norm(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(dtype)

    t = {"model.embed_tokens.weight": mat(cfg["vocab_size"], d, 1.0), "model.norm.weight": norm(d)}
    t["lm_head.weight"] = mat(cfg["vocab_size"], d)
    dense = set(cfg.get("mlp_only_layers") or ())
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}"
        t[f"{p}.input_layernorm.weight"] = norm(d)
        t[f"{p}.post_attention_layernorm.weight"] = norm(d)
        t[f"{p}.self_attn.q_proj.weight"] = mat(nh * hd, d)
        t[f"{p}.self_attn.k_proj.weight"] = mat(nkv * hd, d)
        t[f"{p}.self_attn.v_proj.weight"] = mat(nkv * hd, d)
        t[f"{p}.self_attn.o_proj.weight"] = mat(d, nh * hd)
        if arch == "qwen3_moe":
            t[f"{p}.self_attn.q_norm.weight"] = norm(hd)
            t[f"{p}.self_attn.k_norm.weight"] = norm(hd)
        if arch == "olmoe":
            t[f"{p}.self_attn.q_norm.weight"] = norm(nh * hd)
            t[f"{p}.self_attn.k_norm.weight"] = norm(nkv * hd)
        if arch == "qwen3_moe" and i in dense:
            fd = cfg["intermediate_size"]
            t[f"{p}.mlp.gate_proj.weight"] = mat(fd, d)
            t[f"{p}.mlp.up_proj.weight"] = mat(fd, d)
            t[f"{p}.mlp.down_proj.weight"] = mat(d, fd)
            continue
        block = f"{p}.block_sparse_moe" if arch == "mixtral" else f"{p}.mlp"
        names = ("w1", "w3", "w2") if arch == "mixtral" else ("gate_proj", "up_proj", "down_proj")
        t[f"{block}.gate.weight"] = mat(n_exp, d, 1.0)
        for e in range(n_exp):
            t[f"{block}.experts.{e}.{names[0]}.weight"] = mat(f, d)
            t[f"{block}.experts.{e}.{names[1]}.weight"] = mat(f, d)
            t[f"{block}.experts.{e}.{names[2]}.weight"] = mat(d, f)
    return t


def write_checkpoint(path, cfg: dict, tensors: dict, n_shards: int = 2, extra_files: bool = True) -> pathlib.Path:
    """Writes a checkpoint dir with `n_shards` safetensors files (an index when > 1), like save_pretrained."""
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps(cfg, indent=2))
    names = sorted(tensors)
    if n_shards == 1:
        safetensors.numpy.save_file(
            {n: tensors[n] for n in names}, path / "model.safetensors", metadata={"format": "pt"}
        )
    else:
        weight_map = {}
        for s, chunk in enumerate(np.array_split(np.arange(len(names)), n_shards)):
            fname = f"model-{s + 1:05d}-of-{n_shards:05d}.safetensors"
            group = {names[i]: tensors[names[i]] for i in chunk}
            safetensors.numpy.save_file(group, path / fname, metadata={"format": "pt"})
            weight_map.update(dict.fromkeys(group, fname))
        total = sum(v.nbytes for v in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (path / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    if extra_files:
        (path / "generation_config.json").write_text('{"do_sample": false}\n')
    return path


def make_checkpoint(path, arch: str, seed: int = 0, n_shards: int = 2) -> pathlib.Path:
    cfg = tiny_config(arch)
    return write_checkpoint(path, cfg, tiny_tensors(cfg, seed), n_shards=n_shards)


def tree_hash(path) -> dict:
    """sha256 and mtime of every file under `path` (to prove an input directory was not touched)."""
    path = pathlib.Path(path)
    return {
        str(p.relative_to(path)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def load_all(path) -> tuple[dict, dict]:
    """(config, every tensor) of a checkpoint dir, read with safetensors.numpy (an independent reader)."""
    path = pathlib.Path(path)
    tensors = {}
    for f in sorted(path.glob("*.safetensors")):
        tensors.update(safetensors.numpy.load_file(f))
    return json.loads((path / "config.json").read_text()), tensors
