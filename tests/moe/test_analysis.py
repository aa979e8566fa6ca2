"""subspace_spread (functional-subspace-collapse measurement) against scikit-learn PCA and exact cases."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from jaxsparse.moe._analysis import plot_subspaces, subspace_spread


@pytest.fixture(scope="module")
def outputs():
    rng = np.random.default_rng(0)
    return rng.standard_normal((200, 6)) @ rng.standard_normal((6, 6)) + 3.0


def test_matches_scikit_learn_pca(outputs):
    got = subspace_spread(outputs, n_components=3)
    pca = PCA(n_components=3).fit(outputs)
    np.testing.assert_allclose(got["explained_variance_ratio"], pca.explained_variance_ratio_, rtol=1e-10)
    np.testing.assert_allclose(got["pc_std"], pca.transform(outputs).std(axis=0, ddof=1), rtol=1e-10)
    np.testing.assert_allclose(got["total_variance"], outputs.var(axis=0, ddof=1).sum(), rtol=1e-12)
    eig = np.linalg.eigvalsh(np.cov(outputs.T))
    np.testing.assert_allclose(got["effective_rank"], eig.sum() ** 2 / np.sum(eig**2), rtol=1e-10)
    np.testing.assert_allclose(got["mean_norm"], np.linalg.norm(outputs, axis=1).mean(), rtol=1e-12)
    radius = np.linalg.norm(pca.transform(outputs), axis=1).mean()
    assert got["pc_radius"] == pytest.approx(radius, rel=1e-10)


def test_contraction_against_a_reference(outputs):
    mean = outputs.mean(axis=0)
    shrunk = mean + 0.5 * (outputs - mean)  # a layer whose outputs contract by half around the same centre
    got = subspace_spread(shrunk, reference=outputs)
    assert got["variance_ratio"] == pytest.approx(0.25, rel=1e-12)
    np.testing.assert_allclose(got["pc_std_ratio"], [0.5, 0.5], rtol=1e-12)
    same = subspace_spread(outputs, reference=outputs)
    assert same["variance_ratio"] == pytest.approx(1.0) and same["pc_std"] == subspace_spread(outputs)["pc_std"]
    rank_one = np.outer(np.linspace(-1, 1, 50), np.arange(1.0, 7.0))
    assert subspace_spread(rank_one)["effective_rank"] == pytest.approx(1.0, rel=1e-9)
    collapsed = subspace_spread(np.ones((10, 6)), reference=outputs)
    assert (
        collapsed["total_variance"] == 0.0 and collapsed["effective_rank"] == 0.0 and collapsed["variance_ratio"] == 0
    )


def test_plot_and_bad_input(outputs, tmp_path):
    path = tmp_path / "pca.png"
    plot_subspaces({"original": outputs, "merged": outputs * 0.5}, path, title="layer 0")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"outputs must be \[T, d\] with T >= 2"):
        subspace_spread(np.ones(5))
    with pytest.raises(ValueError, match="outputs must be finite"):
        subspace_spread(np.full((3, 2), np.nan))
    with pytest.raises(ValueError, match=r"n_components must be <= min\(T, d\)=6"):
        subspace_spread(outputs, n_components=7)
    with pytest.raises(ValueError, match="reference must have d=6 columns"):
        subspace_spread(outputs, reference=np.ones((4, 3)))
    with pytest.raises(ValueError, match="reference 'x' is not one of"):
        plot_subspaces({"a": outputs}, path, reference="x")
