"""k-NN on latent codes: balanced label sampling, k chosen on validation."""

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from vaepriors.evaluation.knn import balanced_indices, knn_accuracy


@pytest.mark.parametrize("n_labels", [100, 600, 37])
def test_balanced_sampling(n_labels):
    y = np.random.default_rng(0).integers(0, 10, 5000)
    idx = balanced_indices(y, n_labels, seed=3)
    counts = np.bincount(y[idx], minlength=10)
    assert len(np.unique(idx)) == len(idx) == n_labels
    assert counts.min() == n_labels // 10 and counts.max() <= n_labels // 10 + 1
    np.testing.assert_array_equal(idx, balanced_indices(y, n_labels, seed=3))
    assert not np.array_equal(idx, balanced_indices(y, n_labels, seed=4))


def test_balanced_sampling_rejects_small_classes():
    with pytest.raises(ValueError):
        balanced_indices(np.array([0] * 50 + [1] * 3), 20, seed=0)


def split_blobs(cluster_std):
    x, y = make_blobs(
        n_samples=3000, centers=5, n_features=8, cluster_std=cluster_std, random_state=1
    )
    return x[:2000], y[:2000], x[2000:2500], y[2000:2500], x[2500:], y[2500:]


def test_accuracy_high_on_separable_blobs():
    result = knn_accuracy(*split_blobs(1.0), n_labels=100, ks=[1, 3, 5], seed=0)
    assert result["test_acc"] > 0.97
    assert set(result["val_acc"]) == {"1", "3", "5"}


def test_k_chosen_on_validation():
    # Overlapping blobs, so that the candidates differ; candidates above n_labels are skipped.
    result = knn_accuracy(*split_blobs(6.0), n_labels=50, ks=[1, 5, 20, 100], seed=0)
    val = {int(k): a for k, a in result["val_acc"].items()}
    assert set(val) == {1, 5, 20}
    assert result["k"] == min(k for k, a in val.items() if a == max(val.values()))
    assert len(set(val.values())) > 1
