#!/usr/bin/env python
"""DVC's side of the pipeline (vaepriors.dvcgen): dvc.yaml is generated from the Snakefile.

    python workflow/dvc/stages.py write     # dvc.yaml for params.yaml (after changing the grid)
    python workflow/dvc/stages.py plan      # the `plan` stage: every job's command
    python workflow/dvc/stages.py run NAME  # one stage: its job's command, as Snakemake runs it
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from vaepriors.dvcgen import StageError, run, write, write_plan  # noqa: E402


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("write", help="write dvc.yaml for params.yaml and the rules")
    sub.add_parser("plan", help="record every job's command (the plan stage)")
    sub.add_parser("run", help="run one stage's recorded command").add_argument("name")
    args = parser.parse_args(argv)
    root = Path.cwd()
    try:
        if args.action == "write":
            print(f"wrote {write(root)}")
        elif args.action == "plan":
            print(f"planned {write_plan(root)} jobs")
        else:
            return run(root, args.name)
    except StageError as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
