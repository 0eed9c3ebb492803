"""k-NN classification on latent codes with few labels (Davidson et al. 2018, Table 2).

Protocol: draw n_labels training codes, balanced over classes (n_labels / n_classes each, seeded),
fit a k-nearest-neighbour classifier (Euclidean) on them, choose k among the candidates by accuracy
on the full validation split (ties go to the smaller k), and report accuracy on the test split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.neighbors import KNeighborsClassifier


def balanced_indices(y: np.ndarray, n_labels: int, seed: int) -> np.ndarray:
    """Indices of n_labels examples, n_labels // n_classes per class; when it does not divide,
    the remainder goes to classes picked at random, one extra each."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per_class = np.full(len(classes), n_labels // len(classes))
    per_class[rng.choice(len(classes), n_labels % len(classes), replace=False)] += 1
    picked = []
    for label, count in zip(classes, per_class):
        members = np.flatnonzero(y == label)
        if count > len(members):
            raise ValueError(f"class {label} has {len(members)} examples, {count} requested")
        picked.append(rng.choice(members, count, replace=False))
    return np.sort(np.concatenate(picked))


def knn_accuracy(
    z_train: np.ndarray,
    y_train: np.ndarray,
    z_val: np.ndarray,
    y_val: np.ndarray,
    z_test: np.ndarray,
    y_test: np.ndarray,
    n_labels: int,
    ks: Sequence[int],
    seed: int,
) -> dict:
    """{"k": chosen k, "val_acc": {"k": accuracy}, "test_acc": test accuracy with the chosen k}.

    Candidates larger than the labelled set are skipped."""
    labelled = balanced_indices(y_train, n_labels, seed)
    z_lab, y_lab = np.asarray(z_train)[labelled], np.asarray(y_train)[labelled]
    val_acc = {}
    for k in sorted(int(k) for k in ks if k <= n_labels):
        model = KNeighborsClassifier(n_neighbors=k).fit(z_lab, y_lab)
        val_acc[k] = float(model.score(z_val, y_val))
    if not val_acc:
        raise ValueError(f"no candidate k <= n_labels={n_labels} in {list(ks)}")
    best = max(val_acc, key=val_acc.get)  # first maximum, i.e. the smallest k among ties
    test_acc = KNeighborsClassifier(n_neighbors=best).fit(z_lab, y_lab).score(z_test, y_test)
    # String keys so the dict survives a JSON round trip unchanged.
    return {
        "k": best,
        "val_acc": {str(k): a for k, a in val_acc.items()},
        "test_acc": float(test_acc),
    }
