"""Our results beside published ones: reference numbers as data, the comparison, the verdict.

Reference files (workflow/references/tables/*.csv) hold one row per published number:
``source, dataset, model, latent_dim, metric, value, sd, n, statistic, note`` with metric names
and sign conventions of our tables (vaepriors.evaluation.tables: ``rec`` is -log p(x|z) > 0).
An empty ``latent_dim`` compares the number at every d of the grid; ``statistic`` says what the
value is (``mean`` of ``n`` runs, ``best`` run). Adding a paper or a dataset is adding rows.
Protocol files (workflow/references/protocols/*.csv: ``source, key, value, note``) hold the
published training budget, so a run can say by itself whether it followed the protocol or a
smaller budget.

Conventions: ours = mean ± sample sd over n seeds; the difference ours - paper is also given in
units of our standard error sd / sqrt(n) (n/a with a single seed).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import write_text

REFERENCE_COLUMNS = ["source", "dataset", "model", "latent_dim", "metric", "value", "sd", "n",
                     "statistic", "note"]
PROTOCOL_COLUMNS = ["source", "key", "value", "note"]
NATS_METRICS = ("loglik", "elbo", "rec", "kl")  # compared in nats: "within 1 nat" applies
TOLERANCE_NATS = 1.0
# The qualitative claim of Davidson et al. (2018): S-VAE ahead of N-VAE at low d, behind at high d.
PATTERN = ("svae", "nvae", "loglik")
COMPARISON_COLUMNS = ["source", "dataset", "model", "latent_dim", "metric", "statistic", "paper",
                      "paper_sd", "paper_n", "ours_mean", "ours_sd", "ours_n", "diff", "diff_se",
                      "within_1_nat", "status"]
PATTERN_COLUMNS = ["dataset", "latent_dim", "paper_diff", "ours_diff", "ours_se", "paper_sign",
                   "ours_sign", "agree", "significant"]


class ReferenceFileError(ValueError):
    """A reference file is malformed; the message names the file, row and column."""


def _read_csv(path: Path, columns: list[str], kind: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ReferenceFileError(f"{kind} file {path} is unreadable: {exc}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ReferenceFileError(f"{kind} file {path} lacks column(s) {', '.join(missing)} "
                             f"(expected: {', '.join(columns)})")
    return frame[columns]


def _number(path: Path, row: int, column: str, text: str, *, integer: bool = False,
            required: bool = True) -> float:
    if text.strip() == "":
        if required:
            raise ReferenceFileError(f"{path}, row {row}: column {column!r} is empty")
        return math.nan
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise ReferenceFileError(f"{path}, row {row}: column {column!r} = {text!r} is not "
                             f"{'an integer' if integer else 'a number'}") from None
    if not math.isfinite(value):
        raise ReferenceFileError(f"{path}, row {row}: column {column!r} = {text!r} is not finite")
    return float(value)


def csv_files(paths: Iterable[str | Path]) -> list[Path]:
    """The given files, and the *.csv files of the given folders (sorted)."""
    out = []
    for path in map(Path, paths):
        out += sorted(path.glob("*.csv")) if path.is_dir() else [path]
    return out


def load_references(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Every reference row of the given files or folders, typed; latent_dim NaN means "every d"."""
    frames = []
    for path in csv_files(paths):
        raw = _read_csv(path, REFERENCE_COLUMNS, "reference")
        rows = []
        for i, rec in enumerate(raw.to_dict("records"), start=2):  # row 1 is the header
            for col in ("source", "dataset", "model", "metric", "statistic"):
                if not rec[col].strip():
                    raise ReferenceFileError(f"{path}, row {i}: column {col!r} is empty")
            rows.append({
                **rec,
                "latent_dim": _number(path, i, "latent_dim", rec["latent_dim"], integer=True,
                                      required=False),
                "value": _number(path, i, "value", rec["value"]),
                "sd": _number(path, i, "sd", rec["sd"], required=False),
                "n": _number(path, i, "n", rec["n"], integer=True, required=False),
            })
        frames.append(pd.DataFrame(rows, columns=REFERENCE_COLUMNS))
    refs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=REFERENCE_COLUMNS)
    key = ["source", "dataset", "model", "latent_dim", "metric"]
    dup = refs[refs.duplicated(subset=key, keep=False)]
    if len(dup):
        first = dup.iloc[0]
        raise ReferenceFileError(f"reference row given twice: {', '.join(str(first[k]) for k in key)}")
    return refs


