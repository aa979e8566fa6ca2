"""The sparse re-basin experiment: does a lottery-ticket mask transfer to a new init once permuted?

Reference: Adnan, Jain, Sharma, Krishnan, Ioannou, "Sparse Training from Random Initialization: Aligning
Lottery Ticket Masks using Weight Symmetry", ICML 2025, arXiv 2505.05143 (code: calgaryml/sparse-rebasin).
"""

import functools
from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx
from tqdm.auto import tqdm

from jaxsparse import permute
from jaxsparse._checks import check_bool, check_fraction, check_int, check_seed
from jaxsparse.nn import MLP

from ._diversity import ensemble_diversity
from ._imp import iterative_magnitude_pruning
from ._models import VGG, ResNet20, model_activations, model_permutation_spec
from ._train import get_state, predict_logits, set_state, train_classifier

__all__ = ["build_model", "lth_permutation_experiment", "prunable_filter"]

_MODELS = ("mlp", "vgg", "resnet20")
_METHODS = ("lth", "naive", "permuted")


def build_model(
    name: str,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    width: int,
    seed: int,
    hidden: Sequence[int] = (64, 64),
    vgg_channels: Sequence[int] = (16, 32, 64, 64),
    blocks_per_stage: int = 3,
) -> nnx.Module:
    """`"mlp"` (hidden sizes times `width`), `"vgg"` or `"resnet20"` (widths times `width`), seeded."""
    seed = check_seed(seed)
    width = check_int(width, "width", minimum=1)
    if name not in _MODELS:
        raise ValueError(f"model must be one of {_MODELS}, got {name!r}")
    if name != "mlp" and len(input_shape) != 3:
        raise ValueError(f"model {name!r} needs image inputs (H, W, C), got input_shape={input_shape}")
    graphdef, init = _initializer(
        name, tuple(input_shape), num_classes, width, tuple(hidden), tuple(vgg_channels), blocks_per_stage
    )
    return nnx.merge(graphdef, init(jax.random.key(seed)))


@functools.lru_cache(maxsize=16)
def _initializer(name, input_shape, num_classes, width, hidden, vgg_channels, blocks_per_stage):
    """(graphdef, jitted key -> state): eager NNX init compiles every layer's random ops one by one, which is
    slow for ResNets; one jit per architecture gives the same values as eager construction with that seed."""

    def ctor(key):
        rngs = nnx.Rngs(key)
        if name == "mlp":
            return MLP(int(np.prod(input_shape)), [h * width for h in hidden], num_classes, rngs=rngs)
        if name == "vgg":
            return VGG(input_shape[-1], num_classes, channels=vgg_channels, width=width, rngs=rngs)
        return ResNet20(
            num_classes, in_channels=input_shape[-1], width=width, blocks_per_stage=blocks_per_stage, rngs=rngs
        )

    graphdef, _ = nnx.split(nnx.eval_shape(lambda: ctor(jax.random.key(0))))
    return graphdef, jax.jit(lambda key: nnx.as_pure(nnx.split(ctor(key))[1]))


def prunable_filter(path, leaf) -> bool:
    """Conv/Dense kernels (ndim >= 2) except ResNet shortcut convs, as the paper's IMP prunes."""
    names = permute.normalize_path(path)
    return np.ndim(leaf) >= 2 and not any(isinstance(n, str) and n.startswith("shortcut") for n in names)


def _params(model):
    return nnx.as_pure(nnx.state(model, nnx.Param))


def _load_data(dataset: str, model: str, data_dir, max_train: int | None):
    if dataset == "digits":
        from jaxsparse.data import load_digits_split

        split = load_digits_split(seed=0, flatten=model == "mlp")
        return split.x_train, split.y_train, split.x_test, split.y_test, 10
    if dataset == "cifar10":
        from jaxsparse.data import load_tfds_arrays

        x_tr, y_tr = load_tfds_arrays("cifar10", split="train", data_dir=data_dir, max_examples=max_train)
        x_te, y_te = load_tfds_arrays("cifar10", split="test", data_dir=data_dir)
        mean, std = x_tr.mean(axis=(0, 1, 2)), x_tr.std(axis=(0, 1, 2))
        return (x_tr - mean) / std, y_tr, (x_te - mean) / std, y_te, 10
    raise ValueError(f"dataset must be 'digits' or 'cifar10', got {dataset!r}")


