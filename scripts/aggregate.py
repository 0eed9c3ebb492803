#!/usr/bin/env python
"""Aggregate per-run metrics into the result tables:
scripts/aggregate.py --metrics RUN.json ... --references REF.json ... --out-dir results/tables."""

import argparse
import json
import sys
from pathlib import Path

from vaepriors.evaluation.tables import write_tables


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--metrics", nargs="+", required=True)
    parser.add_argument("--references", nargs="*", default=[])
    parser.add_argument("--out-dir", required=True)
    args = parser.parse_args(argv)
    references = {}
    for path in args.references:
        rows = json.loads(Path(path).read_text())
        references[rows["dataset"]] = {k: rows[k] for k in ("pixel_kmeans", "pca_gmm")}
    runs = []
    for path in args.metrics:
        run = json.loads(Path(path).read_text())
        if run["dataset"] in references:
            # Reference floors sit beside every clustering row of their dataset.
            run["references"] = references[run["dataset"]]
        runs.append(run)
    for path in write_tables(runs, args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
