"""Unsupervised clustering scores, one definition for every model.

Accuracy is the Hungarian accuracy: build the contingency table of predicted clusters against true
classes and find the one-to-one mapping of clusters to classes that maximises the number of matched
points (scipy.optimize.linear_sum_assignment); accuracy = matched points / all points. It is computed
on the test split with K = number of classes. Unlike majority-vote mapping (several clusters may
share a class, which inflates accuracy as K grows), each class is claimed by at most one cluster;
when K_pred != K_true the surplus clusters or classes stay unmatched and count as errors.
NMI (arithmetic normalisation) and ARI come from scikit-learn and need no mapping.

Reference rows, which need no VAE and put a floor beside every clustering number: k-means on the raw
test pixels, and a Gaussian mixture on the first 10 principal components of the test pixels.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture


def contingency(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Counts of (predicted cluster, true class) pairs; labels of any value are re-indexed."""
    _, true_idx = np.unique(np.asarray(y_true), return_inverse=True)
    _, pred_idx = np.unique(np.asarray(y_pred), return_inverse=True)
    table = np.zeros((pred_idx.max() + 1, true_idx.max() + 1), dtype=np.int64)
    np.add.at(table, (pred_idx, true_idx), 1)
    return table


def hungarian_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of points whose cluster maps to their class under the best one-to-one mapping."""
    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise ValueError("y_true and y_pred must be non-empty and of equal length")
    table = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / len(y_true))


def clustering_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "acc": hungarian_accuracy(y_true, y_pred),
        "nmi": float(normalized_mutual_info_score(y_true, y_pred)),
        "ari": float(adjusted_rand_score(y_true, y_pred)),
    }


def kmeans_labels(
    codes: np.ndarray, k: int, n_init: int = 10, seed: int = 0, spherical: bool = False
) -> np.ndarray:
    """k-means cluster labels. spherical=True clusters the unit-normalised rows, the natural
    geometry for S-VAE means (direction carries the information, length does not)."""
    codes = np.asarray(codes, dtype=np.float64)
    if spherical:
        norms = np.linalg.norm(codes, axis=1, keepdims=True)
        codes = codes / np.maximum(norms, np.finfo(np.float64).tiny)
    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(codes)


def cluster_test_set(model, x: torch.Tensor, codes: np.ndarray, k: int, n_init: int,
                     seed: int) -> tuple[np.ndarray, str]:
    """Cluster labels of the test set (binary images x, their codes) and how they were made:
    the family's own assignment where it has one, else k-means on the codes (spherical on the
    sphere)."""
    if model.assigns_clusters:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            labels = torch.cat([model.cluster(x[i : i + 1000]) for i in range(0, len(x), 1000)]).numpy()
        return labels, "mixture assignment argmax_k p(k|z), averaged over posterior samples"
    labels = kmeans_labels(codes, k, n_init, seed, spherical=model.sphere)
    return labels, ("spherical " if model.sphere else "") + f"k-means (n_init={n_init}) on posterior means"


def pixel_kmeans(x_test: np.ndarray, k: int, seed: int, n_init: int = 10) -> np.ndarray:
    """Reference row: k-means on the raw pixels of the test split."""
    return kmeans_labels(x_test, k, n_init=n_init, seed=seed)


def pca_gmm(x_test: np.ndarray, k: int, seed: int, n_components: int = 10) -> np.ndarray:
    """Reference row: full-covariance Gaussian mixture on the first principal components."""
    x = np.asarray(x_test, dtype=np.float64)
    scores = PCA(n_components=n_components, random_state=seed).fit_transform(x)
    return GaussianMixture(k, covariance_type="full", random_state=seed).fit_predict(scores)
