#!/usr/bin/env python
"""Fetch and verify the raw files of one dataset into RAW_DIR/DATASET/ (IDX files for MNIST and
Fashion-MNIST; a verified snapshot for the offline sets digits and synthetic).

  scripts/download.py --dataset NAME [--raw-dir DIR] [--mirror DIR ...] [--no-progress] ${data}

${data} is the data section of params.yaml as flags (--raw_dir data/raw --mirrors a b
--split_seed 0 ...), as Snakemake and DVC pass it; without any, params.yaml's data section is used.
--raw-dir overrides data.raw_dir; --mirror directories are tried before data.mirrors.
"""

import argparse
import logging
import sys

from vaepriors.cli import parse_script
from vaepriors.data.download import DownloadError, fetch_dataset
from vaepriors.data.prepare import snapshot_generated
from vaepriors.data.registry import ALL_DATASETS, DATASETS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=ALL_DATASETS)
    parser.add_argument("--raw-dir", help="overrides data.raw_dir")
    parser.add_argument("--mirror", action="append", default=[], metavar="DIR",
                        help="directory holding the .gz files, tried first (repeatable)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per network read")
    args, data = parse_script(parser, argv, ["data"], from_params=True)
    raw_dir = args.raw_dir or data["raw_dir"]
    if args.dataset not in DATASETS:
        # Offline sets (scikit-learn's digits, the synthetic set): a verified raw snapshot.
        path = snapshot_generated(args.dataset, raw_dir)
        print(f"{args.dataset}: offline set verified and written to {path}")
        return 0
    try:
        paths = fetch_dataset(args.dataset, raw_dir, mirrors=[*args.mirror, *data["mirrors"]],
                              progress=not args.no_progress and sys.stderr.isatty(),
                              timeout=args.timeout)
    except DownloadError as exc:
        logging.getLogger("download").error("%s", exc)
        return 1
    folder = next(iter(paths.values())).parent
    print(f"{args.dataset}: {len(paths)} files verified in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
