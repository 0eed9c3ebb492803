#!/usr/bin/env python
"""Aggregate per-run metrics into the result tables:
scripts/aggregate.py --metrics RUN.json ... --references REF.json ... --out-dir results/tables
[--carry docs/results/NAME/tables]."""

import argparse
import sys

from vaepriors.evaluation.tables import MetricsFileError, read_metrics, write_tables


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", nargs="+", required=True)
    parser.add_argument("--references", nargs="*", default=[])
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--carry", help="an earlier publication's tables/: its cells fill those no run here has")
    args = parser.parse_args(argv)
    references = {}
    try:
        # Every file is read before any table is written: a damaged one stops the job empty-handed.
        for path in args.references:
            rows = read_metrics(path, required=("dataset", "pixel_kmeans", "pca_gmm"))
            references[rows["dataset"]] = {k: rows[k] for k in ("pixel_kmeans", "pca_gmm")}
        runs = []
        for path in args.metrics:
            run = read_metrics(path, required=("dataset", "model", "latent_dim", "seed"))
            if run["dataset"] in references:
                # Reference floors sit beside every clustering row of their dataset.
                run["references"] = references[run["dataset"]]
            runs.append(run)
        paths = write_tables(runs, args.out_dir, carry=args.carry)
    except MetricsFileError as exc:
        parser.exit(1, f"aggregate: error: {exc}\n")
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
