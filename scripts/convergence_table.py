#!/usr/bin/env python
"""Log-likelihood at the evaluation's K beside a larger K, from the runs' checks
(scripts/loglik_check.py): scripts/convergence_table.py --checks CHECK.json ... --out-csv T.csv
--out-md T.md [--carry docs/results/NAME/tables]"""

import argparse
import sys

from vaepriors.cli import parse_script
from vaepriors.evaluation.tables import MetricsFileError, convergence_markdown, convergence_table, read_metrics
from vaepriors.io import write_text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checks", nargs="+", required=True)
    parser.add_argument("--out-csv", required=True)
    parser.add_argument("--out-md", required=True)
    parser.add_argument("--carry", help="an earlier publication's tables/: its rows fill the cells no check here has")
    args, _ = parse_script(parser, argv)
    required = ("dataset", "model", "latent_dim", "seed", "loglik", "loglik_base", "gain")
    try:
        checks = [read_metrics(p, required=required) for p in args.checks]
        table = convergence_table(checks, carry=args.carry)
    except MetricsFileError as exc:
        parser.exit(1, f"convergence_table: error: {exc}\n")
    write_text(args.out_csv, table.to_csv(index=False))
    write_text(args.out_md, convergence_markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
