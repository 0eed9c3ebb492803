#!/usr/bin/env python
"""Fréchet distance of prior samples for every trained run of one dataset:
scripts/figures/sample_quality.py --data D.npz --classifier C.pt --models M.pt ... --out Q.csv  ${figures}"""

import argparse
import sys
from pathlib import Path

import pandas as pd

from vaepriors.data.prepare import load_processed
from vaepriors.figures.cli import parse
from vaepriors.figures.frechet import FeatureReference, load_classifier, sample_quality_rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    args, cfg = parse(parser, argv)
    reference = FeatureReference(load_classifier(args.classifier), load_processed(args.data),
                                 cfg["fd_samples"])
    table = pd.DataFrame(sample_quality_rows(args.models, reference, reference.n))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.groupby(["model", "latent_dim"])["fd"].mean().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
