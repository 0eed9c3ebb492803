#!/usr/bin/env python
"""Write results/summary.md: evaluation tables, figures and a generated paragraph per study.
scripts/figures/summary.py --out results/summary.md --loglik L.csv --clustering C.csv --knn K.csv
--tables-md T.md ... --figures F.png ... --sample-quality Q.csv --classifiers C.json ...
--density A.csv ... --weights W.csv ... [--comparison paper_comparison.csv --pattern
paper_pattern.csv --budget paper_budget.json --carried carried.json]"""

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from vaepriors import ablation
from vaepriors.evaluation.replication import replication_paragraph
from vaepriors.evaluation.tables import carried_sentence, read_metrics
from vaepriors.figures import semisup
from vaepriors.figures import summary as S
from vaepriors.figures.cli import parse


def _concat(paths):
    frames = [pd.read_csv(p) for p in paths or []]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def spherical_paragraph(paths: list[str]) -> str:
    if not paths:
        return ""
    from vaepriors.figures import spherical  # torch: only when the study ran

    return "".join(spherical.paragraph(t, t["cpu"].iloc[0]) for t in map(pd.read_csv, paths))


def convergence_paragraph(table: pd.DataFrame) -> str:
    if table.empty:
        return ""
    k, k_check = int(table["k"].iloc[0]), int(table["k_check"].iloc[0])
    worst = table.loc[table["gain"].idxmax()]
    return (f"Going from K = {k} to K = {k_check} importance samples raises the test log-likelihood by "
            f"{table['gain'].min():.3f} to {table['gain'].max():.3f} nats per cell (mean over seeds); "
            f"the most at {worst['model']}, d = {int(worst['latent_dim'])}.")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True)
    parser.add_argument("--loglik", required=True)
    parser.add_argument("--clustering", required=True)
    parser.add_argument("--knn", required=True)
    parser.add_argument("--tables-md", nargs="*", default=[])
    parser.add_argument("--figures", nargs="*", default=[])
    parser.add_argument("--sample-quality", nargs="*", default=[])
    parser.add_argument("--classifiers", nargs="*", default=[])
    parser.add_argument("--density", nargs="*", default=[])
    parser.add_argument("--weights", nargs="*", default=[])
    parser.add_argument("--comparison", help="paper_comparison.csv (scripts/compare_paper.py)")
    parser.add_argument("--pattern", help="paper_pattern.csv")
    parser.add_argument("--budget", help="paper_budget.json")
    parser.add_argument("--carried", help="carried.json (scripts/aggregate.py --carry)")
    parser.add_argument("--spherical", nargs="*", default=[],
                        help="spherical_stability.csv (scripts/figures/spherical_study.py)")
    # nargs "?": the rule passes the flag with no file when the study is not configured
    parser.add_argument("--ablation", nargs="?", help="ablation.csv (scripts/ablation.py)")
    parser.add_argument("--convergence", nargs="?", help="loglik_convergence.csv (scripts/convergence_table.py)")
    parser.add_argument("--semi-supervised", nargs="?", help="semi_supervised.csv (scripts/semisup.py)")
    args, _ = parse(parser, argv, section=None)
    classifiers = {Path(p).stem: json.loads(Path(p).read_text()) for p in args.classifiers}
    quality, density, weights = _concat(args.sample_quality), _concat(args.density), _concat(args.weights)
    paragraphs = {
        "replication": replication_paragraph(
            pd.read_csv(args.comparison), pd.read_csv(args.pattern),
            read_metrics(args.budget, required=("label",)).get("label", ""),
            carried_sentence(read_metrics(args.carried, required=("cells",))) if args.carried else "")
        if args.comparison else "",
        "loglik": S.loglik_paragraph(pd.read_csv(args.loglik)),
        "clustering": S.clustering_paragraph(pd.read_csv(args.clustering)),
        "knn": S.knn_paragraph(pd.read_csv(args.knn)),
        "quality": S.sample_quality_paragraph(quality, classifiers) if len(quality) else "",
        "density": S.density_paragraph(density) if len(density) else "",
        "weights": S.weights_paragraph(weights) if len(weights) else "",
        "spherical": spherical_paragraph(args.spherical),
        "ablation": ablation.paragraph(pd.read_csv(args.ablation)) if args.ablation else "",
        "convergence": convergence_paragraph(pd.read_csv(args.convergence)) if args.convergence else "",
        "semisup": semisup.paragraph(pd.read_csv(args.semi_supervised)) if args.semi_supervised else "",
    }
    # The evaluation stage writes each table as .csv and .md side by side.
    evaluation_md = [Path(p).with_suffix(".md")
                     for p in (args.loglik, args.clustering, args.knn, args.comparison) if p]
    tables_md = [p for p in evaluation_md if p.exists()] + [Path(p) for p in args.tables_md]
    tables_md = list(dict.fromkeys(p.resolve() for p in tables_md))  # given twice: listed once
    S.build_summary(args.out, figures=args.figures, tables_md=tables_md, paragraphs=paragraphs)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
