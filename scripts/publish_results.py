#!/usr/bin/env python
"""Copy a finished run's summary, tables and PNG figures into the repository, with RUN.md
(command, commit, machine, wall time): scripts/publish_results.py --workdir . --out
docs/results/NAME --command "snakemake --cores 2 --configfile profiles/budget/params.yaml"
[--readme README.md] (rewrites the README's block of published results from docs/results/)."""

import argparse
import sys
from pathlib import Path

from vaepriors.publish import publish, update_readme


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=".", help="the project folder that holds results/")
    parser.add_argument("--out", help="e.g. docs/results/budget")
    parser.add_argument("--command", help="the command that made the results")
    parser.add_argument("--readme", help="also rewrite this README's published-results block from "
                        "the folders beside --out (default docs/results)")
    args = parser.parse_args(argv)
    if args.out and not args.command:
        parser.error("--out needs --command")
    try:
        if args.out:
            paths = publish(args.workdir, args.out, args.command)
            print(f"{len(paths)} files under {args.out}")
        if args.readme:
            update_readme(args.readme, Path(args.out).parent if args.out else Path("docs/results"))
            print(f"{args.readme}: published-results block rewritten")
    except (FileNotFoundError, ValueError) as exc:
        parser.exit(2, f"error: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
