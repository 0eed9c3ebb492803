#!/usr/bin/env python
"""Evaluate one trained run: scripts/evaluate.py --data D.npz --model model.pt --out metrics.json
--seed s --family F --settings JSON [--threads N]   (the values the run uses,
vaepriors.config.run_values; DVC passes the evaluate section as flags instead: ${evaluate})."""

import argparse
import sys
from pathlib import Path

from vaepriors.cli import family_name, parse_run_script
from vaepriors.data.prepare import ProcessedDataError
from vaepriors.evaluation.run import evaluate_run
from vaepriors.evaluation.tables import MetricsFileError, read_metrics
from vaepriors.io import write_json
from vaepriors.models import TorchFileError


def family_of(args) -> str:
    """The family named by --family, else by the run's config.json (a script run by hand)."""
    if args.family is None:
        args.family = read_metrics(Path(args.model).parent / "config.json", required=("model",))["model"]
    return args.family


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--family", type=family_name,
                        help="the run's latent family (default: its config.json's)")
    parser.add_argument("--no-progress", action="store_true")
    args, values = parse_run_script(parser, argv, "evaluate", family_of)
    cfg = values["evaluate"]
    keys = ("dataset", "model", "latent_dim", "code_dim", "seed")
    try:
        run_config = read_metrics(Path(args.model).parent / "config.json", required=keys)
        metrics = {key: run_config[key] for key in keys}
        metrics.update(evaluate_run(args.model, args.data, args.seed, cfg, progress=not args.no_progress))
    except (MetricsFileError, ProcessedDataError, TorchFileError) as exc:
        parser.exit(1, f"evaluate: error: {exc}\n")
    metrics["evaluate"] = cfg
    write_json(args.out, metrics)
    print(f"{metrics['model']} d={metrics['latent_dim']} seed={metrics['seed']}: "
          f"log p(x) {metrics['loglik']['mean']:.2f} nats (K={cfg['importance_samples']}), "
          f"clustering acc {metrics['clustering']['acc']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
