"""The real MNIST path (issue 16), run where the IDX files are at hand: CI points
VAEPRIORS_MIRRORS at ../shared/data/mnist when that folder exists. Download from the mirror with
sha256 verification, preparation with the 50k/10k/10k split on a capped training slice, and one
training epoch through the real scripts. Skipped, with the reason, where no mirror holds MNIST."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vaepriors.config import REPO_ROOT, load_params, to_flags
from vaepriors.data.registry import ENV_MIRRORS, get_dataset


def _mnist_mirror() -> Path | None:
    names = [f.name for f in get_dataset("mnist").files]
    for folder in filter(None, os.environ.get(ENV_MIRRORS, "").split(os.pathsep)):
        if all((Path(folder) / n).is_file() for n in names):
            return Path(folder)
    return None


pytestmark = pytest.mark.skipif(_mnist_mirror() is None,
                                reason=f"no folder in {ENV_MIRRORS} holds the MNIST IDX files")


def run(script: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / script), *args],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_real_mnist_download_prepare_and_one_epoch(tmp_path):
    data = {**load_params()["data"], "raw_dir": str(tmp_path / "raw"),
            "processed_dir": str(tmp_path / "processed"), "max_train": 2000}
    flags = to_flags(data).split()
    run("download.py", "--dataset", "mnist", "--no-progress", *flags)
    for f in get_dataset("mnist").files:  # verified copies, no temporary file left behind
        assert (tmp_path / "raw" / "mnist" / f.name).is_file()
    assert not list((tmp_path / "raw").rglob("*.tmp")) and not list((tmp_path / "raw").rglob(".*"))
    npz = tmp_path / "processed" / "mnist.npz"
    run("prepare.py", "--dataset", "mnist", "--out", str(npz), *flags)
    arrays = np.load(npz)
    assert arrays["x_train"].shape == (2000, 784)
    assert arrays["x_val"].shape == (10000, 784) and arrays["x_test"].shape == (10000, 784)
    assert set(np.unique(arrays["xb_test"])) == {0, 1}
    assert sorted(np.unique(arrays["y_test"])) == list(range(10))
    # The first test image of MNIST is a 7 (the official file's order is kept for test).
    assert int(arrays["y_test"][0]) == 7
    train = {**load_params()["train"], "max_epochs": 1, "warmup_epochs": 1, "patience": 1}
    out = tmp_path / "run"
    run("train.py", "--data", str(npz), "--out-dir", str(out), "--dataset", "mnist",
        "--model", "nvae", "--latent-dim", "2", "--seed", "0", "--no-progress",
        *to_flags(train).split(), *to_flags(load_params()["model"]).split())
    record = json.loads((out / "config.json").read_text())
    assert record["epochs"] == 1 and record["dataset"] == "mnist"
    # One epoch on 2000 images: far from trained, but a finite ELBO well below the uniform
    # Bernoulli's 784 log 2 = 543 nats per image.
    assert -543 < record["best_val_elbo"] < -150
