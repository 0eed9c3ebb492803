"""Evaluate one trained run: every number of the per-run metrics file (layout in tables.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..config import run_metadata
from ..data.prepare import load_processed
from ..models import load_model
from ..threads import flush_denormals, limit_threads
from ..training.trainer import TrainData
from .clustering import cluster_test_set, clustering_scores, pca_gmm, pixel_kmeans
from .knn import knn_accuracy
from .loglik import (
    active_units,
    decoder_kernel_name,
    elbo_terms,
    importance_log_likelihood,
    posterior_means,
    prepare_proposal,
    shared_sample_log_likelihood,
)

log = logging.getLogger(__name__)


def _binary(arrays: dict, key: str) -> torch.Tensor:
    return torch.from_numpy(np.asarray(arrays[key])).float()


# The whole job: torch's thread pool is created inside, so its threads flush denormals too.
@flush_denormals()
def evaluate_run(model_path: str | Path, data_path: str | Path, seed: int, cfg: dict,
                 progress: bool = True) -> dict:
    limit_threads(cfg["threads"])
    arrays = load_processed(data_path)
    model = load_model(model_path)
    x_test, x_val = _binary(arrays, "xb_test"), _binary(arrays, "xb_val")
    y_train, y_val, y_test = (np.asarray(arrays[k]) for k in ("y_train", "y_val", "y_test"))
    n_classes = int(arrays["n_classes"])
    # Training codes from one seeded observation (binarisation), as the model saw the data.
    gen = torch.Generator().manual_seed(seed)
    x_train = model.likelihood.observe(TrainData.from_arrays(arrays).x_train, gen)
    K = cfg["importance_samples"]
    kernel = cfg.get("decoder_kernel", "auto")  # optional in the schema: older configs lack it

    metrics: dict = {"meta": run_metadata(seed=seed, eval_seed=seed, model_path=str(model_path),
                                          data_path=str(data_path))}
    # what the family sets up first (the AE: its proposal scale, chosen on validation)
    metrics.update(prepare_proposal(model, x_val, cfg, seed, kernel))

    loglik = importance_log_likelihood(model, x_test, K, cfg["chunk_elements"],
                                       generator=torch.Generator().manual_seed(seed), progress=progress,
                                       kernel=kernel)
    metrics["loglik"] = {
        "mean": float(loglik.mean()),
        "sd": float(loglik.std()),
        "sem": float(loglik.std() / np.sqrt(len(loglik))),
        "importance_samples": K,
        "decoder_kernel": decoder_kernel_name(model, x_test, kernel),
        "n_test": len(loglik),
        "split": "test",
        "binarize_seed": int(arrays["binarize_seed"]),
        "split_seed": int(arrays["split_seed"]),
    }
    metrics["elbo"] = elbo_terms(model, x_test, generator=torch.Generator().manual_seed(seed))
    # The S-VAE authors' example estimator (one decoder sample for all K): a diagnostic column
    shared = shared_sample_log_likelihood(model, x_test, K, generator=torch.Generator().manual_seed(seed))
    metrics["loglik_shared_sample"] = {"mean": float(shared.mean()), "sd": float(shared.std()),
                                       "importance_samples": K}
    metrics["active_units"] = active_units(model, x_test)

    z_train = posterior_means(model, x_train)
    z_val = posterior_means(model, x_val)
    z_test = posterior_means(model, x_test)
    y_pred, method = cluster_test_set(model, x_test, z_test, n_classes, cfg["kmeans_n_init"], seed)
    metrics["clustering"] = {**clustering_scores(y_test, y_pred), "method": method, "k": n_classes,
                             "split": "test"}

    metrics["knn"] = {
        str(n): knn_accuracy(z_train, y_train, z_val, y_val, z_test, y_test, n, cfg["knn_k"], seed)
        for n in cfg["knn_labels"] if n <= len(y_train)
    }
    return metrics


def reference_rows(data_path: str | Path, seed: int, cfg: dict) -> dict:
    """Clustering floors that need no VAE: k-means on pixels, a GMM on 10 principal components."""
    limit_threads(cfg["threads"])
    arrays = load_processed(data_path)
    x_test = np.asarray(arrays["x_test"], dtype=np.float64) / 255
    y_test = np.asarray(arrays["y_test"])
    k = int(arrays["n_classes"])
    return {
        "pixel_kmeans": clustering_scores(y_test, pixel_kmeans(x_test, k, seed, cfg["kmeans_n_init"])),
        "pca_gmm": clustering_scores(y_test, pca_gmm(x_test, k, seed)),
        "meta": run_metadata(seed=seed, data_path=str(data_path)),
    }
