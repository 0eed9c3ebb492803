#!/usr/bin/env python
"""Clustering reference rows for one dataset (no VAE): scripts/reference_clustering.py --data D.npz
--dataset NAME --out references.json  ${evaluate}."""

import argparse
import logging
import sys

from vaepriors.config import ConfigError, parse_section
from vaepriors.evaluation.run import reference_rows
from vaepriors.io import write_json

SEED = 0  # the reference rows are one fixed-seed fit each


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--out", required=True)
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = parse_section(rest, "evaluate")
    except ConfigError as exc:
        parser.error(str(exc))
    rows = {"dataset": args.dataset, "seed": SEED, **reference_rows(args.data, SEED, cfg)}
    write_json(args.out, rows)
    print(f"{args.dataset}: pixel k-means acc {rows['pixel_kmeans']['acc']:.3f}, "
          f"PCA+GMM acc {rows['pca_gmm']['acc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
