"""Hungarian accuracy against brute force, and the clustering routines on separable blobs."""

import itertools

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from vaepriors.evaluation.clustering import (
    clustering_scores,
    contingency,
    hungarian_accuracy,
    kmeans_labels,
    pca_gmm,
    pixel_kmeans,
)


def brute_force_accuracy(y_true, y_pred):
    """Best one-to-one cluster-to-class mapping by enumerating every permutation of a square,
    zero-padded contingency table (padding rows/columns are the unmatched clusters or classes)."""
    table = contingency(y_true, y_pred)
    size = max(table.shape)
    square = np.zeros((size, size), dtype=np.int64)
    square[: table.shape[0], : table.shape[1]] = table
    best = max(
        square[np.arange(size), list(perm)].sum() for perm in itertools.permutations(range(size))
    )
    return best / len(y_true)


@pytest.mark.parametrize("case", range(60))
def test_hungarian_matches_brute_force(case):
    rng = np.random.default_rng(case)
    k_true, k_pred = rng.integers(1, 6, size=2)
    n = int(rng.integers(1, 40))
    y_true = rng.integers(0, k_true, n)
    # Arbitrary label values (negative, sparse) must not matter.
    y_pred = rng.choice(rng.choice(np.arange(-7, 50), k_pred, replace=False), n)
    assert hungarian_accuracy(y_true, y_pred) == pytest.approx(brute_force_accuracy(y_true, y_pred))


def test_perfect_and_permuted_labels_score_one():
    y = np.repeat(np.arange(5), 7)
    permuted = np.array([3, 0, 4, 1, 2])[y] + 100
    for pred in (y, permuted):
        assert clustering_scores(y, pred) == pytest.approx({"acc": 1.0, "nmi": 1.0, "ari": 1.0})


def test_surplus_clusters_count_as_errors():
    # Splitting a class in two: majority vote would give 1.0, one-to-one mapping cannot.
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    y_pred = np.array([0, 0, 2, 2, 1, 1, 1, 1])
    assert hungarian_accuracy(y_true, y_pred) == 0.75


@pytest.fixture(scope="module")
def blobs():
    x, y = make_blobs(n_samples=300, centers=4, n_features=20, cluster_std=1.5, random_state=0)
    return x, y


@pytest.mark.parametrize("spherical", [False, True])
def test_kmeans_beats_chance(blobs, spherical):
    x, y = blobs
    labels = kmeans_labels(x, 4, n_init=10, seed=0, spherical=spherical)
    assert clustering_scores(y, labels)["acc"] > 0.9
    np.testing.assert_array_equal(
        labels, kmeans_labels(x, 4, n_init=10, seed=0, spherical=spherical)
    )


def test_spherical_kmeans_ignores_row_length(blobs):
    x, _ = blobs
    scale = np.random.default_rng(0).uniform(0.1, 10.0, size=(len(x), 1))
    np.testing.assert_array_equal(
        kmeans_labels(x, 4, seed=1, spherical=True),
        kmeans_labels(x * scale, 4, seed=1, spherical=True),
    )


def test_reference_rows_beat_chance(blobs):
    x, y = blobs
    pixels = x - x.min()  # non-negative, like pixel intensities
    assert hungarian_accuracy(y, pixel_kmeans(pixels, 4, seed=0)) > 0.9
    assert hungarian_accuracy(y, pca_gmm(pixels, 4, seed=0, n_components=10)) > 0.9
