"""Per-run metrics files and the aggregate tables built from them.

Per-run metrics dict, written to results/metrics/{dataset}/{model}/d{latent_dim}/s{seed}.json.
Only the first five keys are required; a missing section is simply absent from the tables.

    {
      "dataset": "mnist", "model": "svae", "latent_dim": 10, "code_dim": 11, "seed": 0,
      "loglik": {"mean": -93.2, "sd": 25.1, "K": 500, "n_test": 10000, "chunk_elements": 20000000},
                      # mean/sd of the per-point importance-sampled log p(x) over the test split, nats
      "elbo": {"elbo": -97.0, "rec": 72.1, "kl": 24.9},  # test means, nats; rec = -log p(x|z)
      "active_units": 9,                 # code_dim coordinates with Var_x(embed) > 0.01
      "clustering": {"method": "kmeans" | "spherical_kmeans" | "mixture", "k": 10,
                     "acc": 0.61, "nmi": 0.55, "ari": 0.42},   # test split, Hungarian accuracy
      "knn": {"100": {"k": 5, "val_acc": {"1": 0.7, "5": 0.72}, "test_acc": 0.71},
              "600": {...}, "1000": {...}},                     # keyed by number of labels
      "references": {"pixel_kmeans": {"acc", "nmi", "ari"},     # no-VAE floors, same test split
                     "pca_gmm": {"acc", "nmi", "ari"}},
      "meta": {"split": "test", "binarize_seed": 1, "importance_samples": 500,
               "ae_proposal_scale": 0.1, "ae_scale_scores": {"0.1": -95.0, ...},   # AE only
               "bound": "...what the log-likelihood bounds (AE: the AE-plus-GMM model)...",
               "versions": {...}, "host": "...", "elapsed_s": 812.0}
    }

Flattened metric names used by the tables: loglik, elbo, rec, kl, active_units, cluster_acc,
cluster_nmi, cluster_ari, knn_{n_labels} (test accuracy). Reference rows appear as pseudo-models
"pixel_kmeans" and "pca_gmm" in the clustering table; runs of several models that share a dataset,
latent dim and seed carry the same reference numbers, which are counted once.

Tables (results/tables/{loglik,clustering,knn}.{csv,md}) are laid out like Table 1 of Davidson et
al. 2018: one block per dataset and metric, rows = latent dim d, columns = model, cells = mean ± sd
over seeds (sample sd; a single seed shows the mean alone). The CSV holds the same layout as
numbers: columns dataset, metric, latent_dim, then {model}_mean, {model}_sd, {model}_n.
summary.json holds the headline means: {dataset: {model: {"d{latent_dim}": {metric: mean}}}}.

Cells of an earlier publication (its tables/ folder, `carry`) fill the cells (dataset, model, d)
that no run here has, so a grid too long for one machine's session builds up publication by
publication; carried.json lists them and their source.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from .. import families
from ..io import write_text

# Clustering floors that need no VAE, listed after the families.
REFERENCE_ROWS = ["pixel_kmeans", "pca_gmm"]
TABLE_METRICS = {
    "loglik": ["loglik", "elbo", "rec", "kl", "active_units", "loglik_shared"],
    "clustering": ["cluster_acc", "cluster_nmi", "cluster_ari"],
    "knn": [],  # knn_{n_labels}: whichever label counts the runs report
}
CARRIED = "carried.json"
HEADLINE = ["loglik", "cluster_acc"]  # plus every knn_{n_labels}
TITLES = {
    "loglik": "importance-sampled test log-likelihood (nats)",
    "elbo": "test ELBO (nats)",
    "rec": "test reconstruction term -log p(x|z) (nats)",
    "kl": "test KL term (nats)",
    "active_units": "active units (Var_x E_q[z_j] > 0.01)",
    "loglik_shared": "diagnostic: the S-VAE authors' example estimator, one decoder sample for all K (nats; not a log-likelihood)",
    "cluster_acc": "clustering accuracy (Hungarian, test split, K = classes)",
    "cluster_nmi": "clustering NMI (test split)",
    "cluster_ari": "clustering ARI (test split)",
}
_KEYS = ["dataset", "model", "latent_dim", "seed"]


def _run_rows(run: dict) -> list[dict]:
    """Long rows (dataset, model, latent_dim, seed, metric, value) of one metrics dict."""
    key = {k: run[k] for k in _KEYS}
    values = {}
    if "loglik" in run:
        values["loglik"] = run["loglik"]["mean"]
    values.update(run.get("elbo", {}))
    if "loglik_shared_sample" in run:
        values["loglik_shared"] = run["loglik_shared_sample"]["mean"]
    if "active_units" in run:
        values["active_units"] = run["active_units"]
    for name in ("acc", "nmi", "ari"):
        if name in run.get("clustering", {}):
            values[f"cluster_{name}"] = run["clustering"][name]
    for n_labels, result in run.get("knn", {}).items():
        values[f"knn_{n_labels}"] = result["test_acc"]
    rows = [{**key, "metric": m, "value": float(v)} for m, v in values.items()]
    for ref, scores in run.get("references", {}).items():
        # A reference row is one fixed-seed fit per dataset, not one per run: key it to seed 0 so
        # the copies every run carries collapse to one (shown as a single value, not "± 0").
        rows += [
            {**key, "seed": 0, "model": ref, "metric": f"cluster_{m}", "value": float(scores[m])}
            for m in ("acc", "nmi", "ari")
        ]
    return rows


def runs_frame(metrics: list[dict]) -> pd.DataFrame:
    """One row per (run, metric); duplicated reference rows collapse to one."""
    rows = [row for run in metrics for row in _run_rows(run)]
    frame = pd.DataFrame(rows, columns=[*_KEYS, "metric", "value"])
    return frame.drop_duplicates(subset=[*_KEYS, "metric"], keep="first")


def aggregate(metrics: list[dict]) -> pd.DataFrame:
    """Mean, sample sd and number of seeds per (dataset, metric, latent_dim, model)."""
    grouped = runs_frame(metrics).groupby(["dataset", "metric", "latent_dim", "model"])["value"]
    return grouped.agg(mean="mean", sd="std", n="count").reset_index()


def _model_order(models) -> list[str]:
    known = [m for m in [*families.names(), *REFERENCE_ROWS] if m in set(models)]
    return known + sorted(set(models) - set(known))


def _metric_order(table: str, metrics) -> list[str]:
    if table == "knn":
        return sorted((m for m in metrics if m.startswith("knn_")), key=lambda m: int(m[4:]))
    return [m for m in TABLE_METRICS[table] if m in set(metrics)]


def wide_table(summary: pd.DataFrame, table: str) -> pd.DataFrame:
    """Rows (dataset, metric, latent_dim), columns {model}_mean, {model}_sd, {model}_n."""
    metrics = _metric_order(table, summary["metric"].unique())
    part = summary[summary["metric"].isin(metrics)]
    if part.empty:
        return pd.DataFrame(columns=["dataset", "metric", "latent_dim"])
    wide = part.pivot_table(
        index=["dataset", "metric", "latent_dim"],
        columns="model",
        values=["mean", "sd", "n"],
        dropna=False,
    )
    models = _model_order(part["model"].unique())
    columns = [(stat, m) for m in models for stat in ("mean", "sd", "n")]
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(columns))
    wide.columns = [f"{m}_{stat}" for stat, m in columns]
    counts = [f"{m}_n" for m in models]
    wide[counts] = wide[counts].astype("Int64")  # pivoting made them float; missing cells stay <NA>
    wide = wide.reset_index()
    wide["metric"] = pd.Categorical(wide["metric"], categories=metrics, ordered=True)
    return wide.sort_values(["dataset", "metric", "latent_dim"]).reset_index(drop=True)


def _cell(mean: float, sd: float, metric: str) -> str:
    if math.isnan(mean):
        return ""
    digits = 3 if metric.startswith(("cluster_", "knn_")) else 1 if metric == "active_units" else 2
    text = f"{mean:.{digits}f}"
    return text if math.isnan(sd) else f"{text} ± {sd:.{digits}f}"


def _title(metric: str) -> str:
    if metric.startswith("knn_"):
        return f"k-NN test accuracy with {metric[4:]} labels (k chosen on validation)"
    return TITLES.get(metric, metric)


def markdown(wide: pd.DataFrame) -> str:
    """One block per dataset and metric: rows d, columns model, cells mean ± sd over seeds."""
    models = [c[: -len("_mean")] for c in wide.columns if c.endswith("_mean")]
    blocks = []
    for (dataset, metric), block in wide.groupby(["dataset", "metric"], observed=True, sort=False):
        lines = [f"## {dataset}: {_title(metric)}", "", "| d | " + " | ".join(models) + " |"]
        lines.append("|---" * (len(models) + 1) + "|")
        for _, row in block.iterrows():
            cells = [_cell(row[f"{m}_mean"], row[f"{m}_sd"], metric) for m in models]
            lines.append(f"| {row['latent_dim']} | " + " | ".join(cells) + " |")
        # a model without this metric (metrics files older than it) has an all-NA column
        most = {m: block[f"{m}_n"].dropna().max() for m in models}
        seeds = ", ".join(f"{m} {int(n)}" for m, n in most.items() if pd.notna(n) and n > 0)
        blocks.append("\n".join(lines) + f"\n\nSeeds per cell (most): {seeds}.\n")
    return "\n".join(blocks) if blocks else "No run reports these metrics.\n"


def summary_dict(summary: pd.DataFrame) -> dict:
    """Headline means, nested {dataset: {model: {"d{latent_dim}": {metric: mean}}}}."""
    keep = summary["metric"].isin(HEADLINE) | summary["metric"].str.startswith("knn_")
    out: dict = {}
    for row in summary[keep].itertuples(index=False):
        cell = out.setdefault(row.dataset, {}).setdefault(row.model, {})
        cell.setdefault(f"d{row.latent_dim}", {})[row.metric] = float(row.mean)
    return out


_CELL = ["dataset", "model", "latent_dim"]


def _read_csv(path: Path, columns) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:  # a table with no rows is written as an empty file
        return pd.DataFrame(columns=list(columns))
    except FileNotFoundError:
        raise MetricsFileError(f"{path}: not found (a carried publication's tables/ folder holds "
                               f"{', '.join(f'{t}.csv' for t in TABLE_METRICS)})") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise MetricsFileError(f"{path}: not a readable CSV table ({exc})") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MetricsFileError(f"{path}: missing columns {missing}")
    return frame


def _absent(frame: pd.DataFrame, present: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` whose cell (dataset, model, latent_dim) is not in ``present``."""
    have = set(map(tuple, present[_CELL].itertuples(index=False))) if len(present) else set()
    return frame[[tuple(c) not in have for c in frame[_CELL].itertuples(index=False)]]


