#!/usr/bin/env python
"""Stability and speed of the spherical posteriors (vMF, Power Spherical) beside the Gaussian:
scripts/figures/spherical_study.py --out F.png --out-csv T.csv --out-md T.md [--repeats 20]
(one thread; step time and the share of non-finite rows per ambient dimension m and kappa)."""

import argparse
import sys

from vaepriors.config import cpu_model
from vaepriors.figures import spherical
from vaepriors.figures.cli import parse
from vaepriors.io import write_text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--out-csv", required=True)
    parser.add_argument("--out-md", required=True)
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per cell")
    parser.add_argument("--rows", type=int, default=64, help="rows per step (the training batch)")
    args, _ = parse(parser, argv, section=None)
    table = spherical.study(rows=args.rows, repeats=args.repeats)
    table["cpu"] = cpu_model()
    write_text(args.out_csv, table.to_csv(index=False))
    write_text(args.out_md, f"CPU: {cpu_model()}\n\n" + spherical.markdown(table))
    spherical.figure(table, args.out)
    print(spherical.paragraph(table, cpu_model()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
