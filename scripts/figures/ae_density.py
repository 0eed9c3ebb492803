#!/usr/bin/env python
"""Study 7, ex-post density estimation for the plain AE at one latent dim (all seeds):
scripts/figures/ae_density.py --data D.npz --classifier C.pt --models ae/d{d}/s*/model.pt ...
--out T.csv  ${figures}"""

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from vaepriors.data.prepare import load_processed
from vaepriors.figures.cli import parse
from vaepriors.figures.density import density_rows
from vaepriors.figures.frechet import FeatureReference, load_classifier, run_key
from vaepriors.models import load_model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", required=True)
    parser.add_argument("--classifier", required=True)
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--out", required=True)
    args, cfg = parse(parser, argv)
    arrays = load_processed(args.data)
    reference = FeatureReference(load_classifier(args.classifier), arrays, cfg["fd_samples"])
    rows = []
    for path in args.models:
        key = run_key(path)
        model = load_model(path)
        if not model.ex_post_density:
            parser.error(f"{path} is a {model.name} checkpoint; the density study takes families "
                         f"with an ex-post density (the AE)")
        run_cfg = json.loads((Path(path).parent / "config.json").read_text())
        candidates = run_cfg.get("model_cfg", {}).get("ae_density_components") or [model.density_components]
        for row in density_rows(model, arrays, key["seed"], cfg["density_sizes"], candidates,
                                cfg["kde_bandwidth_factors"], cfg["density_max_eval"], reference,
                                reference.n):
            rows.append({"dataset": key["dataset"], **row})
    table = pd.DataFrame(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.groupby(["estimator", "n"])[["test_logdens_per_dim", "fd"]].mean().to_string())
    return 0


if __name__ == "__main__":
    sys.exit(main())
