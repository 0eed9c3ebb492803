#!/usr/bin/env python
"""The ablation table and figure: scripts/ablation.py --metrics M.json ... --histories H.csv ...
--variant-metrics ... --variant-histories ... --variants NAME ... --descriptions JSON
--out-csv T.csv --out-md T.md --out-png F.png   (baseline runs first, then one variant name per
variant run, in the order of --variant-metrics)."""

import argparse
import json
import sys

import pandas as pd

from vaepriors import ablation
from vaepriors.cli import parse_script
from vaepriors.evaluation.tables import MetricsFileError
from vaepriors.figures.curves import read_histories
from vaepriors.io import write_text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--metrics", "--histories"):
        parser.add_argument(name, nargs="+", required=True)
    for name in ("--variant-metrics", "--variant-histories", "--variants"):
        parser.add_argument(name, nargs="*", default=[])
    parser.add_argument("--descriptions", default="{}")
    parser.add_argument("--out-csv", required=True)
    parser.add_argument("--out-md", required=True)
    parser.add_argument("--out-png", required=True)
    args, _ = parse_script(parser, argv)
    if len(args.metrics) != len(args.histories):
        parser.error("one --histories file per --metrics file")
    if not len(args.variant_metrics) == len(args.variant_histories) == len(args.variants):
        parser.error("one --variant-histories file and one --variants name per --variant-metrics file")
    variants = [ablation.BASELINE] * len(args.metrics) + args.variants
    metrics, histories = args.metrics + args.variant_metrics, args.histories + args.variant_histories
    try:
        rows = [ablation.read_run(m, h, v) for m, h, v in zip(metrics, histories, variants)]
    except MetricsFileError as exc:
        parser.exit(1, f"ablation: error: {exc}\n")
    table = ablation.table(rows)
    write_text(args.out_csv, table.to_csv(index=False))
    write_text(args.out_md, ablation.markdown(table, json.loads(args.descriptions)))
    curves = []
    for path, variant in zip(histories, variants):
        frame = read_histories([path])
        frame["variant"] = variant
        curves.append(frame)
    ablation.plot_curves(pd.concat(curves, ignore_index=True), args.out_png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
