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
units of our standard error sd / sqrt(n) (n/a with a single seed). Accuracies (cluster_acc, knn_*)
are fractions 0..1; their difference is also given in percentage points (diff_pp). For every
paper ``loglik`` row the comparison also carries our ``loglik_shared`` diagnostic (the S-VAE
authors' example estimator, one decoder sample for all K; not a log-likelihood) and its distance
from the paper, to see which of the two estimators the published number is closer to.

The pattern (paper_pattern.csv): per dataset, metric and d, S - N (default S-VAE minus N-VAE) in
the paper and in ours, with a Welch test across seeds from the tables' mean, sd and n: standard
error sqrt(sd_S^2/n_S + sd_N^2/n_N), t, Welch-Satterthwaite degrees of freedom, two-sided p;
``significant`` is p < 0.05. The crossover is the first d (on the d compared) at which S - N turns
negative.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..io import write_text

REFERENCE_COLUMNS = ["source", "dataset", "model", "latent_dim", "metric", "value", "sd", "n",
                     "statistic", "note"]
PROTOCOL_COLUMNS = ["source", "key", "value", "note"]
NATS_METRICS = ("loglik", "elbo", "rec", "kl")  # compared in nats: "within 1 nat" applies
TOLERANCE_NATS = 1.0
TOLERANCE_PP = 1.0  # accuracies: "within 1 percentage point"
ALPHA = 0.05  # Welch test of S - N across seeds
SHARED_METRIC = "loglik_shared"  # the shared-decoder-sample diagnostic, set beside paper loglik
# The qualitative claim of Davidson et al. (2018): S-VAE ahead of N-VAE at low d, behind at high d.
PATTERN = ("svae", "nvae", "loglik")
COMPARISON_COLUMNS = ["source", "dataset", "model", "latent_dim", "metric", "statistic", "paper",
                      "paper_sd", "paper_n", "ours_mean", "ours_sd", "ours_n", "diff", "diff_se",
                      "within_1_nat", "status", "diff_pp", "ours_shared_mean", "shared_diff",
                      "note"]
PATTERN_COLUMNS = ["dataset", "metric", "latent_dim", "paper_diff", "ours_diff", "ours_se", "t",
                   "df", "p_value", "paper_sign", "ours_sign", "agree", "significant"]


def is_accuracy(metric: str) -> bool:
    """A fraction 0..1 whose differences read best in percentage points."""
    return metric == "cluster_acc" or metric.startswith("knn_")


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
            # The diagnostic sits beside paper loglik rows only: is the published LL closer to it?
            shared = (ours.get((ref.dataset, ref.model, d, SHARED_METRIC))
                      if ref.metric == "loglik" else None)
            shared_mean = math.nan if shared is None else shared.mean
            row.update(ours_shared_mean=shared_mean, shared_diff=shared_mean - ref.value,
                       note=ref.note, diff_pp=math.nan)
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
                           else pd.NA, status="ok",
                           diff_pp=100 * diff if is_accuracy(ref.metric) else math.nan)
            rows.append(row)
    frame = pd.DataFrame(rows, columns=COMPARISON_COLUMNS)
    frame["within_1_nat"] = frame["within_1_nat"].astype("boolean")
    frame["ours_n"] = frame["ours_n"].astype(int)
    return frame


def welch(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int) -> dict:
    """Welch's unequal-variance test of mean_a - mean_b from summary statistics (sd = sample sd):
    diff, se, t, df (Welch-Satterthwaite) and the two-sided p; NaN where a side has fewer than 2
    seeds or both sds are 0."""
    diff = mean_a - mean_b
    out = {"diff": diff, "se": math.nan, "t": math.nan, "df": math.nan, "p": math.nan}
    if n_a < 2 or n_b < 2 or math.isnan(sd_a) or math.isnan(sd_b):
        return out
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    if va + vb <= 0:
        return out
    res = stats.ttest_ind_from_stats(mean_a, sd_a, n_a, mean_b, sd_b, n_b, equal_var=False)
    out.update(se=math.sqrt(va + vb), t=float(res.statistic), p=float(res.pvalue),
               df=(va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1)))
    return out


