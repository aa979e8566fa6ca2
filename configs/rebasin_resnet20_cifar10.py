"""Sparse re-basin with ResNet-20 (width multiplier) on CIFAR-10, the paper's main setting; for a GPU.

CIFAR-10 is read through `tfds.data_source` (`jaxsparse.data.load_tfds_arrays`): prepare it once in ArrayRecord
format and pass `data_dir`; nothing is downloaded. Run it with
`jaxsparse.cli._repro_rebasin.run(get_config(), out_dir)` (the same runner as the digits reproduction).
Steps follow the paper's schedule at batch 128 (390 steps per epoch): dense 200 epochs, IMP retrain 50 epochs
per round, sparse runs 200 epochs minus the rewind point (epoch 0 here; the paper also uses 5..100).
Paper reference (repo notebook, ResNet-20 x4, 97% sparsity, rewind 75-100): LTH ~95.0, naive ~91.9,
permuted ~94.3.
"""

from configs.rebasin import RebasinConfig

_STEPS_PER_EPOCH = 390


def get_config(quick: bool = False) -> RebasinConfig:
    if quick:  # a smoke run: a fraction of CIFAR-10, a few epochs, one seed
        return RebasinConfig(
            model="resnet20",
            dataset="cifar10",
            width=1,
            sparsities=(0.8,),
            seeds=(0,),
            dense_steps=2 * _STEPS_PER_EPOCH,
            imp_retrain_steps=_STEPS_PER_EPOCH // 2,
            sparse_steps=2 * _STEPS_PER_EPOCH,
            max_train=8192,
            ensemble=False,
        )
    return RebasinConfig(
        model="resnet20",
        dataset="cifar10",
        width=4,
        sparsities=(0.8, 0.9, 0.95, 0.97),
        seeds=(0, 1, 2),
        dense_steps=200 * _STEPS_PER_EPOCH,
        imp_retrain_steps=50 * _STEPS_PER_EPOCH,
        sparse_steps=200 * _STEPS_PER_EPOCH,
        learning_rate=0.08,
        imp_learning_rate=0.01,
        sparse_learning_rate=0.02,
    )