def load_protocols(paths: Iterable[str | Path]) -> dict[str, dict[str, float]]:
    """{source: {key: value}} from protocol files or folders."""
    out: dict[str, dict[str, float]] = {}
    for path in csv_files(paths):
        for i, rec in enumerate(_read_csv(path, PROTOCOL_COLUMNS, "protocol").to_dict("records"), 2):
            out.setdefault(rec["source"], {})[rec["key"]] = _number(path, i, "value", rec["value"])
    return out


def long_results(wide_tables: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Aggregate tables (rows dataset, metric, latent_dim; columns {model}_mean/_sd/_n) as long
    rows dataset, metric, latent_dim, model, mean, sd, n."""
    rows = []
    for wide in wide_tables:
        models = [c[: -len("_mean")] for c in wide.columns if c.endswith("_mean")]
        for rec in wide.to_dict("records"):
            for m in models:
                mean = rec[f"{m}_mean"]
                if pd.isna(mean):
                    continue
                sd, n = rec.get(f"{m}_sd"), rec.get(f"{m}_n")
                rows.append({"dataset": rec["dataset"], "metric": rec["metric"],
                             "latent_dim": int(rec["latent_dim"]), "model": m,
                             "mean": float(mean), "sd": float("nan") if pd.isna(sd) else float(sd),
                             "n": 0 if pd.isna(n) else int(n)})
    return pd.DataFrame(rows, columns=["dataset", "metric", "latent_dim", "model", "mean", "sd", "n"])


def _se(sd: float, n: int) -> float:
    return sd / math.sqrt(n) if n > 1 and not math.isnan(sd) else math.nan


def compare(refs: pd.DataFrame, results: pd.DataFrame, grid: set) -> pd.DataFrame:
    """One row per reference number that the grid (a set of (dataset, model, d) cells that were
    trained) covers: the paper's value beside ours. A covered cell that the results lack has
    status "missing"."""
    ours = {(r.dataset, r.model, r.latent_dim, r.metric): r for r in results.itertuples(index=False)}
    rows = []
    for ref in refs.itertuples(index=False):
        every_d = math.isnan(ref.latent_dim)
        dims = sorted(d for ds, m, d in grid if (ds, m) == (ref.dataset, ref.model)
                      and (every_d or d == int(ref.latent_dim)))
        for d in dims:
            row = {"source": ref.source, "dataset": ref.dataset, "model": ref.model, "latent_dim": d,
                   "metric": ref.metric, "statistic": ref.statistic, "paper": ref.value,
                   "paper_sd": ref.sd, "paper_n": ref.n}
            mine = ours.get((ref.dataset, ref.model, d, ref.metric))
            if mine is None:
                row.update(ours_mean=math.nan, ours_sd=math.nan, ours_n=0, diff=math.nan,
                           diff_se=math.nan, within_1_nat=pd.NA, status="missing")
            else:
                diff = mine.mean - ref.value
                se = _se(mine.sd, mine.n)
                row.update(ours_mean=mine.mean, ours_sd=mine.sd, ours_n=mine.n, diff=diff,
                           diff_se=diff / se if se > 0 else math.nan,
                           within_1_nat=(abs(diff) <= TOLERANCE_NATS) if ref.metric in NATS_METRICS
                           else pd.NA, status="ok")
            rows.append(row)
    frame = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    frame["within_1_nat"] = frame["within_1_nat"].astype("boolean")
    frame["ours_n"] = frame["ours_n"].astype(int)
    return frame


def pattern(refs: pd.DataFrame, results: pd.DataFrame, grid: set,
            models: tuple[str, str, str] = PATTERN) -> pd.DataFrame:
    """Per dataset and d: the sign of a - b (default S-VAE minus N-VAE log-likelihood) in the
    paper and in ours, whether they agree, and whether ours differs from 0 by more than 2 SE."""
    a, b, metric = models
    paper = {(r.dataset, int(r.latent_dim), r.model): r.value
             for r in refs.itertuples(index=False)
             if r.metric == metric and r.model in (a, b) and not math.isnan(r.latent_dim)}
    ours = {(r.dataset, r.latent_dim, r.model): r
            for r in results.itertuples(index=False) if r.metric == metric}
    rows = []
    for dataset, d in sorted({(ds, d) for ds, _, d in grid}, key=lambda c: (c[0], c[1])):
        if (dataset, a, d) in grid and (dataset, b, d) in grid:
            keys = [(dataset, d, m) for m in (a, b)]
            if not all(k in paper and k in ours for k in keys):
                continue
            pa, pb = (paper[k] for k in keys)
            oa, ob = (ours[k] for k in keys)
            diff = oa.mean - ob.mean
            terms = [s**2 / n for s, n in ((oa.sd, oa.n), (ob.sd, ob.n)) if n > 1 and not math.isnan(s)]
            se = math.sqrt(sum(terms)) if len(terms) == 2 else math.nan
            rows.append({"dataset": dataset, "latent_dim": d, "paper_diff": pa - pb,
                         "ours_diff": diff, "ours_se": se, "paper_sign": int(np.sign(pa - pb)),
                         "ours_sign": int(np.sign(diff)),
                         "agree": bool(np.sign(pa - pb) == np.sign(diff)),
                         "significant": bool(se > 0 and abs(diff) > 2 * se)})
    return pd.DataFrame(rows, columns=PATTERN_COLUMNS)


# --- the budget a run used, read from its run records --------------------------------------------

def budget(records: Iterable[dict]) -> dict:
    """What the training actually used, from the config.json records of the runs: the
    configured epoch cap, warm-up and patience, the epochs trained (min-max), the number of seeds
    per cell and the total training time (sum of the per-epoch seconds)."""
    records = list(records)
    if not records:
        return {}
    cells: dict[tuple, set] = {}
    for r in records:
        cells.setdefault((r["dataset"], r["model"], r["latent_dim"]), set()).add(r["seed"])

    def span(key):
        values = sorted({r["train"][key] for r in records})
        return [values[0], values[-1]]

    epochs = [r["epochs"] for r in records]
    return {"runs": len(records), "max_epochs": span("max_epochs"),
            "warmup_epochs": span("warmup_epochs"), "patience": span("patience"),
            "epochs_trained": [min(epochs), max(epochs)],
            "stopped_early": sum(r.get("stop_reason") == "early_stopping" for r in records),
            "seeds_per_cell": [min(map(len, cells.values())), max(map(len, cells.values()))]}


def _range(values: list) -> str:
    lo, hi = values
    return f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"


def budget_label(used: dict, protocols: dict, importance_samples: Iterable[int] = ()) -> str:
    """"budget run against X: ..." where training was shorter than a protocol's, "training
    protocol of X" where it was not (with any shortfall in seeds or importance samples named)."""
    if not used:
        return ""
    parts = []
    for source, proto in sorted(protocols.items()):
        short, fewer = [], []
        for key, ours in (("max_epochs", used["max_epochs"][1]),
                          ("warmup_epochs", used["warmup_epochs"][1]),
                          ("patience", used["patience"][1])):
            if key in proto and ours < proto[key]:
                short.append(f"{key.replace('_', ' ')} {ours:g} (paper {proto[key]:g})")
        if "seeds" in proto and used["seeds_per_cell"][0] < proto["seeds"]:
            fewer.append(f"seeds {used['seeds_per_cell'][0]:g} (paper {proto['seeds']:g})")
        ks = sorted(set(importance_samples))
        if "importance_samples" in proto and ks and ks[0] < proto["importance_samples"]:
            fewer.append(f"importance samples {ks[0]} (paper {proto['importance_samples']:g})")
        if short:
            parts.append(f"budget run against {source}: " + ", ".join(short + fewer))
        else:
            parts.append(f"training protocol of {source}"
                         + (f", with {', '.join(fewer)}" if fewer else ""))
    return "; ".join(parts)


# --- output ---------------------------------------------------------------------------------------

def _fmt(x, digits: int) -> str:
    return "" if x is None or pd.isna(x) else f"{x:.{digits}f}"


def _digits(metric: str) -> int:
    return 3 if metric.startswith(("cluster_", "knn_")) else 2


def markdown(comparison: pd.DataFrame, patterns: pd.DataFrame, label: str = "") -> str:
    if comparison.empty:
        return "No reference numbers cover this grid.\n"
    lines = []
    if label:
        lines += [f"Training budget: {label}.", ""]
    for (source, dataset), block in comparison.groupby(["source", "dataset"], sort=False):
        lines += [f"## {dataset}: ours beside {source}", "",
                  "| model | d | metric | paper | ours (mean ± sd) | n | ours − paper | in SE "
                  "| within 1 nat |", "|---|---|---|---|---|---|---|---|---|"]
        for r in block.itertuples(index=False):
            k = _digits(r.metric)
            paper = _fmt(r.paper, k) + ("" if pd.isna(r.paper_sd) else f" ± {r.paper_sd:.{k}f}")
            paper += "" if r.statistic == "mean" else f" ({r.statistic})"
            if r.status == "missing":
                ours, n, diff, in_se, within = "missing", "0", "", "", ""
            else:
                ours = _fmt(r.ours_mean, k) + ("" if pd.isna(r.ours_sd) else f" ± {r.ours_sd:.{k}f}")
                n, diff, in_se = str(r.ours_n), f"{r.diff:+.{k}f}", _fmt(r.diff_se, 1)
                within = "" if pd.isna(r.within_1_nat) else ("yes" if r.within_1_nat else "no")
            lines.append(f"| {r.model} | {r.latent_dim} | {r.metric} | {paper} | {ours} | {n} | "
                         f"{diff} | {in_se} | {within} |")
        lines.append("")
    if len(patterns):
        a, b, metric = PATTERN
        lines += [f"## Pattern: sign of {a} − {b} ({metric}) per d", "",
                  "| dataset | d | paper | ours (± SE) | agree | ours beyond 2 SE |",
                  "|---|---|---|---|---|---|"]
        for r in patterns.itertuples(index=False):
            se = "" if pd.isna(r.ours_se) else f" ± {r.ours_se:.2f}"
            lines.append(f"| {r.dataset} | {r.latent_dim} | {r.paper_diff:+.2f} | "
                         f"{r.ours_diff:+.2f}{se} | {'yes' if r.agree else 'no'} | "
                         f"{'yes' if r.significant else 'no'} |")
        lines.append("")
    return "\n".join(lines)


def write_comparison(out_dir: str | Path, comparison: pd.DataFrame, patterns: pd.DataFrame,
                     used: dict, label: str) -> list[Path]:
    """paper_comparison.{csv,md}, paper_pattern.csv and paper_budget.json under out_dir."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("paper_comparison.csv", "paper_pattern.csv",
                                                "paper_comparison.md", "paper_budget.json")}
    write_text(paths["paper_comparison.csv"], comparison.to_csv(index=False))
    write_text(paths["paper_pattern.csv"], patterns.to_csv(index=False))
    write_text(paths["paper_comparison.md"], markdown(comparison, patterns, label))
    write_text(paths["paper_budget.json"],
                 json.dumps({**used, "label": label}, indent=2, sort_keys=True) + "\n")
    return list(paths.values())


def replication_paragraph(comparison: pd.DataFrame, patterns: pd.DataFrame, label: str) -> str:
    """The opening paragraph of results/summary.md, every number read from the comparison."""
    if comparison.empty:
        return ("No published reference numbers cover this grid (see workflow/references/), so "
                "there is no replication verdict.")
    done = comparison[comparison["status"] == "ok"]
    nats = done[done["metric"].isin(NATS_METRICS)]
    ll = nats[nats["metric"] == "loglik"]
    parts = []
    if label:
        parts.append(f"**This is a {label}.**" if label.startswith("budget")
                     else f"Training followed the {label}.")
        if done["ours_n"].min() < 3:
            parts.append("With fewer than 3 seeds per cell the standard errors below are rough.")
    if len(nats):
        sources = ", ".join(sorted(nats["source"].unique()))
        parts.append(f"Against {sources}: {int(nats['within_1_nat'].sum())} of {len(nats)} "
                     f"cells in nats (log-likelihood, ELBO, reconstruction, KL) are within "
                     f"{TOLERANCE_NATS:g} nat of the published value; for the log-likelihood "
                     f"{int(ll['within_1_nat'].sum())} of {len(ll)}.")
    if len(ll):
        worst = ll.loc[ll["diff"].abs().idxmax()]
        parts.append(f"Mean log-likelihood difference (ours − paper) {ll['diff'].mean():+.2f} "
                     f"nats; largest {worst['diff']:+.2f} ({worst['model']}, d = "
                     f"{worst['latent_dim']}, {worst['dataset']}).")
    acc = done[done["metric"] == "cluster_acc"]
    for r in acc.itertuples(index=False):
        parts.append(f"Clustering accuracy {r.model} d = {r.latent_dim}: {r.ours_mean:.3f} ± "
                     f"{0.0 if pd.isna(r.ours_sd) else r.ours_sd:.3f} (n = {r.ours_n}) against "
                     f"{r.paper:.3f} ({r.source}, {r.statistic}).")
    if len(patterns):
        agree = patterns[patterns["agree"]]["latent_dim"].tolist()
        disagree = patterns[~patterns["agree"]]["latent_dim"].tolist()
        a, b, metric = PATTERN
        verdicts = [f"agrees with the paper at d = {', '.join(map(str, agree))}" if agree else "",
                    f"disagrees at d = {', '.join(map(str, disagree))}" if disagree else ""]
        parts.append(f"The sign of {a} − {b} {metric} " + " and ".join(v for v in verdicts if v)
                     + f" ({int(patterns['significant'].sum())} of {len(patterns)} of our "
                     f"differences exceed 2 SE).")
    missing = comparison[comparison["status"] == "missing"]
    if len(missing):
        parts.append(f"{len(missing)} covered cell(s) have no result yet.")
    return " ".join(parts)
