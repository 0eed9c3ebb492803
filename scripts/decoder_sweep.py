#!/usr/bin/env python
"""The decoder-capacity sweep's table, paragraph and figure: scripts/decoder_sweep.py
--metrics M.json ... --models M.pt ... --sizes NAME ... [--budget TEXT] --out-csv T.csv
--out-md T.md --out-png F.png   (one model file and one size name per metrics file, same order;
each model's config.json and history.csv beside it give the best validation ELBO, the training
ELBO at that epoch and why training stopped)."""

import argparse
import csv
import sys
from pathlib import Path

from vaepriors import decoder_sweep
from vaepriors.cli import parse_script
from vaepriors.evaluation.tables import MetricsFileError, read_metrics
from vaepriors.io import write_text
from vaepriors.models import load_model


def _train_elbo(path: Path, epoch: int) -> float:
    """The training ELBO of epoch ``epoch`` in a run's history.csv."""
    try:
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if int(row["epoch"]) == int(epoch):
                    return float(row["train_elbo"])
    except (OSError, KeyError, ValueError) as exc:
        raise MetricsFileError(f"{path}: cannot read the training ELBO ({exc})") from exc
    raise MetricsFileError(f"{path}: no row for the best epoch {epoch}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--metrics", "--models", "--sizes"):
        parser.add_argument(name, nargs="+", required=True)
    parser.add_argument("--budget", default="", help="the protocol, stated above the table")
    for name in ("--out-csv", "--out-md", "--out-png"):
        parser.add_argument(name, required=True)
    args, _ = parse_script(parser, argv)
    if not len(args.metrics) == len(args.models) == len(args.sizes):
        parser.error("one --models file and one --sizes name per --metrics file")
    rows = []
    for metrics_path, model_path, size in zip(args.metrics, args.models, args.sizes):
        try:
            m = read_metrics(metrics_path, required=("dataset", "model", "latent_dim", "seed", "loglik"))
            run = read_metrics(Path(model_path).parent / "config.json",
                               required=("best_val_elbo", "best_epoch", "stop_reason"))
            train_elbo = _train_elbo(Path(model_path).parent / "history.csv", run["best_epoch"])
        except MetricsFileError as exc:
            parser.exit(1, f"decoder_sweep: error: {exc}\n")
        decoder = load_model(model_path).decoder
        rows.append({"size": size, "dataset": m["dataset"], "model": m["model"],
                     "latent_dim": int(m["latent_dim"]), "seed": int(m["seed"]),
                     "decoder_parameters": sum(p.numel() for p in decoder.parameters()),
                     "loglik": m["loglik"]["mean"], "best_val_elbo": run["best_val_elbo"],
                     "train_elbo": train_elbo, "at_epoch_limit": run["stop_reason"] == "max_epochs"})
    table = decoder_sweep.table(rows)
    write_text(args.out_csv, table.to_csv(index=False))
    write_text(args.out_md, decoder_sweep.markdown(table, args.budget))
    decoder_sweep.plot(table, args.out_png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
