#!/usr/bin/env python
"""Figure 4, prior samples and test reconstructions as image grids (first seed, every d):
scripts/figures/images.py --data D.npz --models M.pt ... --out-samples S.png --out-recons R.png  ${figures}"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from vaepriors.data.prepare import load_processed
from vaepriors.figures import style
from vaepriors.figures.cli import parse
from vaepriors.figures.frechet import decode_means, prior_samples, run_key
from vaepriors.figures.images import plot_reconstructions, plot_sample_grid
from vaepriors.models import load_model


def one_per_class(y: np.ndarray, n_classes: int) -> np.ndarray:
    """Index of the first test image of each class (classes absent from y are skipped)."""
    return np.array([np.flatnonzero(y == k)[0] for k in range(n_classes) if (y == k).any()])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--dataset", default="")
    parser.add_argument("--out-samples", required=True)
    parser.add_argument("--out-recons", required=True)
    args, cfg = parse(parser, argv)
    arrays = load_processed(args.data)
    shape = arrays["image_shape"]
    idx = one_per_class(np.asarray(arrays["y_test"]), int(arrays["n_classes"]))
    x = torch.from_numpy(np.asarray(arrays["xb_test"])[idx]).float()
    samples, recons = {}, {}
    n = cfg["sample_grid"] ** 2
    for path in args.models:
        key = run_key(path)
        model = load_model(path)
        samples.setdefault(key["model"], {})[key["latent_dim"]] = prior_samples(model, n, key["seed"])
        with torch.no_grad():
            recons.setdefault(key["model"], {})[key["latent_dim"]] = decode_means(model, model.embed(x))
    name = style.dataset_label(args.dataset) if args.dataset else ""
    plot_sample_grid(samples, shape, args.out_samples, grid=cfg["sample_grid"],
                     title=f"{name}: Bernoulli means of samples z ~ p(z)".lstrip(": "))
    plot_reconstructions(x.numpy(), recons, shape, args.out_recons,
                         title=f"{name}: test reconstructions (Bernoulli means)".lstrip(": "))
    print(Path(args.out_samples), Path(args.out_recons))
    return 0


if __name__ == "__main__":
    sys.exit(main())
