#!/usr/bin/env python
"""Figure 7 for one dataset, from the per-dim study tables:
scripts/figures/plot_ae_density.py --tables T_d2.csv ... --out F.png --out-csv A.csv --out-md A.md"""

import argparse
import sys
from pathlib import Path

import pandas as pd

from vaepriors.figures import style
from vaepriors.figures.cli import parse
from vaepriors.figures.density import plot_density_study
from vaepriors.figures.summary import density_markdown


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tables", nargs="+", required=True)
    parser.add_argument("--dataset", default="")
    parser.add_argument("--out", required=True)
    parser.add_argument("--out-csv", required=True)
    parser.add_argument("--out-md", required=True)
    args, _ = parse(parser, argv, section=None)
    table = pd.concat([pd.read_csv(p) for p in args.tables], ignore_index=True)
    title = (f"{style.dataset_label(args.dataset)}: AE ex-post density, mean ± sd over seeds"
             if args.dataset else "")
    plot_density_study(table, args.out, title=title)
    table.to_csv(args.out_csv, index=False)
    Path(args.out_md).write_text(density_markdown(table), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