def _layer_nnz(mask_tree) -> list[int]:
    return [int(np.sum(m)) for m in jax.tree.leaves(mask_tree, is_leaf=lambda x: x is None) if m is not None]


def _fan_in_multisets(mask_tree) -> list[list[int]]:
    """Per layer, the sorted fan-ins (active inputs) of every output unit."""
    out = []
    for m in jax.tree.leaves(mask_tree, is_leaf=lambda x: x is None):
        if m is not None:
            m = np.asarray(m)
            out.append(sorted(m.reshape(-1, m.shape[-1]).sum(0).tolist()))
    return out


def _pruned_are_zero(model, mask_tree) -> bool:
    flat_p = jax.tree.leaves(_params(model))
    flat_m = jax.tree.leaves(mask_tree, is_leaf=lambda x: x is None)
    return all(m is None or not np.any(np.asarray(p)[~np.asarray(m)]) for p, m in zip(flat_p, flat_m, strict=True))


def _accuracy(logits, labels) -> float:
    return float(np.mean(np.argmax(logits, -1) == labels))


def _mean_std(values) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n": int(v.size)}


def lth_permutation_experiment(
    *,
    model: str = "mlp",
    dataset: str = "digits",
    width: int = 4,
    hidden: Sequence[int] = (64, 64),
    vgg_channels: Sequence[int] = (16, 32, 64, 64),
    blocks_per_stage: int = 3,
    sparsities: Sequence[float] = (0.8, 0.9, 0.95),
    seeds: Sequence[int] = (0, 1, 2),
    dense_steps: int = 2000,
    imp_fraction: float = 0.2,
    imp_retrain_steps: int = 300,
    sparse_steps: int = 2000,
    rewind_step: int = 0,
    batch_size: int = 128,
    learning_rate: float = 0.08,
    imp_learning_rate: float = 0.01,
    imp_rewind_step: int | None = None,
    sparse_learning_rate: float = 0.02,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    matching: str = "weight",
    matching_samples: int = 512,
    ensemble: bool = True,
    data_dir: str | None = None,
    max_train: int | None = None,
    progress: bool = False,
) -> dict:
    """Trains dense A and B from two seeds, finds A's IMP mask, aligns B to A, and sparse-trains from the
    (rewound) inits: LTH = W_A(k) ⊙ m_A, naive = W_B(k) ⊙ m_A, permuted = W_B(k) ⊙ π⁻¹(m_A).

    π aligns B to A (`permute_params(spec, π, B) ≈ A`), so the mask moves into B's basin with π⁻¹. With
    `ensemble`, a second LTH run (another data order) and a second permuted run (from a third dense model
    B2, matched to A) give two-member ensembles whose diversity is reported.

    Args:
      model: "mlp", "vgg" or "resnet20"; dataset: "digits" or "cifar10" (tfds, prepared under data_dir).
      width: width multiplier. hidden / vgg_channels / blocks_per_stage: base architecture.
      sparsities: increasing target sparsities of IMP (one IMP run visits all of them).
      seeds: one A/B pair per seed.
      dense_steps, learning_rate: dense training (SGD momentum, cosine).
      imp_fraction, imp_retrain_steps, imp_learning_rate: IMP rounds (retrain per round).
      imp_rewind_step: None (IMP continues from the current weights, as the paper's code) or k: every IMP
        round restarts from A's step-k weights ⊙ mask.
      sparse_steps, sparse_learning_rate: the sparse runs train `sparse_steps - rewind_step` steps.
      rewind_step: k, the dense-training step whose weights (and BN statistics) the sparse runs start from.
      matching: "weight" (Git Re-Basin) or "activation" (correlation on `matching_samples` training inputs).
      progress: tqdm progress bars.

    Returns:
      dict with "rows" (one per seed, sparsity, method), "summary" (mean/std per sparsity and method), "dense",
      "diversity", "imp_rounds", "matching" and "checks".
    """
    if model not in _MODELS:
        raise ValueError(f"model must be one of {_MODELS}, got {model!r}")
    if matching not in ("weight", "activation"):
        raise ValueError(f"matching must be 'weight' or 'activation', got {matching!r}")
    seeds = tuple(check_seed(s, "seeds") for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be non-empty and distinct, got {seeds}")
    sparsities = tuple(check_fraction(s, "sparsities", allow_zero=False) for s in sparsities)
    if not sparsities or list(sparsities) != sorted(set(sparsities)):
        raise ValueError(f"sparsities must be increasing, got {sparsities}")
    dense_steps = check_int(dense_steps, "dense_steps", minimum=1)
    sparse_steps = check_int(sparse_steps, "sparse_steps", minimum=1)
    imp_retrain_steps = check_int(imp_retrain_steps, "imp_retrain_steps", minimum=0)
    rewind_step = check_int(rewind_step, "rewind_step", minimum=0)
    imp_rewind_step = None if imp_rewind_step is None else check_int(imp_rewind_step, "imp_rewind_step", minimum=0)
    if imp_rewind_step is not None and imp_rewind_step >= dense_steps:
        raise ValueError(f"imp_rewind_step must be < dense_steps, got {imp_rewind_step}")
    if rewind_step >= min(dense_steps, sparse_steps):
        raise ValueError(f"rewind_step must be < dense_steps and sparse_steps, got {rewind_step}")
    matching_samples = check_int(matching_samples, "matching_samples", minimum=2)
    ensemble = check_bool(ensemble, "ensemble")
    x_tr, y_tr, x_te, y_te, num_classes = _load_data(dataset, model, data_dir, max_train)
    batch_size = min(check_int(batch_size, "batch_size", minimum=1), len(x_tr))

    def new_model(seed: int):
        return build_model(
            model,
            input_shape=x_tr.shape[1:],
            num_classes=num_classes,
            width=width,
            seed=seed,
            hidden=hidden,
            vgg_channels=vgg_channels,
            blocks_per_stage=blocks_per_stage,
        )

    def train(net, *, steps, lr, seed, mask_tree=None, checkpoints=(), desc="train"):
        return train_classifier(
            net,
            x_tr,
            y_tr,
            steps=steps,
            batch_size=batch_size,
            learning_rate=lr,
            seed=seed,
            mask_tree=mask_tree,
            momentum=momentum,
            weight_decay=weight_decay,
            checkpoint_steps=checkpoints,
            desc=desc,
        )

    rows, dense, diversity, imp_rounds, matching_info, imp_rewind = [], [], [], [], [], {}
    worst_function_gap, density_ok, fan_in_ok, zeros_ok, imp_ok = 0.0, True, True, True, True
    bar = tqdm(total=len(seeds) * (len(sparsities) + 1), desc="rebasin", disable=not progress)
    for seed in seeds:
        nets, rewinds = {}, {}
        for role, offset in (("A", 0), ("B", 1), ("B2", 2)) if ensemble else (("A", 0), ("B", 1)):
            net = new_model(1000 * seed + offset)
            out = train(
                net,
                steps=dense_steps,
                lr=learning_rate,
                seed=1000 * seed + offset,
                checkpoints=(rewind_step,)
                if role != "A" or imp_rewind_step is None
                else (rewind_step, imp_rewind_step),
                desc=f"dense {role}",
            )
            if role == "A" and imp_rewind_step is not None:
                full = out["checkpoints"][imp_rewind_step]
                imp_rewind[seed] = nnx.as_pure(nnx.state(nnx.merge(nnx.graphdef(net), full), nnx.Param))
            nets[role], rewinds[role] = net, out["checkpoints"][rewind_step]
            dense.append({"seed": seed, "model": role, "accuracy": _accuracy(predict_logits(net, x_te), y_te)})
        spec = model_permutation_spec(nets["A"])
        perms = {}
        for role in [r for r in nets if r != "A"]:
            if matching == "weight":
                res = permute.weight_matching(spec, _params(nets["A"]), _params(nets[role]), seed=seed)
                perms[role] = res.perm
                matching_info.append(
                    {
                        "seed": seed,
                        "model": role,
                        "sweeps": res.sweeps,
                        "objective_start": res.objective_history[0],
                        "objective_end": res.objective_history[-1],
                    }
                )
            else:
                xs = jax.numpy.asarray(x_tr[:matching_samples])
                acts_a = {k: np.asarray(v) for k, v in model_activations(nets["A"], xs)[1].items()}
                acts_b = {k: np.asarray(v) for k, v in model_activations(nets[role], xs)[1].items()}
                perms[role] = permute.activation_matching(acts_a, acts_b)
                matching_info.append({"seed": seed, "model": role})
            moved = sum(int(np.sum(p != np.arange(p.size))) for p in perms[role].values())
            matching_info[-1]["units_moved"] = moved
        # Structural: permuting B (weights + BN statistics) leaves its eval-mode function unchanged.
        probe = x_te[:256]
        before = predict_logits(nets["B"], probe)
        state_b = get_state(nets["B"])
        set_state(nets["B"], permute.permute_params(spec, perms["B"], state_b))
        after = predict_logits(nets["B"], probe)
        set_state(nets["B"], state_b)
        gap = float(np.max(np.abs(before - after)) / (np.max(np.abs(before)) + 1e-12))
        worst_function_gap = max(worst_function_gap, gap)
        # IMP on A: retrain each round from the current weights (the paper's code), or from W_A(k) when
        # imp_rewind_step is set.
        net_a, imp_seed = nets["A"], seed

        def retrain(mask_tree, r, start, net_a=net_a, imp_seed=imp_seed):
            set_state(net_a, start)
            train(
                net_a,
                steps=imp_retrain_steps,
                lr=imp_learning_rate,
                seed=imp_seed + 7919 * (r + 1),
                mask_tree=mask_tree,
                desc=f"IMP round {r}",
            )
            return _params(net_a)

        imp = iterative_magnitude_pruning(
            _params(net_a),
            target_sparsities=sparsities,
            fraction=imp_fraction,
            retrain=retrain if imp_retrain_steps else None,
            rewind_params=None if imp_rewind_step is None else imp_rewind[seed],
            filter_fn=prunable_filter,
        )
        for r in imp["rounds"]:
            imp_rounds.append({"seed": seed, **r})
        bar.update(1)
        for s in sparsities:
            m_a = imp["masks"][s]
            nnz = sum(_layer_nnz(m_a))
            imp_ok &= (
                nnz == min(r["nnz"] for r in imp["rounds"] if r["target"] == s)
                and abs(nnz / imp["total"] - (1 - s)) <= 1.0 / imp["total"] + 1e-9
            )
            m_perm = {r: permute.permute_params(spec, permute.invert_permutation(p), m_a) for r, p in perms.items()}
            for m in m_perm.values():
                density_ok &= _layer_nnz(m) == _layer_nnz(m_a)
                fan_in_ok &= _fan_in_multisets(m) == _fan_in_multisets(m_a)
            runs = {"lth": (rewinds["A"], m_a), "naive": (rewinds["B"], m_a), "permuted": (rewinds["B"], m_perm["B"])}
            if ensemble:
                runs["lth_2"] = (rewinds["A"], m_a)
                runs["permuted_2"] = (rewinds["B2"], m_perm["B2"])
            logits = {}
            for name, (start, mask_tree) in runs.items():
                net = nnx.merge(nnx.graphdef(nets["A"]), start)
                data_seed = 1000 * seed + 500 + (1 if name.endswith("_2") else 0)  # one data order but the _2 runs'
                train(
                    net,
                    steps=sparse_steps - rewind_step,
                    lr=sparse_learning_rate,
                    seed=data_seed,
                    mask_tree=mask_tree,
                    desc=f"{name} s={s}",
                )
                zeros_ok &= _pruned_are_zero(net, mask_tree)
                logits[name] = predict_logits(net, x_te)
                if name in _METHODS:
                    rows.append(
                        {
                            "seed": seed,
                            "sparsity": s,
                            "method": name,
                            "accuracy": _accuracy(logits[name], y_te),
                            "density": nnz / imp["total"],
                        }
                    )
            if ensemble:
                for method in ("lth", "permuted"):
                    d = ensemble_diversity([logits[method], logits[f"{method}_2"]], y_te)
                    diversity.append({"seed": seed, "sparsity": s, "method": method, **d})
            bar.update(1)
    bar.close()
    summary = []
    for s in sparsities:
        for method in _METHODS:
            acc = [r["accuracy"] for r in rows if r["sparsity"] == s and r["method"] == method]
            entry = {"sparsity": s, "method": method, "accuracy": _mean_std(acc)}
            div = [d for d in diversity if d["sparsity"] == s and d["method"] == method]
            if div:
                for key in ("disagreement", "js", "ensemble_accuracy", "ensemble_gain"):
                    entry[key] = _mean_std([d[key] for d in div])
            summary.append(entry)

    def mean_acc(s, method):
        return next(e["accuracy"]["mean"] for e in summary if e["sparsity"] == s and e["method"] == method)

    gaps = {
        s: (mean_acc(s, "permuted") - mean_acc(s, "naive"), mean_acc(s, "lth") - mean_acc(s, "permuted"))
        for s in sparsities
    }
    checks = {
        "permutation_preserves_function_zero_diff": {
            "passed": worst_function_gap <= 1e-4,
            "detail": f"max |logits(B) - logits(π(B))| / max|logits| = {worst_function_gap:.2e} "
            "(eval mode, BN statistics permuted too)",
        },
        "permuted_mask_keeps_layer_density": {
            "passed": bool(density_ok and fan_in_ok),
            "detail": "per-layer nnz and the multiset of per-unit fan-ins of π⁻¹(m_A) equal m_A's",
        },
        "imp_mask_hits_target_density": {
            "passed": bool(imp_ok),
            "detail": f"IMP stops at floor(total·(1-s)) active weights for every s in {list(sparsities)}",
        },
        "pruned_weights_stay_zero": {
            "passed": bool(zeros_ok),
            "detail": "after every sparse run, weights outside the mask are exactly 0",
        },
        "permuted_beats_naive": {
            "passed": all(g[0] > 0 for g in gaps.values()),
            "detail": "; ".join(f"s={s}: permuted - naive = {100 * g[0]:+.2f} pp" for s, g in gaps.items()),
        },
        "permuted_within_1pp_of_lth": {
            "passed": all(g[1] <= 0.01 for g in gaps.values()),
            "detail": "; ".join(f"s={s}: LTH - permuted = {100 * g[1]:+.2f} pp" for s, g in gaps.items()),
        },
    }
    return {
        "rows": rows,
        "summary": summary,
        "dense": dense,
        "diversity": diversity,
        "imp_rounds": imp_rounds,
        "matching": matching_info,
        "checks": checks,
        "config": {
            "model": model,
            "dataset": dataset,
            "width": width,
            "hidden": list(hidden),
            "matching": matching,
            "rewind_step": rewind_step,
            "imp_rewind_step": imp_rewind_step,
            "seeds": list(seeds),
            "sparsities": list(sparsities),
        },
    }
