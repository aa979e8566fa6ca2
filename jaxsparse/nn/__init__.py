"""Shared NNX models and a small training loop used by the reproductions."""

from ._models import MLP as MLP
from ._models import SmallCNN as SmallCNN
from ._resnet import BasicBlock as BasicBlock
from ._resnet import ResNet18 as ResNet18
from ._studies import get_params as get_params
from ._studies import mask_updates as mask_updates
from ._studies import oneshot_pruning_study as oneshot_pruning_study
from ._studies import set_params as set_params
from ._train import accuracy as accuracy
from ._train import cross_entropy as cross_entropy
from ._train import evaluate as evaluate
from ._train import fit_classifier as fit_classifier
from ._vit import MLP as ViTMLP
from ._vit import TransformerBlock as TransformerBlock
from ._vit import ViT as ViT

__all__ = [
    "MLP",
    "BasicBlock",
    "ResNet18",
    "SmallCNN",
    "TransformerBlock",
    "ViT",
    "ViTMLP",
    "accuracy",
    "cross_entropy",
    "evaluate",
    "fit_classifier",
    "get_params",
    "mask_updates",
    "oneshot_pruning_study",
    "set_params",
]
