#!/usr/bin/env python
"""Train one run: scripts/train.py --data D.npz --out-dir DIR --dataset NAME --model M --latent-dim d
--seed s  --settings JSON [--threads N]   (the values the run uses, vaepriors.config.run_values;
DVC passes the train and model sections of params.yaml as flags instead: ${train} ${model}).

Several seeds of one configuration in one process (stacked parameters, each seed as it would train
alone): --seeds s1 s2 ... --out-dirs DIR1 DIR2 ... instead of --seed and --out-dir."""

import argparse
import sys

from vaepriors.cli import family_name, parse_run_script
from vaepriors.data.prepare import ProcessedDataError
from vaepriors.training.run import train_group


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out-dir")
    parser.add_argument("--out-dirs", nargs="+", help="one run directory per seed of --seeds")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True, type=family_name,
                        help="a registered latent family (vaepriors.families)")
    parser.add_argument("--latent-dim", type=int, required=True)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--seeds", type=int, nargs="+", help="train these seeds together")
    parser.add_argument("--no-progress", action="store_true")
    args, cfg = parse_run_script(parser, argv, "train", lambda a: a.model)
    if (args.seed is None) == (args.seeds is None):
        parser.error("give either --seed (with --out-dir) or --seeds (with --out-dirs)")
    if args.seeds is not None and (args.out_dirs is None or len(args.out_dirs) != len(args.seeds)):
        parser.error("--seeds needs --out-dirs with one directory per seed")
    if args.seed is not None and args.out_dir is None:
        parser.error("--seed needs --out-dir")
    try:
        seeds, out_dirs = (args.seeds, args.out_dirs) if args.seeds is not None else ([args.seed], [args.out_dir])
        records = train_group(args.data, out_dirs, args.dataset, args.model, args.latent_dim, seeds,
                              cfg["train"], cfg["model"], progress=not args.no_progress)
    except ProcessedDataError as exc:
        parser.exit(1, f"train: error: {exc}\n")
    for record in records:
        print(f"{args.model} d={args.latent_dim} seed={record['seed']}: best val ELBO "
              f"{record['best_val_elbo']:.2f} at epoch {record['best_epoch']} ({record['stop_reason']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