def pattern(refs: pd.DataFrame, results: pd.DataFrame, grid: set,
            models: tuple[str, str, str] = PATTERN, paper_metric: str | None = None) -> pd.DataFrame:
    """Per dataset and d: a - b (default S-VAE minus N-VAE log-likelihood) in the paper and in
    ours, with ours tested across seeds (welch), the signs, and whether they agree. The paper's
    side is its ``paper_metric`` (default the same metric)."""
    a, b, metric = models
    paper = {(r.dataset, int(r.latent_dim), r.model): r.value
             for r in refs.itertuples(index=False)
             if r.metric == (paper_metric or metric) and r.model in (a, b)
             and not math.isnan(r.latent_dim)}
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
            w = welch(oa.mean, oa.sd, oa.n, ob.mean, ob.sd, ob.n)
            rows.append({"dataset": dataset, "metric": metric, "latent_dim": d,
                         "paper_diff": pa - pb, "ours_diff": w["diff"], "ours_se": w["se"],
                         "t": w["t"], "df": w["df"], "p_value": w["p"],
                         "paper_sign": int(np.sign(pa - pb)), "ours_sign": int(np.sign(w["diff"])),
                         "agree": bool(np.sign(pa - pb) == np.sign(w["diff"])),
                         "significant": bool(w["p"] < ALPHA)})  # NaN p compares False
    return pd.DataFrame(rows, columns=PATTERN_COLUMNS)


def patterns(refs: pd.DataFrame, results: pd.DataFrame, grid: set,
             models: tuple[str, str] = PATTERN[:2]) -> pd.DataFrame:
    """The log-likelihood pattern; the same difference in the ELBO (the training objective, no
    estimator involved) and in our shared-sample diagnostic against the paper's log-likelihood
    (which estimator reproduces the published gap); then one per k-NN label count that the
    references give (S - N in k-NN accuracy per d, Table 2 of Davidson et al.)."""
    metrics = [("loglik", None), ("elbo", None), (SHARED_METRIC, "loglik")] + [
        (m, None) for m in sorted({m for m in refs["metric"] if str(m).startswith("knn_")},
                                  key=lambda m: int(m[4:]) if m[4:].isdigit() else 0)]
    frames = [pattern(refs, results, grid, (*models, m), paper) for m, paper in metrics]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=PATTERN_COLUMNS)


def _crossing(dims: list, signs: list) -> tuple | None:
    """(d before, d after) of the first turn of the sign from >= 0 to < 0, or None."""
    for i in range(1, len(dims)):
        if signs[i - 1] >= 0 and signs[i] < 0:
            return dims[i - 1], dims[i]
    return None


def _crossing_text(dims: list, signs: list) -> str:
    hit = _crossing(dims, signs)
    if hit:
        return f"between d = {hit[0]} and {hit[1]}"
    if signs and all(s < 0 for s in signs):
        return "negative at every d compared"
    return "no crossover in the grid"


