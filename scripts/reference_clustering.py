#!/usr/bin/env python
"""Clustering reference rows for one dataset (no VAE): scripts/reference_clustering.py --data D.npz
--dataset NAME --out references.json  ${evaluate}."""

import argparse
import sys

from vaepriors.cli import parse_script
from vaepriors.evaluation.run import reference_rows
from vaepriors.io import write_json

SEED = 0  # the reference rows are one fixed-seed fit each


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True)
    args, cfg = parse_script(parser, argv, ["evaluate"])
    rows = {"dataset": args.dataset, "seed": SEED, **reference_rows(args.data, SEED, cfg)}
    write_json(args.out, rows)
    print(f"{args.dataset}: pixel k-means acc {rows['pixel_kmeans']['acc']:.3f}, "
          f"PCA+GMM acc {rows['pca_gmm']['acc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
