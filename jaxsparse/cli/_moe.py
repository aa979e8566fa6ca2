"""`jaxsparse moe prune`: one-shot expert pruning (REAP and baselines) or merging of a Hugging Face MoE checkpoint.

    jaxsparse moe prune --checkpoint DIR --calib FILE --method reap --ratio 0.5 --out DIR [--max-tokens N]
                        [--seq-len L] [--batch-size B] [--seed S] [--expert-parallel EP --rounding up|down]
                        [--preserve-super-experts] [--eval-loss] [--overwrite]

Loads a Mixtral / Qwen3-MoE / OLMoE safetensors checkpoint, runs the calibration text through a JAX forward pass,
accumulates per-expert statistics over every MoE layer, prunes int(E * ratio) experts per layer (or merges down to
the same count with HC-SMoE / M-SMoE) and writes a checkpoint with the config's expert count updated. The output is
written atomically next to --out; the input directory is never modified.

Calibration file: JSONL with {"input_ids": [...]} (pre-tokenised, used as is) or {"text": ...} per line, or plain
text (one document). Text is tokenised with the checkpoint's tokenizer.json when the optional `tokenizers` package is
installed; otherwise a byte-level mapping (token id = byte value, clipped to the vocabulary) is used with a warning,
which is only good for smoke tests: pre-tokenise real calibration data.
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np

__all__ = ["add_parser", "run"]

_MERGES = ("hc_smoe", "m_smoe")
# jaxsparse.moe.PRUNE_METHODS without its alias "weighted_frequency_sum", spelled out here so that parsing and
# --help never import JAX; tests/moe/test_cli_moe.py keeps the two lists equal.
_PRUNES = (
    "reap",
    "frequency",
    "soft_frequency",
    "ean_sum",
    "ean_mean",
    "weighted_ean_sum",
    "max_activations",
    "ean_ca",
    "random",
)
METHODS = _PRUNES + _MERGES


class _BadInput(ValueError):
    """A bad argument or input file: one line on stderr, exit status 2."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds `moe` (with its `prune` subcommand) to the `jaxsparse` subparsers; returns the `moe` parser."""
    moe = subparsers.add_parser(
        "moe", help="mixture-of-experts tools (expert pruning of HF checkpoints)", description="MoE tools."
    )
    moe_sub = moe.add_subparsers(dest="moe_command")
    prune = moe_sub.add_parser(
        "prune",
        help="prune (REAP and baselines) or merge the experts of a Mixtral / Qwen3-MoE / OLMoE checkpoint",
        description=(
            "Calibrate on a JSONL ({'input_ids': [...]} or {'text': ...} per line) or plain-text file, then prune "
            "int(E * ratio) experts per MoE layer (or merge down to the same count) and write a checkpoint with the "
            "expert count updated. The output is written atomically; the input is never modified."
        ),
    )
    prune.add_argument("--checkpoint", required=True, help="input checkpoint directory (never modified)")
    prune.add_argument("--calib", required=True, help="calibration data: JSONL (input_ids or text) or plain text")
    prune.add_argument("--method", default="reap", choices=METHODS, help="criterion or merge method (default reap)")
    prune.add_argument("--ratio", type=float, default=0.5, help="fraction of experts removed per layer, in [0, 1)")
    prune.add_argument("--out", required=True, help="output checkpoint directory (must not exist unless --overwrite)")
    prune.add_argument("--max-tokens", type=int, default=65536, help="calibration tokens used (default 65536)")
    prune.add_argument("--seq-len", type=int, default=512, help="calibration sequence length (default 512)")
    prune.add_argument("--batch-size", type=int, default=8, help="sequences per forward pass (default 8)")
    prune.add_argument("--seed", type=int, default=0, help="PRNG seed for --method random")
    prune.add_argument(
        "--expert-parallel",
        type=int,
        default=1,
        help="expert-parallel size the pruned model will be served with: E' must be a multiple of it (default 1)",
    )
    prune.add_argument(
        "--rounding",
        default="error",
        choices=("error", "up", "down"),
        help="when E' is not a multiple of --expert-parallel: refuse (default), keep more, or keep fewer experts",
    )
    prune.add_argument("--preserve-super-experts", action="store_true", help="never prune super experts")
    prune.add_argument("--eval-loss", action="store_true", help="report next-token loss before/after on the calib set")
    prune.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    prune.set_defaults(func=run)

    def _help(args):
        del args
        moe.print_help()
        return 2

    moe.set_defaults(func=_help)
    return moe


def _byte_tokens(text: str, vocab: int, warned: list) -> list:
    if not warned:
        print(
            "jaxsparse moe prune: warning: no tokenizer available; using a byte-level mapping (id = byte value, "
            f"clipped to vocab_size-1={vocab - 1}). Pre-tokenise the calibration data for real use.",
            file=sys.stderr,
        )
        warned.append(True)
    return [min(b, vocab - 1) for b in text.encode("utf-8")]


