#!/usr/bin/env python
"""How far the pipeline's K is from converged, for one trained run: the test log-likelihood at a
larger number of importance samples and at the evaluation's K, on the same test points (the first
--test-points, default all), so that the gain is paired point by point:
scripts/loglik_check.py --data D.npz --model model.pt --out check.json --seed s --family F
--importance-samples K [--test-points N] --settings JSON [--threads N]
(--settings: the run's evaluate values, as scripts/evaluate.py takes them)."""

import argparse
import sys
from pathlib import Path

import torch

from vaepriors.cli import family_name, parse_run_script
from vaepriors.data.prepare import ProcessedDataError, load_processed
from vaepriors.evaluation.loglik import decoder_kernel_name, importance_log_likelihood, prepare_proposal
from vaepriors.evaluation.tables import MetricsFileError, read_metrics
from vaepriors.io import write_json
from vaepriors.models import TorchFileError, load_model
from vaepriors.threads import flush_denormals, limit_threads


@flush_denormals()
def check(args, cfg: dict) -> dict:
    limit_threads(cfg["threads"])
    keys = ("dataset", "model", "latent_dim", "code_dim", "seed")
    run = read_metrics(Path(args.model).parent / "config.json", required=keys)
    arrays = load_processed(args.data)
    model = load_model(args.model)
    x_test = torch.from_numpy(arrays["xb_test"][: args.test_points]).float()
    x_val = torch.from_numpy(arrays["xb_val"]).float()
    kernel = cfg["decoder_kernel"]
    # what the family sets up first, as in the evaluation (the AE: its proposal scale)
    prepare_proposal(model, x_val, cfg, args.seed, kernel)
    generator = torch.Generator().manual_seed(args.seed)

    def loglik(k):
        return importance_log_likelihood(model, x_test, k, cfg["chunk_elements"], generator=generator,
                                         kernel=kernel)

    check, base = loglik(args.importance_samples), loglik(cfg["importance_samples"])
    gain = check - base
    return {**{k: run[k] for k in keys},
            "loglik": {"mean": float(check.mean()), "sd": float(check.std()),
                       "importance_samples": args.importance_samples, "n_test": len(check),
                       "decoder_kernel": decoder_kernel_name(model, x_test, kernel)},
            "loglik_base": {"mean": float(base.mean()), "importance_samples": cfg["importance_samples"]},
            "gain": {"mean": float(gain.mean()), "sem": float(gain.std() / len(gain) ** 0.5)}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--family", type=family_name, required=True)
    parser.add_argument("--importance-samples", type=int, required=True)
    parser.add_argument("--test-points", type=int, help="the first N test points (default: all)")
    args, values = parse_run_script(parser, argv, "evaluate", lambda a: a.family)
    if args.importance_samples < 1:
        parser.error(f"--importance-samples must be at least 1, got {args.importance_samples}")
    if args.test_points is not None and args.test_points < 1:
        parser.error(f"--test-points must be at least 1, got {args.test_points}")
    try:
        result = check(args, values["evaluate"])
    except (MetricsFileError, ProcessedDataError, TorchFileError) as exc:
        parser.exit(1, f"loglik_check: error: {exc}\n")
    write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
