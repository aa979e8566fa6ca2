"""The CIFAR-10 ResNet-18 SRigL script runs end to end on tfds mock data (no download, no TensorFlow)."""

import json
import sys

import numpy as np
import pytest

sys.path.insert(0, ".")


@pytest.mark.parametrize("method", ["srigl"])
def test_script_trains_on_mock_cifar10(tmp_path, method):
    tfds = pytest.importorskip("tensorflow_datasets")
    from scripts import train_srigl_cifar10 as script

    out = tmp_path / "result.json"
    with tfds.testing.mock_data(num_examples=16):
        status = script.main(
            ["--quick", "--set", "width=4", "--set", "batch_size=8", "--set", f"method={method}",
             "--set", "update_every=1", "--out", str(out)]
        )  # fmt: skip
    assert status == 0
    result = json.loads(out.read_text())
    assert result["config"]["method"] == method
    assert len(result["history"]) == 1 and np.isfinite(result["history"][0]["loss"])
    assert 0.0 <= result["history"][0]["test_acc"] <= 1.0
    # SRigL kept constant fan-in on every sparse conv after its mask update at step 1.
    assert result["masks"] and all(len(s["fan_ins"]) == 1 for s in result["masks"].values())


def test_script_rejects_bad_config(tmp_path, capsys):
    from scripts import train_srigl_cifar10 as script

    assert script.main(["--quick", "--set", "sparsity=1.5", "--out", str(tmp_path / "r.json")]) == 2
    assert "sparsity" in capsys.readouterr().err
