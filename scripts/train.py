#!/usr/bin/env python
"""Train one run: scripts/train.py --data D.npz --out-dir DIR --dataset NAME --model M --latent-dim d
--seed s  ${train} ${model}   (the train and model sections of params.yaml as flags)."""

import argparse
import logging
import sys

from vaepriors.config import ConfigError, parse_sections
from vaepriors.training.run import train_run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", required=True, choices=["nvae", "svae", "gmmvae", "ae"])
    parser.add_argument("--latent-dim", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--no-progress", action="store_true")
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = parse_sections(rest, ["train", "model"])
    except ConfigError as exc:
        parser.error(str(exc))
    record = train_run(args.data, args.out_dir, args.dataset, args.model, args.latent_dim, args.seed,
                       cfg["train"], cfg["model"], progress=not args.no_progress)
    print(f"{args.model} d={args.latent_dim} seed={args.seed}: best val ELBO "
          f"{record['best_val_elbo']:.2f} at epoch {record['best_epoch']} ({record['stop_reason']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
