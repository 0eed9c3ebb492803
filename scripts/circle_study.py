#!/usr/bin/env python
"""The circle toy's table and latent maps: scripts/circle_study.py --data circle.npz
--models M.pt ... --metrics M.json ... --out-csv T.csv --out-md T.md --out-png F.png
(one metrics file per model file, same order; the latent maps show each family's first seed)."""

import argparse
import sys

import numpy as np

from vaepriors.cli import parse_script
from vaepriors.data.prepare import load_processed
from vaepriors.evaluation import circle
from vaepriors.evaluation.tables import MetricsFileError, read_metrics
from vaepriors.figures import style
from vaepriors.figures.circle import latent_maps
from vaepriors.io import write_text
from vaepriors.models import load_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--metrics", nargs="+", required=True)
    for name in ("--out-csv", "--out-md", "--out-png"):
        parser.add_argument(name, required=True)
    args, _ = parse_script(parser, argv)
    if len(args.models) != len(args.metrics):
        parser.error("one --metrics file per --models file")
    arrays = load_processed(args.data)
    if "log_density_test" not in arrays:
        parser.error(f"{args.data}: not the circle toy (no log_density_test)")
    rows, maps = [], {}
    for model_path, metrics_path in zip(args.models, args.metrics):
        try:
            metrics = read_metrics(metrics_path, required=("model", "latent_dim", "seed", "loglik", "elbo"))
        except MetricsFileError as exc:
            parser.exit(1, f"circle_study: error: {exc}\n")
        model = load_model(model_path)
        rows.append(circle.run_row(model, arrays, metrics))
        key = f"{style.model_label(metrics['model'])}, d = {metrics['latent_dim']}"
        if key not in maps:  # the first seed listed
            import torch

            maps[key] = model.embed_all(torch.from_numpy(np.asarray(arrays["x_test"])).float())
    table = circle.table(rows)
    write_text(args.out_csv, table.to_csv(index=False))
    write_text(args.out_md, circle.markdown(table))
    latent_maps(maps, arrays["angle_test"], args.out_png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
