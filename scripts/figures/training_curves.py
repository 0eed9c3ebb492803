#!/usr/bin/env python
"""Figure 5, training curves of one dataset:
scripts/figures/training_curves.py --histories H.csv ... --out F.png [--dataset NAME]"""

import argparse
import sys

from vaepriors.figures import style
from vaepriors.figures.cli import parse
from vaepriors.figures.curves import plot_training_curves, read_histories


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--histories", nargs="+", required=True)
    parser.add_argument("--dataset", default="")
    parser.add_argument("--out", required=True)
    args, _ = parse(parser, argv, section=None)
    hist = read_histories(args.histories)
    title = (f"{style.dataset_label(args.dataset)}: validation curves, mean ± sd over seeds"
             if args.dataset else "")
    plot_training_curves(hist, args.out, title=title)
    return 0


if __name__ == "__main__":
    sys.exit(main())
