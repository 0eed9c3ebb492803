#!/usr/bin/env python
"""Split and binarise one dataset into a processed .npz.

  scripts/prepare.py --dataset NAME [--out PATH] [--raw-dir DIR] ${data}

${data} is the data section of params.yaml as flags (--raw_dir data/raw --split_seed 0
--binarize_seed 1 --n_validation 10000 --max_train 0 ...), as Snakemake and DVC pass it; without
any, params.yaml's data section is used. --out defaults to PROCESSED_DIR/NAME.npz; --raw-dir
overrides data.raw_dir (IDX files are read from RAW_DIR/NAME/, see scripts/download.py).
"""

import argparse
import logging
import sys
from pathlib import Path

from vaepriors.cli import parse_script
from vaepriors.data.idx import IDXFormatError
from vaepriors.data.prepare import PrepareError, prepare_dataset
from vaepriors.data.registry import ALL_DATASETS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, choices=ALL_DATASETS)
    parser.add_argument("--out", help="output .npz (default: PROCESSED_DIR/DATASET.npz)")
    parser.add_argument("--raw-dir", help="overrides data.raw_dir")
    args, data = parse_script(parser, argv, ["data"], from_params=True)
    out = Path(args.out or Path(data["processed_dir"]) / f"{args.dataset}.npz")
    try:
        arrays = prepare_dataset(args.dataset, args.raw_dir or data["raw_dir"], out,
                                 split_seed=data["split_seed"],
                                 binarize_seed=data["binarize_seed"],
                                 n_validation=data["n_validation"],
                                 max_train=data["max_train"])
    except (PrepareError, IDXFormatError) as exc:
        logging.getLogger("prepare").error("%s", exc)
        return 1
    print(f"{args.dataset}: train {len(arrays['x_train'])} / val {len(arrays['x_val'])} / "
          f"test {len(arrays['x_test'])} images of {tuple(int(s) for s in arrays['image_shape'])}"
          f" -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