def crossovers(patterns: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and metric, where S - N first turns negative over the d compared, in the paper
    and in ours: columns dataset, metric, dims, paper, ours (readable text)."""
    patterns = _with_metric(patterns)
    rows = []
    for (dataset, metric), block in patterns.groupby(["dataset", "metric"], sort=False):
        block = block.sort_values("latent_dim")
        dims = [int(d) for d in block["latent_dim"]]
        rows.append({"dataset": dataset, "metric": metric, "dims": dims,
                     "paper": _crossing_text(dims, list(block["paper_sign"])),
                     "ours": _crossing_text(dims, list(block["ours_sign"]))})
    return pd.DataFrame(rows, columns=["dataset", "metric", "dims", "paper", "ours"])


def _with_metric(patterns: pd.DataFrame) -> pd.DataFrame:
    # A paper_pattern.csv written before the metric column held the log-likelihood only.
    return patterns if "metric" in patterns else patterns.assign(metric=PATTERN[2])


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


def _p_text(p: float) -> str:
    if p is None or pd.isna(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _p_phrase(p: float) -> str:
    text = _p_text(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _diff_text(x: float, metric: str) -> str:
    """A signed difference in the unit a reader expects: nats, or points for accuracies."""
    if x is None or pd.isna(x):
        return ""
    return f"{100 * x:+.1f} pp" if is_accuracy(metric) else f"{x:+.{_digits(metric)}f}"


def _col(frame: pd.DataFrame, name: str) -> pd.Series:
    # Files written before a column existed read as NaN there.
    return frame[name] if name in frame else pd.Series(math.nan, index=frame.index)


def _nats_block(block: pd.DataFrame) -> list[str]:
    has_shared = _col(block, "ours_shared_mean").notna().any()
    head = ("| model | d | metric | paper | ours (mean ± sd) | n | ours − paper | in SE "
            "| within 1 nat |")
    rule = "|---|---|---|---|---|---|---|---|---|"
    if has_shared:
        head, rule = head + " shared-sample diagnostic | diagnostic − paper |", rule + "---|---|"
    lines = [head, rule]
    for r in block.to_dict("records"):
        k = _digits(r["metric"])
        paper = _fmt(r["paper"], k) + ("" if pd.isna(r["paper_sd"]) else f" ± {r['paper_sd']:.{k}f}")
        paper += "" if r["statistic"] == "mean" else f" ({r['statistic']})"
        if r["status"] == "missing":
            ours, n, diff, in_se, within = "missing", "0", "", "", ""
        else:
            ours = _fmt(r["ours_mean"], k) + ("" if pd.isna(r["ours_sd"]) else f" ± {r['ours_sd']:.{k}f}")
            n, diff, in_se = str(r["ours_n"]), f"{r['diff']:+.{k}f}", _fmt(r["diff_se"], 1)
            within = "" if pd.isna(r["within_1_nat"]) else ("yes" if r["within_1_nat"] else "no")
        line = (f"| {r['model']} | {r['latent_dim']} | {r['metric']} | {paper} | {ours} | {n} | "
                f"{diff} | {in_se} | {within} |")
        if has_shared:
            line += f" {_fmt(r.get('ours_shared_mean'), k)} | {_diff_text(r.get('shared_diff'), r['metric'])} |"
        lines.append(line)
    if has_shared:
        lines += ["", "Shared-sample diagnostic: the S-VAE authors' example estimator, one decoder "
                  "sample for all K importance samples; not a log-likelihood, shown only to see "
                  "which estimator the published number is closer to."]
    return lines


def _other_block(block: pd.DataFrame) -> list[str]:
    """Accuracies and other non-nats metrics; every row points at its reference note."""
    notes = list(dict.fromkeys(n for n in _col(block, "note").fillna("") if n))
    lines = ["| model | d | metric | paper | ours (mean ± sd) | n | ours − paper | in SE | ref |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in block.to_dict("records"):
        k = _digits(r["metric"])
        paper = _fmt(r["paper"], k) + ("" if pd.isna(r["paper_sd"]) else f" ± {r['paper_sd']:.{k}f}")
        paper += "" if r["statistic"] == "mean" else f" ({r['statistic']})"
        note = r.get("note")
        ref = f"[{notes.index(note) + 1}]" if isinstance(note, str) and note in notes else ""
        if r["status"] == "missing":
            ours, n, diff, in_se = "missing", "0", "", ""
        else:
            ours = _fmt(r["ours_mean"], k) + ("" if pd.isna(r["ours_sd"]) else f" ± {r['ours_sd']:.{k}f}")
            n, diff, in_se = str(r["ours_n"]), _diff_text(r["diff"], r["metric"]), _fmt(r["diff_se"], 1)
        lines.append(f"| {r['model']} | {r['latent_dim']} | {r['metric']} | {paper} | {ours} | {n} | "
                     f"{diff} | {in_se} | {ref} |")
    if notes:
        lines += [""] + [f"[{i}] {n}  " for i, n in enumerate(notes, 1)]
    return lines


def markdown(comparison: pd.DataFrame, patterns: pd.DataFrame, label: str = "") -> str:
    if comparison.empty:
        return "No reference numbers cover this grid.\n"
    lines = []
    if label:
        lines += [f"Training budget: {label}.", ""]
    nats = comparison["metric"].isin(NATS_METRICS)
    for (source, dataset), block in comparison.groupby(["source", "dataset"], sort=False):
        in_nats = nats[block.index]
        if in_nats.any():
            lines += [f"## {dataset}: ours beside {source}", "", *_nats_block(block[in_nats]), ""]
        if (~in_nats).any():
            lines += [f"## {dataset}: ours beside {source}, accuracies and other scores "
                      "(differences of accuracies in percentage points)", "",
                      *_other_block(block[~in_nats]), ""]
    patterns = _with_metric(patterns)
    a, b, _ = PATTERN
    for metric, block in patterns.groupby("metric", sort=False):
        unit = "percentage points" if is_accuracy(metric) else "nats"
        what = (f"{metric} (ours: the shared-sample diagnostic; paper: its log-likelihood)"
                if metric == SHARED_METRIC else metric)
        lines += [f"## Pattern: {a} − {b} in {what} per d ({unit}; Welch test across seeds)", "",
                  "| dataset | d | paper | ours (± SE) | t | df | p | agree | p < 0.05 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        scale, k = (100, 1) if is_accuracy(metric) else (1, 2)  # accuracies in points
        for r in block.to_dict("records"):
            se = r.get("ours_se")
            ours = f"{scale * r['ours_diff']:+.{k}f}" + (
                "" if se is None or pd.isna(se) else f" ± {scale * se:.{k}f}")
            lines.append(f"| {r['dataset']} | {r['latent_dim']} | {scale * r['paper_diff']:+.{k}f} | "
                         f"{ours} | {_fmt(r.get('t'), 2)} | "
                         f"{_fmt(r.get('df'), 1)} | {_p_text(r.get('p_value'))} | "
                         f"{'yes' if r['agree'] else 'no'} | {'yes' if r['significant'] else 'no'} |")
        lines.append("")
        for c in crossovers(block).to_dict("records"):
            lines += [f"Crossover of {a} − {b} in {metric} on {c['dataset']} (first d at which it "
                      f"turns negative, over d = {', '.join(map(str, c['dims']))}): paper: "
                      f"{c['paper']}; ours: {c['ours']}.", ""]
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


def _cells(frame: pd.DataFrame) -> str:
    return ", ".join(f"{r['model']} d = {r['latent_dim']}" for r in frame.to_dict("records"))


def _shared_sentence(ll: pd.DataFrame) -> str:
    """Is the published LL closer to our standard estimator or to the shared-sample diagnostic?"""
    both = ll[_col(ll, "ours_shared_mean").notna()]
    if both.empty:
        return ""
    closer = both[both["shared_diff"].abs() < both["diff"].abs()]
    count = (f"{len(closer)} of {len(both)} cells" + (f" ({_cells(closer)})" if len(closer) <= 6 else "")
             if len(closer) else f"none of the {len(both)} cells")
    return (f"The paper's log-likelihood is on average {both['diff'].abs().mean():.2f} nats from our "
            f"standard estimator and {both['shared_diff'].abs().mean():.2f} nats from the "
            f"shared-sample diagnostic (the S-VAE authors' example estimator, one decoder sample "
            f"for all K; not a log-likelihood); the diagnostic is the closer one in {count}. The "
            f"headline numbers above use the standard estimator.")


def _gain_sentence(nats: pd.DataFrame) -> str:
    """Where a log-likelihood miss sits: the ELBO is what training optimises, so the estimator's
    gain over it (LL - ELBO), the paper's against ours, separates the model from the estimate."""
    key = ["source", "dataset", "model", "latent_dim"]
    both = nats[nats["metric"] == "loglik"].merge(nats[nats["metric"] == "elbo"], on=key,
                                                  suffixes=("", "_elbo")).sort_values(key)
    if both.empty:
        return ""
    several = both["dataset"].nunique() > 1
    cells, missed, in_gain = [], [], []
    for r in both.to_dict("records"):
        name = f"{r['dataset'] + ' ' if several else ''}{r['model']} d = {r['latent_dim']}"
        paper_gain, ours_gain = r["paper"] - r["paper_elbo"], r["ours_mean"] - r["ours_mean_elbo"]
        cells.append(f"{name} {paper_gain:.2f} / {ours_gain:.2f}")
        if not r["within_1_nat"]:
            missed.append(name)
            # diff(LL) = diff(ELBO) + diff(gain): which part carries more of it
            if abs(ours_gain - paper_gain) > abs(r["diff_elbo"]):
                in_gain.append(name)
    text = ("Importance-sampling gain over the ELBO (log-likelihood − ELBO, nats), paper / ours: "
            + "; ".join(cells) + ".")
    if missed:
        text += (f" Of the {len(missed)} cell(s) whose log-likelihood misses the paper's by more than "
                 f"{TOLERANCE_NATS:g} nat, the miss lies mostly in this gain, not in the ELBO, in "
                 f"{len(in_gain)}" + (f" ({', '.join(in_gain)})" if in_gain else "") + ".")
    return text


def _estimator_sentence(pats: pd.DataFrame) -> str:
    """Is the paper's S - N log-likelihood gap reproduced by our standard estimator, or by the
    ELBO and the shared-sample diagnostic? Per d where all three are measured."""
    a, b, metric = PATTERN
    by = {(r["dataset"], r["metric"], r["latent_dim"]): r for r in pats.to_dict("records")}
    cells, closer = [], []
    several = len({k[0] for k in by}) > 1
    for dataset, _, d in sorted(k for k in by if k[1] == metric):
        rows = [by.get((dataset, x, d)) for x in (metric, "elbo", SHARED_METRIC)]
        if any(r is None for r in rows):
            continue
        ll, elbo, shared = rows
        where = f"{dataset} " if several else ""
        cells.append(f"{where}d = {d}: paper {ll['paper_diff']:+.2f}; ours {ll['ours_diff']:+.2f} ± "
                     f"{ll['ours_se']:.2f} with the standard estimator, {shared['ours_diff']:+.2f} ± "
                     f"{shared['ours_se']:.2f} with the diagnostic; ELBO paper "
                     f"{elbo['paper_diff']:+.2f}, ours {elbo['ours_diff']:+.2f} ± {elbo['ours_se']:.2f}")
        if abs(shared["ours_diff"] - ll["paper_diff"]) < abs(ll["ours_diff"] - ll["paper_diff"]):
            closer.append(str(d))
    if not cells:
        return ""
    return (f"Which estimator reproduces the paper's {a} − {b} log-likelihood gap (nats, ± Welch "
            f"SE)? " + "; ".join(cells) + ". The diagnostic's gap is the closer one to the paper's at "
            + (f"d = {', '.join(closer)}" if closer else "no d") + f" of the {len(cells)} compared.")


def _knn_sentence(done: pd.DataFrame, pats: pd.DataFrame) -> str:
    knn = done[done["metric"].str.startswith("knn_")]
    if knn.empty:
        return ""
    # The reader must see when the published numbers are only a secondary transcription.
    secondary = _col(knn, "note").fillna("").str.contains("secondary transcription").any()
    worst = knn.loc[knn["diff"].abs().idxmax()]
    text = (f"k-NN accuracy on latent means against {', '.join(sorted(knn['source'].unique()))}"
            + (" (reference rows from a secondary transcription, not the original table)"
               if secondary else "")
            + f": {int((100 * knn['diff'].abs() <= TOLERANCE_PP).sum())} of {len(knn)} cells "
            f"within {TOLERANCE_PP:g} percentage point of the published value; mean ours − paper "
            f"{100 * knn['diff'].mean():+.1f} points (largest {100 * worst['diff']:+.1f}, "
            f"{worst['model']} d = {worst['latent_dim']}, {worst['metric'][4:]} labels)")
    kp = pats[pats["metric"].str.startswith("knn_")]
    if len(kp):
        text += (f"; the sign of {PATTERN[0]} − {PATTERN[1]} agrees with the paper in "
                 f"{int(kp['agree'].sum())} of {len(kp)} (labels, d) pairs, "
                 f"{int(kp['significant'].sum())} of ours significant at p < {ALPHA:g}")
    return text + "."


def _pattern_sentences(pats: pd.DataFrame) -> list[str]:
    """S - N per d with SE and p, the sign against the paper's, and the crossover."""
    a, b, metric = PATTERN
    ll = pats[pats["metric"] == metric]
    out = []
    several = ll["dataset"].nunique() > 1
    for dataset, block in ll.groupby("dataset", sort=False):
        block = block.sort_values("latent_dim")
        where = f"On {dataset}, " if several else ""
        per_d = []
        for r in block.to_dict("records"):
            se = r.get("ours_se")
            se = "" if se is None or pd.isna(se) else f" ± {se:.2f}"
            p = r.get("p_value")  # absent in older files; NaN with fewer than 2 seeds
            p = "" if p is None or pd.isna(p) else f" ({_p_phrase(p)})"
            per_d.append(f"d = {r['latent_dim']} {r['ours_diff']:+.2f}{se}{p}")
        out.append(f"{where}{a} − {b} test log-likelihood, ours (mean ± Welch SE, two-sided p "
                   f"across seeds): " + "; ".join(per_d) + " nats.")
        agree = block[block["agree"]]["latent_dim"].tolist()
        disagree = block[~block["agree"]]["latent_dim"].tolist()
        verdicts = [f"agrees with the paper at d = {', '.join(map(str, agree))}" if agree else "",
                    f"disagrees at d = {', '.join(map(str, disagree))}" if disagree else ""]
        out.append(f"The sign of {a} − {b} {metric} " + " and ".join(v for v in verdicts if v)
                   + f" ({int(block['significant'].sum())} of {len(block)} of our differences "
                   f"significant at p < {ALPHA:g}).")
        for c in crossovers(block).to_dict("records"):
            out.append(f"Crossover (first d at which {a} − {b} turns negative, over d = "
                       f"{', '.join(map(str, c['dims']))}): paper: {c['paper']}; ours: {c['ours']}.")
    return out


def _claim_sentence(pats: pd.DataFrame) -> str:
    """The answer: does the paper's claim (a ahead of b at the lowest d, behind at the highest)
    hold in our standard log-likelihood, and is the crossover where the paper's is; then where the
    crossover lies in the ELBO (no estimator involved) and in the diagnostic, which says whether a
    moved crossover is the models' or the estimate's."""
    a, b, metric = PATTERN
    out = []
    several = pats["dataset"].nunique() > 1
    for dataset, block in pats.groupby("dataset", sort=False):
        ll = block[block["metric"] == metric].sort_values("latent_dim")
        if len(ll) < 2:
            continue
        lo, hi = ll.iloc[0], ll.iloc[-1]
        ahead = [int(r.latent_dim) for r in ll.itertuples() if r.ours_diff > 0 and r.significant]
        behind = [int(r.latent_dim) for r in ll.itertuples() if r.ours_diff < 0 and r.significant]
        if int(lo.latent_dim) in ahead and int(hi.latent_dim) in behind:
            verdict = "holds"
        elif lo.ours_diff > 0 > hi.ours_diff:
            verdict = "holds in sign only, not at p < " + f"{ALPHA:g} at both ends"
        else:
            verdict = "does not hold"
        cross = {r["metric"]: r for r in crossovers(block).to_dict("records")}
        c = cross[metric]
        where = f"On {dataset}, in" if several else "In"
        text = (f"Does the paper's claim ({a} ahead of {b} at low d, behind at high d) hold here? "
                f"{where} the standard log-likelihood it {verdict}"
                + (f" ({a} ahead at d = {', '.join(map(str, ahead))}" if ahead else " (ahead nowhere")
                + (f", behind at d = {', '.join(map(str, behind))}, each at p < {ALPHA:g})" if behind
                   else f", behind nowhere at p < {ALPHA:g})")
                + (f", with the crossover where the paper's is ({c['ours']})" if c["ours"] == c["paper"]
                   else f", with the crossover {c['ours']} against the paper's {c['paper']}"))
        rest = [f"in the {name} ours is {cross[m]['ours']}"
                + (", as the paper's" if cross[m]["ours"] == cross[m]["paper"]
                   else f", the paper's {cross[m]['paper']}")
                for m, name in (("elbo", "ELBO, which involves no estimator,"),
                                (SHARED_METRIC, "shared-sample diagnostic (against the paper's log-likelihood)"))
                if m in cross]
        out.append(text + ("; " + "; ".join(rest) if rest else "") + ".")
    return " ".join(out)


def replication_paragraph(comparison: pd.DataFrame, patterns: pd.DataFrame, label: str,
                          carried: str = "") -> str:
    """The opening paragraph of results/summary.md, every number read from the comparison;
    ``carried`` names the cells taken from an earlier publication (tables.carried_sentence)."""
    if comparison.empty:
        return ("No published reference numbers cover this grid (see workflow/references/), so "
                "there is no replication verdict.")
    done = comparison[comparison["status"] == "ok"]
    nats = done[done["metric"].isin(NATS_METRICS)]
    ll = nats[nats["metric"] == "loglik"]
    pats = _with_metric(patterns)
    parts = []
    if label:
        parts.append(f"**This is a {label}.**" if label.startswith("budget")
                     else f"Training followed the {label}.")
        if done["ours_n"].min() < 3:
            parts.append("With fewer than 3 seeds per cell the standard errors below are rough.")
    if carried:
        parts.append(carried)
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
        parts.append(_shared_sentence(ll))
        parts.append(_gain_sentence(nats))
    acc = done[done["metric"] == "cluster_acc"]
    for r in acc.itertuples(index=False):
        parts.append(f"Clustering accuracy {r.model} d = {r.latent_dim}: {r.ours_mean:.3f} ± "
                     f"{0.0 if pd.isna(r.ours_sd) else r.ours_sd:.3f} (n = {r.ours_n}) against "
                     f"{r.paper:.3f} ({r.source}, {r.statistic}).")
    parts += _pattern_sentences(pats)
    parts.append(_estimator_sentence(pats))
    parts.append(_knn_sentence(done, pats))
    parts.append(_claim_sentence(pats))
    missing = comparison[comparison["status"] == "missing"]
    if len(missing):
        parts.append(f"{len(missing)} covered cell(s) have no result yet.")
    return " ".join(p for p in parts if p)
