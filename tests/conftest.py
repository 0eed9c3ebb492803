"""Shared fixtures: a tiny clustered processed dataset and small train/model configurations.

The dataset follows the processed format of docs/design.md: 8x8 grey images (uint8 0..255) drawn
around one random binary prototype per class, so that the classes form well separated clusters.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

from vaepriors.config import section_schema, validate

N_CLASSES = 5
IMAGE_SHAPE = (8, 8)
SPLITS = {"train": 600, "val": 200, "test": 200}

# Small enough that an epoch on the fixture takes milliseconds; valid against params.schema.yaml.
TRAIN_CFG = {
    "optimizer": "adam",
    "lr": 0.003,
    "batch_size": 64,
    "max_epochs": 4,
    "warmup_epochs": 2,
    "patience": 10,
    "device": "cpu",
    "threads": 1,
    "seeds_per_job": 1,
}
MODEL_CFG = {
    "hidden": [32, 16],
    "init": "torch",
    "gmm_pretrain_epochs": 2,
    "ae_density_components": [1, 3],
    "vamp_components": 4,
}


def make_clustered_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    d = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
    # One prototype per class: pixel "on" probability 0.05 or 0.95.
    prototypes = np.where(rng.random((N_CLASSES, d)) < 0.5, 0.05, 0.95)
    out: dict[str, np.ndarray] = {}
    for split, n in SPLITS.items():
        y = np.arange(n) % N_CLASSES
        rng.shuffle(y)
        grey = prototypes[y] + 0.08 * rng.standard_normal((n, d))
        x = np.clip(np.rint(grey * 255), 0, 255).astype(np.uint8)
        out[f"x_{split}"] = x
        out[f"y_{split}"] = y.astype(np.int64)
        if split != "train":
            out[f"xb_{split}"] = (rng.random((n, d)) < x / 255.0).astype(np.uint8)
    out["image_shape"] = np.asarray(IMAGE_SHAPE, dtype=np.int64)
    out["n_classes"] = np.asarray(N_CLASSES, dtype=np.int64)
    out["split_seed"] = np.asarray(0, dtype=np.int64)
    out["binarize_seed"] = np.asarray(1, dtype=np.int64)
    return out


@pytest.fixture(scope="session")
def clustered_arrays() -> dict[str, np.ndarray]:
    return make_clustered_arrays()


@pytest.fixture(scope="session")
def processed_npz(tmp_path_factory, clustered_arrays):
    """Path of the processed .npz (600 train / 200 val / 200 test, 5 classes, 8x8)."""
    path = tmp_path_factory.mktemp("processed") / "synthetic.npz"
    np.savez(path, **clustered_arrays)
    return path


# A small evaluate section for the tests that run a new family through the evaluation.
TINY_EVAL_CFG = {
    "importance_samples": 16,
    "chunk_elements": 200_000,
    "knn_labels": [50],
    "knn_k": [1, 3],
    "kmeans_n_init": 2,
    "ae_scale_grid": [0.1],
    "threads": 1,
}


@pytest.fixture
def eval_cfg() -> dict:
    return copy.deepcopy(TINY_EVAL_CFG)


@pytest.fixture
def train_cfg() -> dict:
    cfg = copy.deepcopy(TRAIN_CFG)
    validate(cfg, section_schema("train"), where="tests/conftest.py", prefix="train")
    return cfg


@pytest.fixture
def model_cfg() -> dict:
    cfg = copy.deepcopy(MODEL_CFG)
    validate(cfg, section_schema("model"), where="tests/conftest.py", prefix="model")
    return cfg


@pytest.fixture
def train_data(clustered_arrays):
    from vaepriors.training import TrainData

    return TrainData.from_arrays(clustered_arrays)


@pytest.fixture(scope="module")
def single_torch_thread():
    """For modules of many mid-sized elementwise ops: on a small shared machine torch's intra-op
    threads mostly wait on each other (5x slower measured with 2 threads under load)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
