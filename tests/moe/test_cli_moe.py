"""`jaxsparse moe prune` end to end on tiny checkpoints, through the subcommand's own parser."""

import argparse
import json

import numpy as np
import pytest

from jaxsparse.cli._moe import add_parser, pack_batches
from jaxsparse.moe._checkpoint import load_hf_moe
from jaxsparse.moe._hf_model import hf_moe_forward

from ._hf_fixtures import N_EXPERTS, TOP_K, VOCAB, load_all, make_checkpoint, tiny_config, tree_hash
from .test_hf_model import _np_reference

DOCS = [list(range(3, 13)), [(7 * i) % VOCAB for i in range(20)], [60, 61, 62, 63, 1]]


def _cli(argv):
    parser = argparse.ArgumentParser(prog="jaxsparse")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def _args(src, calib, out, *extra):
    return ["moe", "prune", "--checkpoint", str(src), "--calib", str(calib), "--out", str(out), *extra]


@pytest.fixture(scope="module")
def mixtral(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixtral")
    src = make_checkpoint(root / "in", "mixtral")
    calib = root / "calib.jsonl"
    calib.write_text("".join(json.dumps({"input_ids": d}) + "\n" for d in DOCS))
    return root, src, calib


def _np_reap_keep(src, docs, seq_len, num_keep):
    """REAP kept sets from the float64 numpy reference forward (independent of jaxsparse.moe)."""
    cfg, tensors = load_all(src)
    n_layers = cfg["num_hidden_layers"]
    num = np.zeros((n_layers, N_EXPERTS))
    cnt = np.zeros((n_layers, N_EXPERTS))
    for doc in docs:
        for start in range(0, len(doc), seq_len):
            _, inputs = _np_reference(cfg, tensors, np.array(doc[start : start + seq_len]))
            for layer, x in enumerate(inputs):
                blk = f"model.layers.{layer}.block_sparse_moe"
                t = {k: v.astype(np.float64) for k, v in tensors.items() if k.startswith(blk)}
                logits = x @ t[f"{blk}.gate.weight"].T
                probs = np.exp(logits - logits.max(-1, keepdims=True))
                probs /= probs.sum(-1, keepdims=True)
                for r in range(x.shape[0]):
                    top = np.argsort(-probs[r], kind="stable")[:TOP_K]
                    gates = probs[r, top] / probs[r, top].sum()  # Mixtral renormalises
                    for g, e in zip(gates, top, strict=True):
                        a = x[r] @ t[f"{blk}.experts.{e}.w1.weight"].T
                        b = x[r] @ t[f"{blk}.experts.{e}.w3.weight"].T
                        f = (a / (1 + np.exp(-a)) * b) @ t[f"{blk}.experts.{e}.w2.weight"].T
                        num[layer, e] += g * np.linalg.norm(f)
                        cnt[layer, e] += 1
    reap = np.where(cnt > 0, num / np.maximum(cnt, 1), 0.0)
    return [sorted(np.argsort(-s, kind="stable")[:num_keep].tolist()) for s in reap]


def test_reap_prune_end_to_end(mixtral, capsys):
    root, src, calib = mixtral
    before = tree_hash(src)
    out = root / "reap50"
    assert _cli(_args(src, calib, out, "--ratio", "0.5", "--seq-len", "8", "--batch-size", "2")) == 0
    assert tree_hash(src) == before
    printed = capsys.readouterr().out
    assert "6 -> 3 experts per layer" in printed
    summary = json.loads((out / "jaxsparse_moe_prune.json").read_text())
    assert summary["calibration_tokens"] == sum(len(d) for d in DOCS)
    assert summary["kept_experts"] == _np_reap_keep(src, DOCS, 8, 3)
    cfg, t_out = load_all(out)
    _, t_in = load_all(src)
    assert cfg["num_local_experts"] == 3 and cfg["num_experts_per_tok"] == TOP_K
    for layer, kept in enumerate(summary["kept_experts"]):
        blk = f"model.layers.{layer}.block_sparse_moe"
        np.testing.assert_array_equal(t_out[f"{blk}.gate.weight"], t_in[f"{blk}.gate.weight"][kept])
        for new, old in enumerate(kept):
            for w in ("w1", "w2", "w3"):
                np.testing.assert_array_equal(
                    t_out[f"{blk}.experts.{new}.{w}.weight"], t_in[f"{blk}.experts.{old}.{w}.weight"]
                )
        assert f"{blk}.experts.3.w1.weight" not in t_out
    for name in t_in:
        if ".block_sparse_moe." not in name:
            assert t_out[name].tobytes() == t_in[name].tobytes()
    pruned = load_hf_moe(out)  # the loader accepts it, and it runs
    logits, _ = hf_moe_forward(pruned, np.array([DOCS[0]]))
    assert logits.shape == (1, len(DOCS[0]), VOCAB)


def test_expert_parallel_rounding(mixtral):
    root, src, calib = mixtral
    out = root / "ep2"  # 6 experts, ratio 0.5 -> E'=3, rounded down to the EP=2 multiple 2 (= top_k)
    argv = _args(src, calib, out, "--ratio", "0.5", "--seq-len", "8", "--batch-size", "2")
    assert _cli([*argv, "--expert-parallel", "2", "--rounding", "down"]) == 0
    summary = json.loads((out / "jaxsparse_moe_prune.json").read_text())
    assert summary["num_experts_after"] == 2 and all(len(k) == 2 for k in summary["kept_experts"])
    assert load_all(out)[0]["num_local_experts"] == 2


def test_zero_ratio_writes_an_identical_checkpoint(mixtral, capsys):
    root, src, calib = mixtral
    out = root / "zero"
    assert _cli(_args(src, calib, out, "--ratio", "0", "--seq-len", "8", "--batch-size", "2", "--eval-loss")) == 0
    summary = json.loads((out / "jaxsparse_moe_prune.json").read_text())
    assert summary["calib_loss_after"] == summary["calib_loss_before"] > 0  # the same model, the same loss
    assert "calibration loss:" in capsys.readouterr().out
    cfg_in, t_in = load_all(src)
    cfg_out, t_out = load_all(out)
    assert cfg_out == cfg_in
    assert {k: v.tobytes() for k, v in t_out.items()} == {k: v.tobytes() for k, v in t_in.items()}


@pytest.mark.parametrize(
    ("arch", "method", "calib_kind"),
    [("qwen3_moe", "frequency", "text_jsonl"), ("olmoe", "hc_smoe", "plain"), ("olmoe", "m_smoe", "ids")],
)
def test_other_layouts_and_methods(tmp_path, capsys, arch, method, calib_kind):
    src = make_checkpoint(tmp_path / "in", arch)
    before = tree_hash(src)
    calib = tmp_path / "calib"
    text = "def f(x):\n    return x + 1\n"
    if calib_kind == "text_jsonl":
        calib.write_text(json.dumps({"text": text}) + "\n" + json.dumps({"text": text * 2}) + "\n")
    elif calib_kind == "plain":
        calib.write_text(text * 3)
    else:
        calib.write_text("".join(json.dumps({"input_ids": d}) + "\n" for d in DOCS))
    out = tmp_path / "out"
    assert (
        _cli(_args(src, calib, out, "--method", method, "--ratio", "0.34", "--seq-len", "16", "--max-tokens", "40"))
        == 0
    )
    assert tree_hash(src) == before
    captured = capsys.readouterr()
    if calib_kind != "ids":
        assert "byte-level mapping" in captured.err
    cfg, _ = load_all(out)
    assert cfg["num_experts"] == 4  # 6 - int(6 * 0.34)
    ckpt = load_hf_moe(out)
    assert ckpt.num_experts == 4 and all(p.w_gate.shape[0] == 4 for p in ckpt.layers)
    summary = json.loads((out / "jaxsparse_moe_prune.json").read_text())
    assert summary["calibration_tokens"] == (35 if calib_kind == "ids" else 40)  # DOCS hold 35 tokens
    if method in ("hc_smoe", "m_smoe"):
        assert all(sorted(set(c)) == [0, 1, 2, 3] for c in summary["clusters"])


def test_pack_batches_masks_and_caps():
    batches = pack_batches(DOCS, seq_len=8, max_tokens=27, batch_size=2)
    masks = np.concatenate([m for _, m in batches])
    ids = np.concatenate([i for i, _ in batches])
    assert masks.sum() == 27 and all(i.shape == (2, 8) for i, _ in batches)
    np.testing.assert_array_equal(ids[0], DOCS[0][:8])
    np.testing.assert_array_equal(masks[1], [1, 1, 0, 0, 0, 0, 0, 0])  # document 0's tail, right-padded
    np.testing.assert_array_equal(ids[1, :2], DOCS[0][8:])


def test_bad_input_exits_2_with_one_line(mixtral, tmp_path, capsys):
    _, src, calib = mixtral

    def fails(argv, match):
        assert _cli(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and match in err[0], err

    fails(_args(src, calib, tmp_path / "o", "--ratio", "1.0"), "--ratio must be in [0, 1)")
    fails(_args(src, calib, tmp_path / "o", "--ratio", "0.9"), "leaving E'=1 < top_k=2")
    fails(_args(src, calib, tmp_path / "o", "--expert-parallel", "2"), "is not divisible by the expert-parallel")
    fails(_args(src, tmp_path / "none.jsonl", tmp_path / "o"), "is not a file")
    (tmp_path / "taken").mkdir()
    fails(_args(src, calib, tmp_path / "taken"), "exists; pass --overwrite")
    fails(_args(src, calib, src), "exists; pass --overwrite")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"input_ids": [1, 2, 999]}) + "\n")
    fails(_args(src, bad, tmp_path / "o"), "outside [0, vocab_size=64)")
    bad.write_text(json.dumps({"ids": [1]}) + "\n")
    fails(_args(src, bad, tmp_path / "o"), "neither 'input_ids' nor a string 'text'")
    broken = tmp_path / "broken"
    make_checkpoint(broken, "mixtral", n_shards=1)
    cfg = tiny_config("mixtral")
    (broken / "config.json").write_text(json.dumps({**cfg, "num_local_experts": 8}))
    fails(_args(broken, calib, tmp_path / "o"), "but config says num_local_experts=8")
    assert not (tmp_path / "o").exists()


def test_cli_methods_are_the_library_criteria():
    from jaxsparse.cli import _moe
    from jaxsparse.moe import PRUNE_METHODS

    assert set(_moe._PRUNES) == set(PRUNE_METHODS) - {"weighted_frequency_sum"}  # the alias of soft_frequency
