#!/usr/bin/env python
"""Our tables beside published numbers (folders of CSV files, workflow/references/):
scripts/compare_paper.py --tables results/tables/{loglik,clustering,knn}.csv
--references workflow/references/tables --protocols workflow/references/protocols
--run-configs results/models/.../config.json ... --importance-samples K --out-dir results/tables

Writes paper_comparison.{csv,md}, paper_pattern.csv (S - N per d, log-likelihood and k-NN, with a
Welch test across seeds) and paper_budget.json. The grid is the set of
(dataset, model, d) cells of the run configs and of carried.json (cells taken from an earlier
publication, aggregate.py --carry); a grid without reference rows gets an empty comparison."""

import argparse
import sys

import pandas as pd

from vaepriors.evaluation import replication as R
from vaepriors.evaluation.tables import MetricsFileError, read_metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tables", nargs="+", required=True)
    parser.add_argument("--references", nargs="+", required=True)
    parser.add_argument("--protocols", nargs="*", default=[])
    parser.add_argument("--run-configs", nargs="+", required=True)
    parser.add_argument("--importance-samples", type=int, required=True)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--carried", help="carried.json: cells of an earlier publication, compared too")
    args = parser.parse_args(argv)
    try:
        refs = R.load_references(args.references)
        protocols = R.load_protocols(args.protocols)
    except R.ReferenceFileError as exc:
        parser.exit(2, f"error: {exc}\n")
    try:
        records = [read_metrics(p, required=("dataset", "model", "latent_dim", "seed", "train"))
                   for p in args.run_configs]
        carried = read_metrics(args.carried, required=("cells",))["cells"] if args.carried else []
    except MetricsFileError as exc:
        parser.exit(1, f"compare_paper: error: {exc}\n")
    grid = {(r["dataset"], r["model"], int(r["latent_dim"])) for r in [*records, *carried]}
    results = R.long_results(pd.read_csv(p) for p in args.tables)
    comparison = R.compare(refs, results, grid)
    patterns = R.patterns(refs, results, grid)
    used = R.budget(records)
    label = R.budget_label(used, {s: p for s, p in protocols.items()
                                  if s in set(comparison["source"])}, [args.importance_samples])
    for path in R.write_comparison(args.out_dir, comparison, patterns, used, label):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
