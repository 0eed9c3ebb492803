#!/usr/bin/env python
"""Figures 1 and 2 from the aggregate tables:
scripts/figures/results_figures.py --kind loglik --table results/tables/loglik.csv --out F.png
scripts/figures/results_figures.py --kind clustering --table results/tables/clustering.csv --out F.png"""

import argparse
import sys

import pandas as pd

from vaepriors.figures.cli import parse
from vaepriors.figures.results import plot_clustering, plot_loglik


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kind", choices=["loglik", "clustering"], required=True)
    parser.add_argument("--table", required=True)
    parser.add_argument("--out", required=True)
    args, _ = parse(parser, argv, section=None)
    wide = pd.read_csv(args.table)
    paths = plot_loglik(wide, args.out) if args.kind == "loglik" else plot_clustering(wide, args.out)
    print(" ".join(map(str, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