def carried_cells(carry: str | Path, present: pd.DataFrame) -> pd.DataFrame:
    """Long rows (dataset, metric, latent_dim, model, mean, sd, n) of the wide tables under
    ``carry`` for the cells (dataset, model, latent_dim) absent from ``present``."""
    rows = []
    for table in TABLE_METRICS:
        wide = _read_csv(Path(carry) / f"{table}.csv", ["dataset", "metric", "latent_dim"])
        for model in (c[: -len("_mean")] for c in wide.columns if c.endswith("_mean")):
            part = wide[["dataset", "metric", "latent_dim", f"{model}_mean", f"{model}_sd", f"{model}_n"]]
            part = part.set_axis(["dataset", "metric", "latent_dim", "mean", "sd", "n"], axis=1)
            rows.append(part.dropna(subset=["mean"]).assign(model=model))
    carried = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=[*_CELL, "metric"])
    return _absent(carried, present).astype({"latent_dim": int, "n": int}).reset_index(drop=True)


def write_tables(metrics: list[dict], out_dir: str | Path, carry: str | Path | None = None) -> list[Path]:
    """Write {loglik,clustering,knn}.{csv,md}, summary.json and carried.json (the cells taken
    from ``carry``, an earlier publication's tables/) under out_dir; return the paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = aggregate(metrics)
    carried = carried_cells(carry, summary) if carry else pd.DataFrame(columns=[*_CELL, "n"])
    summary = pd.concat([summary, carried], ignore_index=True) if len(carried) else summary
    written = []
    for table in TABLE_METRICS:
        wide = wide_table(summary, table)
        write_text(out_dir / f"{table}.csv", wide.to_csv(index=False))
        write_text(out_dir / f"{table}.md", markdown(wide))
        written += [out_dir / f"{table}.csv", out_dir / f"{table}.md"]
    path = out_dir / "summary.json"
    write_text(path, json.dumps(summary_dict(summary), indent=2, sort_keys=True) + "\n")
    cells = carried.groupby(_CELL)["n"].max().reset_index() if len(carried) else carried
    record = {"source": str(carry) if carry else None,
              "cells": [{"dataset": r.dataset, "model": r.model, "latent_dim": int(r.latent_dim),
                         "n": int(r.n)} for r in cells.itertuples(index=False)]}
    write_text(out_dir / CARRIED, json.dumps(record, indent=2) + "\n")
    return [*written, path, out_dir / CARRIED]


def carried_list(record: dict) -> str:
    """The cells of a carried.json record, as text."""
    return "; ".join(f"{c['dataset']} {c['model']} d = {c['latent_dim']} (n = {c['n']})" for c in record["cells"])


def carried_sentence(record: dict) -> str:
    """Which cells come from an earlier publication (aggregate --carry) rather than runs here."""
    if not record["cells"]:
        return ""
    cells = carried_list(record)
    return (f"Cells carried from an earlier publication ({record['source']}; their runs are not under "
            f"this results/, their provenance is that publication's RUN.md in git history): {cells}.")


class MetricsFileError(ValueError):
    """A JSON result file (per-run metrics, references, run config) is unreadable or malformed;
    the message names it."""


def read_metrics(path: str | Path, required: tuple[str, ...] = ("dataset",)) -> dict:
    """One JSON result file; a damaged one is a MetricsFileError naming it and how to regenerate it."""
    path = Path(path)
    hint = (f"Regenerate it: rerun your snakemake command with `--forcerun {path}` "
            f"(e.g. `snakemake --cores all --forcerun {path}`)")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MetricsFileError(f"{path}: not found. {hint}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetricsFileError(f"{path}: not a readable JSON file ({exc}). {hint}") from None
    missing = [key for key in required if not isinstance(obj, dict) or key not in obj]
    if missing:
        raise MetricsFileError(f"{path}: missing keys {missing}. {hint}")
    return obj


def load_metrics(root: str | Path) -> list[dict]:
    """Every metrics JSON under root (results/metrics), in path order."""
    return [read_metrics(p) for p in sorted(Path(root).rglob("*.json"))]


def convergence_table(checks: list[dict], carry: str | Path | None = None) -> pd.DataFrame:
    """Per (dataset, model, d): the test log-likelihood at the evaluation's K and at a larger K on
    the same test points (scripts/loglik_check.py), both means over seeds, and the gain (larger K
    minus K, paired point by point within a run), mean ± sd over seeds. Rows of ``carry`` (an
    earlier publication's tables/) fill the cells that no check here has."""
    rows = []
    for r in checks:
        rows.append({**{k: r[k] for k in _KEYS}, "n_test": r["loglik"]["n_test"],
                     "k": r["loglik_base"]["importance_samples"], "base": r["loglik_base"]["mean"],
                     "k_check": r["loglik"]["importance_samples"], "check": r["loglik"]["mean"],
                     "gain": r["gain"]["mean"]})
    both = pd.DataFrame(rows)
    rows = []
    for (ds, model, dim), cell in (both.groupby(["dataset", "model", "latent_dim"], sort=False)
                                   if len(both) else []):
        rows.append({"dataset": ds, "model": model, "latent_dim": int(dim), "n": len(cell),
                     "n_test": int(cell["n_test"].min()), "k": int(cell["k"].iloc[0]),
                     "loglik": cell["base"].mean(), "k_check": int(cell["k_check"].iloc[0]),
                     "loglik_check": cell["check"].mean(), "gain": cell["gain"].mean(),
                     "gain_sd": cell["gain"].std() if len(cell) > 1 else math.nan})
    out = pd.DataFrame(rows)
    if carry:
        old = _read_csv(Path(carry) / "loglik_convergence.csv", [*_CELL, "n", "gain"])
        old = _absent(old, out)
        out = pd.concat([out, old], ignore_index=True) if len(old) else out
    if out.empty:
        return out
    out["model"] = pd.Categorical(out["model"], _model_order(out["model"].unique()))
    return out.sort_values(["dataset", "model", "latent_dim"]).reset_index(drop=True)


def convergence_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "No run has both log-likelihoods.\n"
    k, k_check = int(table["k"].iloc[0]), int(table["k_check"].iloc[0])
    lines = [f"Test log-likelihood (nats) at K = {k} and at K = {k_check} importance samples, same "
             f"runs and the same test points (the first n test of the test split); gain = K = {k_check} "
             f"minus K = {k}, paired point by point within a run, mean ± sd over the n runs.", "",
             f"| dataset | model | d | n | n test | K = {k} | K = {k_check} | gain |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        gain = f"{r.gain:+.3f}" + ("" if math.isnan(r.gain_sd) else f" ± {r.gain_sd:.3f}")
        lines.append(f"| {r.dataset} | {r.model} | {r.latent_dim} | {r.n} | {r.n_test} | {r.loglik:.2f} "
                     f"| {r.loglik_check:.2f} | {gain} |")
    return "\n".join(lines) + "\n"