def _text_tokenizer(checkpoint: pathlib.Path, vocab: int):
    path = checkpoint / "tokenizer.json"
    try:
        from tokenizers import Tokenizer  # optional: not a jaxsparse dependency
    except ImportError:
        Tokenizer = None
    if Tokenizer is not None and path.is_file():
        tok = Tokenizer.from_file(str(path))
        return lambda text: [i for i in tok.encode(text).ids if i < vocab]
    warned: list = []
    return lambda text: _byte_tokens(text, vocab, warned)


def read_calibration(path, checkpoint, vocab: int) -> list:
    """Token-id lists, one per document, from a JSONL (input_ids / text) or plain-text file."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise _BadInput(f"--calib {str(path)!r} is not a file")
    raw = path.read_text(encoding="utf-8")
    lines = [ln for ln in raw.splitlines() if ln.strip()]
    if not lines:
        raise _BadInput(f"--calib {str(path)!r} is empty")
    try:
        first = json.loads(lines[0])
    except json.JSONDecodeError:
        first = None
    if not isinstance(first, dict):
        return [_text_tokenizer(pathlib.Path(checkpoint), vocab)(raw)]
    tokenize = None
    docs = []
    for n, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise _BadInput(f"--calib {path}: line {n} is not valid JSON: {err}") from None
        if not isinstance(record, dict):
            raise _BadInput(f"--calib {path}: line {n} must be a JSON object")
        if "input_ids" in record:
            ids = record["input_ids"]
            if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                raise _BadInput(f"--calib {path}: line {n}: input_ids must be a list of ints")
            bad = [i for i in ids if not 0 <= i < vocab]
            if bad:
                raise _BadInput(f"--calib {path}: line {n}: input_ids {bad[:3]} outside [0, vocab_size={vocab})")
            docs.append(ids)
        elif isinstance(record.get("text"), str):
            tokenize = tokenize or _text_tokenizer(pathlib.Path(checkpoint), vocab)
            docs.append(tokenize(record["text"]))
        else:
            raise _BadInput(f"--calib {path}: line {n} has neither 'input_ids' nor a string 'text'")
    return docs


def pack_batches(docs, *, seq_len: int, max_tokens: int, batch_size: int) -> list:
    """(token_ids [B, L], mask [B, L]) batches: each document cut into rows of seq_len (no cross-document
    attention), the last row right-padded; at most max_tokens real tokens; the last batch padded with empty rows so
    every batch has the same shape (one compilation)."""
    rows, used = [], 0
    for doc in docs:
        for start in range(0, len(doc), seq_len):
            chunk = doc[start : start + seq_len][: max_tokens - used]
            if chunk:
                rows.append(chunk)
                used += len(chunk)
            if used >= max_tokens:
                break
        if used >= max_tokens:
            break
    if not rows:
        raise _BadInput("the calibration file holds no tokens")
    batches = []
    for b in range(0, len(rows), batch_size):
        ids = np.zeros((batch_size, seq_len), np.int32)
        mask = np.zeros((batch_size, seq_len), np.int32)
        for r, row in enumerate(rows[b : b + batch_size]):
            ids[r, : len(row)] = row
            mask[r, : len(row)] = 1
        batches.append((ids, mask))
    return batches


def _calibrate(weights, batches, dense_outputs: bool):
    from tqdm import tqdm

    from jaxsparse.moe._hf_model import hf_moe_observe

    totals = None
    for ids, mask in tqdm(batches, desc="calibrating", unit="batch", file=sys.stderr):
        stats = [s.to_host() for s in hf_moe_observe(weights, ids, mask, dense_outputs=dense_outputs)]
        totals = stats if totals is None else [t.combine(s) for t, s in zip(totals, stats, strict=True)]
    return totals


def _mean_loss(weights, batches) -> float:
    from jaxsparse.moe._hf_model import hf_moe_nll

    total, count = 0.0, 0
    for ids, mask in batches:
        nll, n = hf_moe_nll(weights, ids, mask)
        total, count = total + nll, count + n
    return total / max(count, 1)


def _prune(args) -> dict:
    import jax

    from jaxsparse.moe import num_experts_after_pruning, prune_layers
    from jaxsparse.moe._checkpoint import load_hf_moe, save_hf_moe
    from jaxsparse.moe._hf_model import prepare_hf_moe
    from jaxsparse.moe._merge import hc_smoe_clusters, m_smoe_clusters, merge_hc_smoe, merge_m_smoe

    for value, name, low in ((args.max_tokens, "--max-tokens", 1), (args.seq_len, "--seq-len", 2)):
        if value < low:
            raise _BadInput(f"{name} must be >= {low}, got {value}")
    if args.batch_size < 1:
        raise _BadInput(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 0.0 <= args.ratio < 1.0:
        raise _BadInput(f"--ratio must be in [0, 1), got {args.ratio}")
    out = pathlib.Path(args.out)
    if out.exists() and not args.overwrite:
        raise _BadInput(f"--out {str(out)!r} exists; pass --overwrite to replace it")
    start = time.perf_counter()
    ckpt = load_hf_moe(args.checkpoint)
    if not ckpt.layers:
        raise _BadInput(f"checkpoint {args.checkpoint} has no MoE layers")
    n_exp, top_k = ckpt.num_experts, ckpt.top_k
    # validates ratio vs top_k and the expert-parallel divisibility (E' % EP == 0, rounded as asked)
    num_keep = num_experts_after_pruning(
        n_exp, args.ratio, top_k=top_k, expert_parallel=args.expert_parallel, rounding=args.rounding
    )
    vocab = int(ckpt.config["vocab_size"])
    docs = read_calibration(args.calib, args.checkpoint, vocab)
    batches = pack_batches(docs, seq_len=args.seq_len, max_tokens=args.max_tokens, batch_size=args.batch_size)
    n_tokens = int(sum(m.sum() for _, m in batches))
    print(
        f"jaxsparse moe prune: {ckpt.architecture}, {len(ckpt.layers)} MoE layers x {n_exp} experts (top-{top_k}), "
        f"{n_tokens} calibration tokens in {len(batches)} batches; {args.method} to {num_keep} experts per layer",
        file=sys.stderr,
    )
    weights = prepare_hf_moe(ckpt)
    stats = _calibrate(weights, batches, dense_outputs=args.method == "hc_smoe")
    summary = {
        "method": args.method,
        "ratio": args.ratio,
        "source": str(pathlib.Path(args.checkpoint).absolute()),
        "calibration_tokens": n_tokens,
        "num_experts_before": n_exp,
        "num_experts_after": num_keep,
        "moe_layer_ids": list(ckpt.moe_layer_ids),
    }
    if args.method in _MERGES:
        if args.method == "hc_smoe":
            layers = [merge_hc_smoe(p, s, num_keep) for p, s in zip(ckpt.layers, stats, strict=True)]
            summary["clusters"] = [hc_smoe_clusters(s, num_keep).tolist() for s in stats]
        else:
            layers = [merge_m_smoe(p, s, num_keep) for p, s in zip(ckpt.layers, stats, strict=True)]
            summary["clusters"] = [m_smoe_clusters(s, num_keep)[0].tolist() for s in stats]
    else:
        layers, keeps = prune_layers(
            ckpt.layers,
            stats,
            method=args.method,
            ratio=args.ratio,
            top_k=top_k,
            expert_parallel=args.expert_parallel,
            rounding=args.rounding,
            key=jax.random.key(args.seed) if args.method == "random" else None,
            preserve_super_experts=args.preserve_super_experts,
        )
        summary["kept_experts"] = [np.asarray(k).tolist() for k in keeps]
    pruned = ckpt.with_layers(layers)
    if args.eval_loss:
        summary["calib_loss_before"] = _mean_loss(weights, batches)
        summary["calib_loss_after"] = _mean_loss(prepare_hf_moe(pruned), batches)
    extra = {"jaxsparse_moe_prune.json": json.dumps(summary, indent=2) + "\n"}
    written = save_hf_moe(pruned, out, overwrite=args.overwrite, extra_files=extra)
    summary["seconds"] = time.perf_counter() - start
    summary["out"] = str(written)
    return summary


def run(args) -> int:
    """Runs `jaxsparse moe prune`; returns the exit status (2 for bad arguments or inputs, one line on stderr)."""
    try:
        summary = _prune(args)
    except (ValueError, TypeError) as err:
        print(f"jaxsparse moe prune: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, permissions: nothing was written (the save is atomic)
        print(f"jaxsparse moe prune: error: {err}", file=sys.stderr)
        return 1
    if "kept_experts" in summary:
        for lid, kept in zip(summary["moe_layer_ids"], summary["kept_experts"], strict=True):
            print(f"layer {lid}: kept experts {kept}")
    else:
        for lid, labels in zip(summary["moe_layer_ids"], summary["clusters"], strict=True):
            print(f"layer {lid}: clusters {labels}")
    if "calib_loss_before" in summary:
        print(f"calibration loss: {summary['calib_loss_before']:.4f} -> {summary['calib_loss_after']:.4f}")
    print(
        f"wrote {summary['out']} ({summary['num_experts_before']} -> {summary['num_experts_after']} experts per layer)"
    )
    return 0
