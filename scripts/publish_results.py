#!/usr/bin/env python
"""Copy a finished run's summary, tables and PNG figures into the repository, with RUN.md
(command, commit, machine, wall time): scripts/publish_results.py --workdir . --out
docs/results/NAME --command "snakemake --cores 2 --configfile profiles/budget/params.yaml"."""

import argparse
import sys

from vaepriors.publish import publish


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=".", help="the project folder that holds results/")
    parser.add_argument("--out", required=True, help="e.g. docs/results/budget")
    parser.add_argument("--command", required=True, help="the command that made the results")
    args = parser.parse_args(argv)
    try:
        paths = publish(args.workdir, args.out, args.command)
    except FileNotFoundError as exc:
        parser.exit(2, f"error: {exc}\n")
    print(f"{len(paths)} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
