"""Hugging Face MoE checkpoint IO: layouts, bit-exact round trip, pruned writes, atomicity, clear errors."""

import json

import ml_dtypes
import numpy as np
import pytest

from jaxsparse.moe import _checkpoint
from jaxsparse.moe._checkpoint import load_hf_moe, save_hf_moe
from jaxsparse.moe._params import MoEParams
from jaxsparse.moe._safetensors import read_safetensors, write_safetensors

from ._hf_fixtures import N_EXPERTS, TOP_K, load_all, make_checkpoint, tiny_config, tiny_tensors, tree_hash

ARCHS = ("mixtral", "qwen3_moe", "olmoe")
_NAMES = {"mixtral": ("block_sparse_moe", "w1", "w3", "w2"), "qwen3_moe": ("mlp", "gate_proj", "up_proj", "down_proj")}
_NAMES["olmoe"] = _NAMES["qwen3_moe"]


def _expert(tensors, arch, layer, e, which):
    block, *names = _NAMES[arch]
    return tensors[f"model.layers.{layer}.{block}.experts.{e}.{names[which]}.weight"]


@pytest.mark.parametrize("arch", ARCHS)
def test_load_maps_hf_orientation_and_keeps_the_rest(tmp_path, arch):
    src = make_checkpoint(tmp_path / "in", arch)
    _, ref = load_all(src)
    ckpt = load_hf_moe(src)
    assert ckpt.architecture == arch
    assert ckpt.moe_layer_ids == ((0, 2) if arch == "qwen3_moe" else (0, 1))
    assert ckpt.top_k == TOP_K and ckpt.num_experts == N_EXPERTS
    assert ckpt.renormalize is (arch != "olmoe")
    block = _NAMES[arch][0]
    for lid, p in zip(ckpt.moe_layer_ids, ckpt.layers, strict=True):
        np.testing.assert_array_equal(p.router, ref[f"model.layers.{lid}.{block}.gate.weight"].T)
        for e in range(N_EXPERTS):
            np.testing.assert_array_equal(p.w_gate[e], _expert(ref, arch, lid, e, 0).T)
            np.testing.assert_array_equal(p.w_up[e], _expert(ref, arch, lid, e, 1).T)
            np.testing.assert_array_equal(p.w_down[e], _expert(ref, arch, lid, e, 2).T)
    moe_names = {n for n in ref if ".experts." in n or n.endswith(".gate.weight")}
    assert set(ckpt.tensors) == set(ref) - moe_names
    for name, value in ckpt.tensors.items():
        np.testing.assert_array_equal(value, ref[name])
    if arch == "qwen3_moe":  # the dense MLP layer stays an ordinary tensor
        assert "model.layers.1.mlp.gate_proj.weight" in ckpt.tensors


