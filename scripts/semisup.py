#!/usr/bin/env python
"""Semi-supervised classification, M2 and M1+M2 (vaepriors.semisup).

One run:   scripts/semisup.py run --data D.npz --out R.json --dataset NAME --m2-model M
           --labels N --seed S [--m1 M1/model.pt] --threads T --m2_dim .. --hidden .. --epochs ..
           --patience .. --lr .. --batch_size .. --alpha ..   (the values the run uses)
The table: scripts/semisup.py table --references workflow/references/semisup --out-csv T.csv
           --out-md T.md --out-png F.png --runs R.json ...   (the runs semisup.runs names for
           the configuration, as the rule's inputs)"""

import argparse
import logging
import sys
from pathlib import Path

from vaepriors import semisup
from vaepriors.cli import family_name, parse_script
from vaepriors.config import ConfigError
from vaepriors.data.prepare import ProcessedDataError
from vaepriors.figures import semisup as S


def run(argv) -> int:
    parser = argparse.ArgumentParser(prog="semisup.py run", description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--m2-model", required=True, type=family_name)
    parser.add_argument("--m1", help="model.pt of the M1 run (none: M2 alone on pixels)")
    parser.add_argument("--labels", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--progress", action="store_true")
    parser.add_argument("--log-level", default="INFO")
    args, tokens = parser.parse_known_args(argv)  # the rest: the run's values as flags
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        values = semisup.parse_run_flags(tokens)
        record = semisup.run(args.data, args.out, args.dataset, args.m2_model, args.labels, args.seed,
                             values, m1_path=args.m1, threads=args.threads, progress=args.progress)
    except (ConfigError, ProcessedDataError, ValueError) as exc:
        parser.exit(1, f"semisup: error: {exc}\n")
    print(f"{args.out}: test accuracy {record['accuracy']:.4f} at epoch {record['best_epoch']} "
          f"(validation {record['val_accuracy']:.4f})")
    return 0


def table(argv) -> int:
    parser = argparse.ArgumentParser(prog="semisup.py table", description=__doc__)
    parser.add_argument("--references", nargs="*", default=[], help="reference files or folders")
    parser.add_argument("--out-csv", required=True)
    parser.add_argument("--out-md", required=True)
    parser.add_argument("--out-png", required=True)
    parser.add_argument("--runs", nargs="*", required=True, help="the run results (JSON)")
    args, _ = parse_script(parser, argv)
    paths = args.runs
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        parser.exit(1, f"semisup: error: {len(missing)} run result(s) missing, e.g. {missing[0]}\n")
    try:
        S.write(S.read_runs(paths), S.load_references(args.references), args.out_csv, args.out_md,
                args.out_png)
    except ValueError as exc:
        parser.exit(1, f"semisup: error: {exc}\n")
    print(args.out_csv)
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    commands = {"run": run, "table": table}
    if not argv or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
