#!/usr/bin/env python
"""Figure 6, sample quality against latent dim:
scripts/figures/plot_sample_quality.py --tables Q.csv ... --classifiers C.json ... --out F.png
--out-csv T.csv --out-md T.md   (the per-run distances, and mean ± sd over seeds as markdown)."""

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from vaepriors.figures.cli import parse
from vaepriors.figures.frechet import plot_sample_quality
from vaepriors.figures.summary import sample_quality_markdown


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tables", nargs="+", required=True)
    parser.add_argument("--classifiers", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--out-csv", required=True)
    parser.add_argument("--out-md", required=True)
    args, _ = parse(parser, argv, section=None)
    table = pd.concat([pd.read_csv(p) for p in args.tables], ignore_index=True)
    classifiers = {}
    for path in args.classifiers:
        classifiers[Path(path).stem] = json.loads(Path(path).read_text())
    plot_sample_quality(table, classifiers, args.out)
    table.to_csv(args.out_csv, index=False)
    Path(args.out_md).write_text(sample_quality_markdown(table, classifiers), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
