#!/usr/bin/env python3
"""Train ResNet-18 on CIFAR-10 with SRigL (or dense/static/SET/RigL) from `configs/srigl_cifar10.py`.

    .venv/bin/python scripts/train_srigl_cifar10.py --data-dir ~/tensorflow_datasets [--set method=rigl]

CIFAR-10 is read with `tfds.data_source` (ArrayRecord; no TensorFlow). Writes a JSON summary to --out.
"""

import argparse
import dataclasses
import json
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from flax import nnx  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

from configs.srigl_cifar10 import SRigLCifar10Config, get_config  # noqa: E402
from jaxsparse import dst  # noqa: E402
from jaxsparse.cli._report import atomic_write_text  # noqa: E402
from jaxsparse.data import load_tfds_arrays  # noqa: E402
from jaxsparse.nn import ResNet18, cross_entropy, get_params, set_params  # noqa: E402

CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
CIFAR_STD = np.array([0.2470, 0.2435, 0.2616], np.float32)


def augment(rng: np.random.Generator, images: np.ndarray) -> np.ndarray:
    """Random 4-pixel-padded crop and horizontal flip (the standard CIFAR augmentation)."""
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)), mode="reflect")
    dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
    out = np.stack([padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])
    flip = rng.random(n) < 0.5
    out[flip] = out[flip, :, ::-1]
    return out


def make_tx(config: SRigLCifar10Config, total_steps: int):
    schedule = optax.cosine_decay_schedule(config.learning_rate, total_steps)
    inner = optax.chain(
        optax.add_decayed_weights(config.weight_decay), optax.sgd(schedule, momentum=config.momentum, nesterov=True)
    )
    key = jax.random.key(config.seed)
    common = dict(sparsity=config.sparsity, key=key, distribution=config.distribution)
    dynamic = dict(
        common, update_every=config.update_every, total_steps=total_steps, end_fraction=config.end_fraction,
        drop_fraction=config.drop_fraction,
    )  # fmt: skip
    if config.method == "dense":
        return inner
    if config.method == "static":
        return dst.static_sparse(inner, **common)
    if config.method == "set":
        return dst.sparse_evolutionary(inner, **dynamic)
    if config.method == "rigl":
        return dst.rigl(inner, **dynamic)
    return dst.srigl(inner, gamma_sal=config.gamma_sal, **dynamic)


def train(config: SRigLCifar10Config, *, data_dir, download: bool, out: pathlib.Path, progress: bool = True) -> dict:
    x_train, y_train = load_tfds_arrays(
        config.dataset, split="train", data_dir=data_dir, download=download, max_examples=config.max_train_examples
    )
    x_test, y_test = load_tfds_arrays(config.dataset, split="test", data_dir=data_dir, download=download)
    x_train = (x_train - CIFAR_MEAN) / CIFAR_STD
    x_test = (x_test - CIFAR_MEAN) / CIFAR_STD
    batch = min(config.batch_size, len(x_train))
    steps_per_epoch = len(x_train) // batch
    total_steps = config.epochs * steps_per_epoch
    model = ResNet18(10, width=config.width, rngs=nnx.Rngs(config.seed))
    tx = make_tx(config, total_steps)
    optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)
    if config.method != "dense":
        set_params(model, dst.apply_initial_masks(get_params(model), nnx.as_pure(optimizer.opt_state)))

    @nnx.jit
    def step(model, optimizer, xb, yb):
        loss, grads = nnx.value_and_grad(lambda m: cross_entropy(m(xb), yb))(model)
        optimizer.update(model, grads)
        return loss

    @nnx.jit
    def predict(model, xb):
        return jnp.argmax(model(xb), -1)

    rng = np.random.default_rng(config.seed)
    start = time.perf_counter()
    history = []
    for epoch in range(config.epochs):
        model.train()
        order = rng.permutation(len(x_train))
        losses = []
        for i in tqdm(range(steps_per_epoch), desc=f"epoch {epoch}", disable=not progress, leave=False):
            idx = order[i * batch : (i + 1) * batch]
            losses.append(step(model, optimizer, jnp.asarray(augment(rng, x_train[idx])), jnp.asarray(y_train[idx])))
        model.eval()
        correct = sum(
            int(jnp.sum(predict(model, jnp.asarray(x_test[j : j + 500])) == y_test[j : j + 500]))
            for j in range(0, len(x_test), 500)
        )
        history.append(
            {"epoch": epoch, "loss": float(np.mean(jax.device_get(losses))), "test_acc": correct / len(x_test)}
        )
    result = {"config": dataclasses.asdict(config), "history": history, "train_time_s": time.perf_counter() - start}
    if config.method != "dense":
        result["masks"] = dst.mask_summary(dst.find_sparse_state(nnx.as_pure(optimizer.opt_state)).masks)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="tensorflow-datasets data_dir with cifar10 prepared")
    parser.add_argument("--download", action="store_true", help="let tensorflow-datasets download and prepare")
    parser.add_argument("--quick", action="store_true", help="1 epoch, width 16, 2048 examples")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field")
    parser.add_argument("--out", default="out/srigl_cifar10.json")
    args = parser.parse_args(argv)
    config = get_config(quick=args.quick)
    fields = {f.name: f for f in dataclasses.fields(config)}
    changes = {}
    for item in args.set:
        key, _, raw = item.partition("=")
        if key not in fields:
            parser.error(f"unknown config field {key!r}")
        current = getattr(config, key)
        changes[key] = (
            raw
            if isinstance(current, str)
            else (int(raw) if isinstance(current, int) or current is None else type(current)(raw))
        )
    try:
        config = dataclasses.replace(config, **changes)
        result = train(config, data_dir=args.data_dir, download=args.download, out=pathlib.Path(args.out))
    except (ValueError, FileNotFoundError) as err:
        print(f"train_srigl_cifar10: error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(result["history"][-1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