@pytest.mark.parametrize(("arch", "n_shards"), [("mixtral", 3), ("qwen3_moe", 2), ("olmoe", 1)])
def test_round_trip_is_bit_exact_and_input_untouched(tmp_path, arch, n_shards):
    src = make_checkpoint(tmp_path / "in", arch, n_shards=n_shards)
    before = tree_hash(src)
    out = save_hf_moe(load_hf_moe(src), tmp_path / "out")
    assert tree_hash(src) == before
    cfg_in, t_in = load_all(src)
    cfg_out, t_out = load_all(out)
    assert cfg_out == cfg_in
    assert set(t_out) == set(t_in)
    for name in t_in:
        assert t_out[name].dtype == t_in[name].dtype and t_out[name].shape == t_in[name].shape
        assert t_out[name].tobytes() == t_in[name].tobytes(), name
    assert sorted(p.name for p in out.glob("*.safetensors")) == sorted(p.name for p in src.glob("*.safetensors"))
    assert (out / "generation_config.json").read_text() == (src / "generation_config.json").read_text()
    if n_shards > 1:
        index_in = json.loads((src / "model.safetensors.index.json").read_text())
        index_out = json.loads((out / "model.safetensors.index.json").read_text())
        assert index_out == index_in
    else:
        assert not (out / "model.safetensors.index.json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dirs left behind
    # a second round trip through our own writer is byte-identical at the file level
    out2 = save_hf_moe(load_hf_moe(out), tmp_path / "out2")
    for f in out.glob("*.safetensors"):
        assert (out2 / f.name).read_bytes() == f.read_bytes()


def test_bf16_round_trip_bit_exact(tmp_path):
    cfg = tiny_config("olmoe")
    tensors = {k: v.astype(ml_dtypes.bfloat16) for k, v in tiny_tensors(cfg, seed=3).items()}
    src = tmp_path / "in"
    src.mkdir()
    (src / "config.json").write_text(json.dumps(cfg))
    write_safetensors(src / "model.safetensors", tensors, {"format": "pt"})
    ckpt = load_hf_moe(src)
    assert ckpt.layers[0].w_gate.dtype == np.dtype(ml_dtypes.bfloat16)
    out = save_hf_moe(ckpt, tmp_path / "out")
    back, meta = read_safetensors(out / "model.safetensors")
    assert meta == {"format": "pt"}
    assert set(back) == set(tensors)
    for name, value in tensors.items():
        assert back[name].dtype == value.dtype
        np.testing.assert_array_equal(back[name].view(np.uint16), value.view(np.uint16))


@pytest.mark.parametrize("arch", ARCHS)
def test_pruned_write_agrees_with_new_expert_count(tmp_path, arch):
    src = make_checkpoint(tmp_path / "in", arch, n_shards=2)
    (src / "tokenizer.json").write_text('{"model": {}}')
    (src / "consolidated.00.pt").write_bytes(b"stale unpruned weights")
    (src / "pytorch_model.bin.index.json").write_text("{}")
    (src / "original").mkdir()
    (src / "original" / "params.json").write_text("{}")
    before = tree_hash(src)
    ckpt = load_hf_moe(src)
    keep = np.array([0, 2, 5])
    pruned = [
        MoEParams(router=p.router[:, keep], w_gate=p.w_gate[keep], w_up=p.w_up[keep], w_down=p.w_down[keep])
        for p in ckpt.layers
    ]
    out = save_hf_moe(ckpt.with_layers(pruned), tmp_path / "out")
    assert tree_hash(src) == before
    copied = sorted(p.name for p in out.iterdir())
    assert "tokenizer.json" in copied and "generation_config.json" in copied
    assert not {"consolidated.00.pt", "pytorch_model.bin.index.json", "original"} & set(copied)
    cfg, t_out = load_all(out)
    _, t_in = load_all(src)
    count_key = "num_local_experts" if arch == "mixtral" else "num_experts"
    assert cfg[count_key] == 3 and cfg["num_experts_per_tok"] == TOP_K
    block = _NAMES[arch][0]
    for lid in ckpt.moe_layer_ids:
        router = t_out[f"model.layers.{lid}.{block}.gate.weight"]
        np.testing.assert_array_equal(router, t_in[f"model.layers.{lid}.{block}.gate.weight"][keep])
        for new, old in enumerate(keep):
            for which in range(3):
                np.testing.assert_array_equal(
                    _expert(t_out, arch, lid, new, which), _expert(t_in, arch, lid, old, which)
                )
        assert not any(f".experts.{e}." in n for n in t_out for e in range(3, N_EXPERTS))
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(t_out)
    assert index["metadata"]["total_size"] == sum(v.nbytes for v in t_out.values())
    for fname in set(index["weight_map"].values()):
        shard, _ = read_safetensors(out / fname)
        assert set(shard) == {n for n, f in index["weight_map"].items() if f == fname}
    again = load_hf_moe(out)
    assert again.num_experts == 3
    np.testing.assert_array_equal(again.layers[-1].w_down, pruned[-1].w_down)


def test_bad_checkpoints_raise_clearly(tmp_path):
    cfg = tiny_config("qwen3_moe")
    base = tiny_tensors(cfg)
    from ._hf_fixtures import write_checkpoint

    t = dict(base)
    del t["model.layers.2.mlp.experts.4.up_proj.weight"]
    with pytest.raises(ValueError, match=r"missing tensor 'model\.layers\.2\.mlp\.experts\.4\.up_proj\.weight'"):
        load_hf_moe(write_checkpoint(tmp_path / "missing", cfg, t))
    with pytest.raises(ValueError, match=r"gate\.weight has shape \(6, 16\), but config says num_experts=5"):
        load_hf_moe(write_checkpoint(tmp_path / "fewer", {**cfg, "num_experts": 5}, base))
    t = {k: (v[:5] if k.endswith("mlp.gate.weight") else v) for k, v in base.items()}
    with pytest.raises(ValueError, match=r"num_experts=5 but the checkpoint has more experts"):
        load_hf_moe(write_checkpoint(tmp_path / "extra", {**cfg, "num_experts": 5}, t))
    with pytest.raises(ValueError, match=r"gate\.weight has shape \(6, 16\), but config says num_experts=7"):
        load_hf_moe(write_checkpoint(tmp_path / "more", {**cfg, "num_experts": 7}, base))
    with pytest.raises(ValueError, match=r"hidden_size=32"):
        load_hf_moe(write_checkpoint(tmp_path / "hidden", {**cfg, "hidden_size": 32}, base))
    with pytest.raises(ValueError, match=r"expert tensors outside the config's MoE layers"):
        load_hf_moe(write_checkpoint(tmp_path / "dense", {**cfg, "mlp_only_layers": [1, 2]}, base))
    with pytest.raises(ValueError, match=r"model_type 'llama' is not supported"):
        load_hf_moe(write_checkpoint(tmp_path / "llama", {**cfg, "model_type": "llama"}, base))
    with pytest.raises(ValueError, match=r"lacks \['num_experts_per_tok'\]"):
        load_hf_moe(
            write_checkpoint(tmp_path / "nok", {k: v for k, v in cfg.items() if k != "num_experts_per_tok"}, base)
        )
    with pytest.raises(ValueError, match=r"must be a directory"):
        load_hf_moe(tmp_path / "nowhere")
    broken = write_checkpoint(tmp_path / "broken_index", cfg, base, n_shards=2)
    (broken / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(ValueError, match=r"shard model-00002-of-00002\.safetensors listed in .* is missing"):
        load_hf_moe(broken)


def test_save_refuses_bad_targets_and_cleans_up_on_failure(tmp_path, monkeypatch):
    src = make_checkpoint(tmp_path / "in", "mixtral")
    ckpt = load_hf_moe(src)
    with pytest.raises(ValueError, match="source checkpoint"):
        save_hf_moe(ckpt, src)
    with pytest.raises(ValueError, match="source checkpoint"):
        save_hf_moe(ckpt, src / "sub")
    (tmp_path / "taken").mkdir()
    with pytest.raises(ValueError, match="exists; pass overwrite=True"):
        save_hf_moe(ckpt, tmp_path / "taken")
    p = ckpt.layers[0]
    with pytest.raises(ValueError, match=r"num_experts_per_tok=2 exceeds the new expert count 1"):
        one = MoEParams(router=p.router[:, :1], w_gate=p.w_gate[:1], w_up=p.w_up[:1], w_down=p.w_down[:1])
        save_hf_moe(ckpt.with_layers([one, one]), tmp_path / "one")
    with pytest.raises(ValueError, match=r"different expert counts \[3, 6\]"):
        three = MoEParams(router=p.router[:, :3], w_gate=p.w_gate[:3], w_up=p.w_up[:3], w_down=p.w_down[:3])
        save_hf_moe(ckpt.with_layers([three, p]), tmp_path / "mixed")
    with pytest.raises(ValueError, match="must hold 2 MoEParams"):
        ckpt.with_layers([p])
    with pytest.raises(ValueError, match=r"layers\[0\]\.w_up has dtype float16; the checkpoint stores float32"):
        ckpt.with_layers([MoEParams(p.router, p.w_gate, p.w_up.astype(np.float16), p.w_down), p])

    calls = []

    def failing(path, tensors, metadata=None):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        return write_safetensors(path, tensors, metadata)

    monkeypatch.setattr(_checkpoint, "write_safetensors", failing)
    with pytest.raises(OSError, match="disk full"):
        save_hf_moe(ckpt, tmp_path / "interrupted")
    assert not (tmp_path / "interrupted").exists()
    assert [q.name for q in tmp_path.iterdir() if q.name.startswith(".")] == []
    monkeypatch.undo()
    # overwrite replaces an existing output atomically
    save_hf_moe(ckpt, tmp_path / "taken", overwrite=True)
    assert load_hf_moe(tmp_path / "taken").num_experts == N_EXPERTS


def test_safetensors_writer_is_readable_by_the_reference_and_aligned(tmp_path):
    import safetensors.numpy

    tensors = {
        "a.half": np.arange(3, dtype=np.float16),
        "b.float": np.linspace(0, 1, 5, dtype=np.float32).reshape(1, 5),
        "c.long": np.array([2**40, -1], np.int64),
        "d.flag": np.array([True, False, True]),
        "e.empty": np.zeros((0, 4), np.float32),
    }
    write_safetensors(tmp_path / "t.safetensors", tensors, {"format": "pt"})
    ref = safetensors.numpy.load_file(tmp_path / "t.safetensors")
    ours, meta = read_safetensors(tmp_path / "t.safetensors")
    assert meta == {"format": "pt"} and set(ref) == set(ours) == set(tensors)
    for name, value in tensors.items():
        assert ref[name].dtype == value.dtype and ours[name].dtype == value.dtype
        np.testing.assert_array_equal(ref[name], value)
        np.testing.assert_array_equal(ours[name], value)
        assert ours[name].ctypes.data % value.dtype.itemsize == 0 or value.size == 0
    with pytest.raises(TypeError, match="cannot store"):
        write_safetensors(tmp_path / "x.safetensors", {"c": np.zeros(2, np.complex64)})
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(ValueError, match="not a safetensors file"):
        read_safetensors(tmp_path / "junk.safetensors")
