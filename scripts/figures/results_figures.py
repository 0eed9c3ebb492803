#!/usr/bin/env python
"""Figures 1 and 2 from the aggregate tables:
scripts/figures/results_figures.py --kind loglik --table results/tables/loglik.csv --out F.png
    [--references workflow/references/tables --budget results/tables/paper_budget.json]
scripts/figures/results_figures.py --kind clustering --table results/tables/clustering.csv --out F.png"""

import argparse
import sys

import pandas as pd

from vaepriors.evaluation.replication import ReferenceFileError, load_references
from vaepriors.evaluation.tables import read_metrics
from vaepriors.figures.cli import parse
from vaepriors.figures.results import plot_clustering, plot_loglik


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=["loglik", "clustering"], required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--references", nargs="*", default=[],
                        help="published numbers to draw beside ours (files or folders)")
    parser.add_argument("--budget", help="paper_budget.json: its label goes above the panels")
    args, _ = parse(parser, argv, section=None)
    wide = pd.read_csv(args.table)
    if args.kind == "loglik":
        try:
            refs = load_references(args.references) if args.references else None
        except ReferenceFileError as exc:
            parser.exit(2, f"error: {exc}\n")
        note = read_metrics(args.budget, required=("label",)).get("label", "") if args.budget else ""
        paths = plot_loglik(wide, args.out, references=refs, note=note)
    else:
        paths = plot_clustering(wide, args.out)
    print(" ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
