"""Shared teacher signals of the tiny transformer double (computed once per test worker)."""

import numpy as np
import pytest

from jaxsparse import sharing

from ._double import images, tiny_transformer

GROUPS = [[0, 1], [2, 3]]  # stage widths 8 and 16
WIDTHS = [8, 16]


@pytest.fixture(scope="session")
def teacher():
    model = tiny_transformer()
    x = images()
    logits = np.asarray(model(x))
    inputs, outputs = sharing.cache_block_io(model, x, batch_size=12)  # 12 does not divide 32: a short batch
    return {"images": x, "logits": logits, "inputs": inputs, "outputs": outputs}
