#!/usr/bin/env python
"""Seconds per training epoch at the paper's protocol shape (55k x 784, batch 64, 784-256-128 MLP),
N-VAE and S-VAE, on this machine's CUDA device against one CPU thread of the same machine, side by
side in one run: one seed alone, and stacked groups of seeds (train.seeds_per_job).

    python benchmarks/bench_device.py [--latent 10] [--seeds 1 3 10] [--epochs 2] [--out speed.json]

The data are random MNIST-shaped images (nothing to download). Each configuration trains
`--epochs` epochs through vaepriors.training.run.train_group; the last epoch's wall time is
reported (the first carries CUDA's and numba's start-up). Without CUDA only the CPU column runs.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from vaepriors.config import cpu_model
from vaepriors.training.run import train_group

MODEL_CFG = {"hidden": [256, 128], "init": "glorot"}


def fake_mnist(path: Path, n_train: int = 55_000, n_val: int = 5_000) -> None:
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (n_train, 784), dtype=np.uint8),
              "y_train": rng.integers(0, 10, n_train), "y_val": rng.integers(0, 10, n_val),
              "x_val": rng.integers(0, 256, (n_val, 784), dtype=np.uint8),
              "xb_val": rng.integers(0, 2, (n_val, 784), dtype=np.uint8),
              "x_test": rng.integers(0, 256, (n_val, 784), dtype=np.uint8), "y_test": rng.integers(0, 10, n_val),
              "xb_test": rng.integers(0, 2, (n_val, 784), dtype=np.uint8),
              "image_shape": np.array([28, 28]), "n_classes": np.array(10),
              "split_seed": np.array(0), "binarize_seed": np.array(1)}
    np.savez(path, **arrays)


def epoch_seconds(data: Path, tmp: Path, model: str, latent: int, seeds: int, device: str,
                  epochs: int) -> float:
    train_cfg = {"optimizer": "adam", "lr": 1e-3, "batch_size": 64, "max_epochs": epochs,
                 "warmup_epochs": 1, "patience": 10**6, "device": device, "threads": 1,
                 "seeds_per_job": seeds}
    dirs = [tmp / f"{model}-{device}-{seeds}" / f"s{s}" for s in range(seeds)]
    train_group(data, dirs, "bench", model, latent, list(range(seeds)), train_cfg, MODEL_CFG,
                progress=False)
    return float(pd.read_csv(dirs[0] / "history.csv")["seconds"].iloc[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--latent", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 3, 10])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["nvae", "svae"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    print(f"CPU: {cpu_model()}; CUDA: {torch.cuda.get_device_name(0) if cuda else 'none'}; "
          f"torch {torch.__version__}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = tmp / "mnist-shaped.npz"
        fake_mnist(data)
        for model in args.models:
            cpu = epoch_seconds(data, tmp, model, args.latent, 1, "cpu", args.epochs)
            rows.append({"model": model, "device": "cpu (1 thread)", "seeds": 1, "epoch_s": cpu,
                         "seed_epoch_s": cpu, "speed_up_per_seed": 1.0})
            for n in args.seeds if cuda else []:
                s = epoch_seconds(data, tmp, model, args.latent, n, "cuda", args.epochs)
                rows.append({"model": model, "device": "cuda", "seeds": n, "epoch_s": s,
                             "seed_epoch_s": s / n, "speed_up_per_seed": cpu / (s / n)})
            print(pd.DataFrame([r for r in rows if r["model"] == model]).round(3).to_string(index=False),
                  flush=True)
    if args.out:
        args.out.write_text(json.dumps({"cpu": cpu_model(), "cuda": torch.cuda.get_device_name(0) if cuda
                                        else None, "torch": torch.__version__, "latent": args.latent,
                                        "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
