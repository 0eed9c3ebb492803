#!/usr/bin/env python
"""Study 8, weight distributions of one dataset's models (largest d, first seed), at
initialisation and after training:
scripts/figures/weights.py --data D.npz --models M.pt ... --out-csv W.csv --out-md W.md
--out-trained F1.png --out-init F2.png --out-gain F3.png"""

import argparse
import logging
import sys
from pathlib import Path

import pandas as pd

from vaepriors.data.prepare import load_processed
from vaepriors.figures import style
from vaepriors.figures.cli import parse
from vaepriors.figures.frechet import run_key
from vaepriors.figures.summary import sort_models
from vaepriors.figures.weights import (
    initial_model,
    layer_rows,
    plot_heldout_gain,
    plot_weights,
    weights_markdown,
)
from vaepriors.models import load_model
from vaepriors.training import TrainData

log = logging.getLogger("weights")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--dataset", default="")
    for name in ("out-csv", "out-md", "out-trained", "out-init", "out-gain"):
        parser.add_argument(f"--{name}", required=True)
    args, _ = parse(parser, argv)
    arrays = load_processed(args.data)
    n_classes = int(arrays["n_classes"])
    pixel_mean = TrainData.from_arrays(arrays).x_train.mean(0)  # exactly as train_run computes it
    rows, raw = [], {"init": {}, "trained": {}}
    for path in args.models:
        key = run_key(path)
        trained = load_model(path)
        init = initial_model(trained, key["seed"], n_classes, pixel_mean)
        log.info("%s: rebuilt the initial model (seed %d) and checked it", path, key["seed"])
        for state, model in (("init", init), ("trained", trained)):
            r, w = layer_rows(model, state, fit_seed=key["seed"], **key)
            rows += r
            raw[state][key["model"]] = w
    table = sort_models(pd.DataFrame(rows))
    for out in (args.out_csv, args.out_md):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out_csv, index=False)
    Path(args.out_md).write_text(weights_markdown(table), encoding="utf-8")
    name = style.dataset_label(args.dataset) if args.dataset else ""
    sub = f"d = {int(table['latent_dim'].max())}, seed {int(table['seed'].min())}" if len(table) else ""
    plot_weights(raw["trained"], table, args.out_trained, "trained",
                 title=f"{name}: trained weights and fitted densities ({sub})".lstrip(": "))
    plot_weights(raw["init"], table, args.out_init, "init",
                 title=f"{name}: initial weights and fitted densities ({sub})".lstrip(": "))
    plot_heldout_gain(table, args.out_gain,
                      title=f"{name}: do heavier tails fit better? ({sub})".lstrip(": "))
    return 0


if __name__ == "__main__":
    sys.exit(main())
