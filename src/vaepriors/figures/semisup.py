"""The semi-supervised study's table, figure and summary paragraph (vaepriors.semisup runs).

Rows: dataset, labels, M1 (family and d; "pixels" for M2 alone) and M2 (family and d). Cells:
test accuracy as a fraction, mean ± sample sd over seeds, n. Published numbers come from
workflow/references/semisup/*.csv (one row per number: ``source, dataset, m1_model, m1_dim,
m2_model, m2_dim, labels, metric, value, sd, n, statistic, note``; an empty m1_model is M2 alone).
A row gets, per source, the number of the same dataset, labels and families at the nearest
(M1 d, M2 d); the d it was published at is named when it differs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from ..evaluation.replication import ReferenceFileError, csv_files
from ..io import write_text

PIXELS = "pixels"
KEY = ["dataset", "labels", "m1_model", "m1_dim", "m2_model", "m2_dim"]
REFERENCE_COLUMNS = ["source", "dataset", "m1_model", "m1_dim", "m2_model", "m2_dim", "labels",
                     "metric", "value", "sd", "n", "statistic", "note"]


def read_runs(paths: Iterable[str | Path]) -> pd.DataFrame:
    rows = []
    for path in paths:
        try:
            rec = json.loads(Path(path).read_text())
            rows.append({"dataset": rec["dataset"], "labels": int(rec["labels"]),
                         "m1_model": rec["m1_model"] or PIXELS, "m1_dim": rec["m1_dim"] or 0,
                         "m2_model": rec["m2_model"], "m2_dim": int(rec["m2_dim"]), "seed": rec["seed"],
                         "accuracy": float(rec["accuracy"]), "epochs": int(rec["epochs"]),
                         "best_epoch": int(rec["best_epoch"]),
                         "max_epochs": int(rec["values"]["epochs"]), "wall_seconds": rec["wall_seconds"],
                         "cpu": rec["meta"]["cpu"]})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a semi-supervised run result ({type(exc).__name__}: {exc})") from None
    return pd.DataFrame(rows, columns=[*KEY, "seed", "accuracy", "epochs", "best_epoch", "max_epochs",
                                       "wall_seconds", "cpu"])


def load_references(paths: Iterable[str | Path]) -> pd.DataFrame:
    frames = []
    for path in csv_files(paths):
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        missing = [c for c in REFERENCE_COLUMNS if c not in frame.columns]
        if missing:
            raise ReferenceFileError(f"reference file {path} lacks column(s) {', '.join(missing)}")
        for i, rec in enumerate(frame.to_dict("records"), start=2):
            try:
                for col in ("value", "labels", "m2_dim"):
                    float(rec[col])
            except ValueError:
                raise ReferenceFileError(f"{path}, row {i}: {col} = {rec[col]!r} is not a number") from None
        frames.append(frame[REFERENCE_COLUMNS])
    refs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=REFERENCE_COLUMNS)
    refs["m1_model"] = refs["m1_model"].replace("", PIXELS)
    refs["m1_dim"] = pd.to_numeric(refs["m1_dim"].replace("", "0"))
    for col in ("m2_dim", "labels"):
        refs[col] = pd.to_numeric(refs[col]).astype(int)
    refs["value"] = pd.to_numeric(refs["value"])
    return refs


def _published(row, refs: pd.DataFrame, source: str) -> tuple[float, str]:
    cand = refs[(refs.source == source) & (refs.dataset == row.dataset) & (refs.labels == row.labels)
                & (refs.m1_model == row.m1_model) & (refs.m2_model == row.m2_model)]
    if cand.empty:
        return math.nan, ""
    gap = (cand.m1_dim - row.m1_dim).abs() * 1000 + (cand.m2_dim - row.m2_dim).abs()
    ref = cand.loc[gap.idxmin()]
    where = "" if (ref.m1_dim, ref.m2_dim) == (row.m1_dim, row.m2_dim) else \
        (f"M2 d {ref.m2_dim}" if row.m1_model == PIXELS else f"d {int(ref.m1_dim)}/{ref.m2_dim}")
    return float(ref.value), where


def table(runs: pd.DataFrame, refs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: accuracy mean, sd, n, and each source's published number beside it."""
    cells = runs.groupby(KEY, sort=True).agg(
        accuracy_mean=("accuracy", "mean"), accuracy_sd=("accuracy", "std"), n=("accuracy", "size"),
        epochs_max=("max_epochs", "max")).reset_index()
    cells = cells.sort_values(["dataset", "labels", "m1_model", "m1_dim", "m2_model", "m2_dim"],
                              key=_family_order, kind="stable").reset_index(drop=True)
    for source in sorted(refs["source"].unique()):
        found = [_published(r, refs, source) for r in cells.itertuples()]
        cells[source] = [v for v, _ in found]
        cells[f"{source}_at"] = [w for _, w in found]
    return cells


def _family_order(column: pd.Series) -> pd.Series:
    """Sort key: M2 alone first, then the families in registry order; other columns as they are."""
    if column.name not in ("m1_model", "m2_model"):
        return column
    from .. import families

    rank = {m: i + 1 for i, m in enumerate(families.names())} | {PIXELS: 0}
    return column.map(lambda m: rank.get(m, len(rank)))


def _acc(x: float, sd: float | None = None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    text = f"{100 * x:.2f}"
    return text if sd is None or math.isnan(sd) else f"{text} ± {100 * sd:.2f}"


def _combination(row) -> str:
    if row.m1_model == PIXELS:
        return f"M2 {row.m2_model} (d {row.m2_dim}) on pixels"
    return f"M1 {row.m1_model} d {int(row.m1_dim)} + M2 {row.m2_model} d {row.m2_dim}"


def markdown(cells: pd.DataFrame, budget: str) -> str:
    sources = [c for c in cells.columns if c in _sources(cells)]
    lines = ["## Semi-supervised classification: test accuracy (%), M2 and M1+M2", "", budget, ""]
    if cells.empty:
        return "\n".join(lines + ["No runs: `semi_supervised.labels` is empty."]) + "\n"
    lines += ["| dataset | labels | M1 | M1 d | M2 | M2 d | accuracy | n | " + " | ".join(sources) + " |",
              "|---" * (8 + len(sources)) + "|"]
    for r in cells.itertuples():
        pub = []
        for s in sources:
            value, where = getattr(r, s), getattr(r, f"{s}_at")
            pub.append(_acc(value) + (f" ({where})" if where and not math.isnan(value) else ""))
        m1_dim = "" if r.m1_model == PIXELS else str(int(r.m1_dim))
        lines.append(f"| {r.dataset} | {r.labels} | {r.m1_model} | {m1_dim} | {r.m2_model} | {r.m2_dim} | "
                     f"{_acc(r.accuracy_mean, r.accuracy_sd)} | {r.n} | " + " | ".join(pub) + " |")
    return "\n".join(lines) + "\n"


def _sources(cells: pd.DataFrame) -> list[str]:
    return [c[: -len("_at")] for c in cells.columns if c.endswith("_at")]


def budget_sentence(runs: pd.DataFrame, paper_epochs: int = 3000) -> str:
    if runs.empty:
        return "Budget: no runs."
    epochs = sorted(runs["max_epochs"].unique())
    hours = runs["wall_seconds"].sum() / 3600
    cpu = runs["cpu"].iloc[0]
    stated = "the authors' protocol" if epochs == [paper_epochs] else \
        f"a budget run: at most {', '.join(map(str, epochs))} epochs (Kingma et al. 2014: {paper_epochs})"
    # a run whose best validation epoch is its last was still improving when the budget ended
    last = int((runs["best_epoch"] == runs["max_epochs"]).sum()) if "best_epoch" in runs else 0
    return (f"Training: {stated}; {len(runs)} runs, {hours:.2f} h of training in all on {cpu}. "
            "Accuracy at the epoch of best validation accuracy; mean ± sd over seeds. "
            f"{last} of {len(runs)} runs had their best validation accuracy at their last epoch "
            "(still improving when stopped).")


def plot(cells: pd.DataFrame, refs: pd.DataFrame, out: str | Path) -> None:
    """Accuracy against labels, one line per combination (M2 alone dashed); each line's published
    numbers (the table's matches) as open markers in its colour, one marker per source."""
    from . import style

    style.apply()
    datasets = list(dict.fromkeys(cells["dataset"])) or ["(no runs)"]
    fig, axes = style.figure(1, len(datasets), panel=(4.6, 3.4))
    colors = ["#000000", "#004488", "#BB5566", "#DDAA33", "#228833", "#AA3377", "#66CCEE", "#999933"]
    markers = ["o", "s", "^", "v", "D", "P", "<", ">"]
    source_markers = dict(zip(_sources(cells), ["x", "+", "1", "2"]))
    for ax, ds in zip(axes[0], datasets):
        block = cells[cells.dataset == ds]
        combos = list(block.groupby(["m1_model", "m1_dim", "m2_model", "m2_dim"], sort=False))
        for i, (_, rows) in enumerate(combos):
            first, color = next(rows.itertuples()), colors[i % len(colors)]
            ax.errorbar(rows["labels"], 100 * rows["accuracy_mean"], yerr=100 * rows["accuracy_sd"].fillna(0),
                        color=color, marker=markers[i % len(markers)], ms=4, lw=1.2, capsize=2,
                        ls="--" if first.m1_model == PIXELS else "-", label=_combination(first))
            for source, marker in source_markers.items():
                ax.scatter(rows["labels"], 100 * rows[source], marker=marker, s=40, color=color, zorder=3)
        if block.empty:
            ax.text(0.5, 0.5, "no runs: semi_supervised.labels is empty", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_xscale("log")
        ax.set_xlabel("labelled examples")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(style.dataset_label(ds))
    handles, labels = axes[0][0].get_legend_handles_labels()
    for source, marker in source_markers.items():
        handles.append(plt_marker(marker))
        labels.append(f"published: {source} (nearest d)")
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False,
               fontsize=6)
    fig.tight_layout()
    style.save(fig, out)


def plt_marker(marker: str):
    from matplotlib.lines import Line2D

    return Line2D([], [], ls="", marker=marker, color="#555555", ms=6)


def paragraph(cells: pd.DataFrame) -> str:
    """What the latent family changes: per label count, the best combination, and S - N of M2's
    family (same M1) and of M1's family (same M2), mean over the matching cells, with their SE."""
    if cells.empty:
        return "No semi-supervised runs in this configuration (`semi_supervised.labels` is empty)."
    parts = []
    for (ds, labels), block in cells.groupby(["dataset", "labels"], sort=True):
        best = block.loc[block["accuracy_mean"].idxmax()]
        text = (f"{ds}, {labels} labels: best {_combination(best)} at {_acc(best.accuracy_mean, best.accuracy_sd)} % "
                f"(n = {best.n})")
        pix = block[block.m1_model == PIXELS]
        m1m2 = block[block.m1_model != PIXELS]
        if len(pix) and len(m1m2):
            text += (f"; M1+M2 {_acc(m1m2.accuracy_mean.mean())} % against M2 alone "
                     f"{_acc(pix.accuracy_mean.mean())} % (means over combinations)")
        for role, other in (("m2_model", "m1_model"), ("m1_model", "m2_model")):
            diff = _family_difference(m1m2, role, other)
            if diff:
                text += f"; {'M2' if role == 'm2_model' else 'M1'} latent {diff}"
        parts.append(text + ".")
    return " ".join(parts)


def _family_difference(block: pd.DataFrame, role: str, other: str) -> str:
    """Mean over matched cells of (family A - family B) in ``role``, the rest held fixed: the
    first two families present, in registry order."""
    from .. import families

    present = [m for m in families.names() if m in set(block[role])]
    if len(present) < 2:
        return ""
    a, b = present[1], present[0]
    keys = [k for k in KEY if k != role]
    merged = block[block[role] == a].merge(block[block[role] == b], on=keys, suffixes=("_a", "_b"))
    if merged.empty:
        return ""
    diff = merged.accuracy_mean_a - merged.accuracy_mean_b
    se = (merged.accuracy_sd_a.pow(2) / merged.n_a + merged.accuracy_sd_b.pow(2) / merged.n_b).pow(0.5)
    mean_se = math.sqrt((se.pow(2)).sum()) / len(se) if se.notna().all() else math.nan
    se_text = "" if math.isnan(mean_se) else f" (SE {100 * mean_se:.2f})"
    return (f"{a} - {b} = {100 * diff.mean():+.2f} pp{se_text} over {len(merged)} cell(s), "
            f"from {100 * diff.min():+.2f} to {100 * diff.max():+.2f}")


def write(runs: pd.DataFrame, refs: pd.DataFrame, out_csv, out_md, out_png) -> pd.DataFrame:
    cells = table(runs, refs)
    write_text(out_csv, cells.to_csv(index=False))
    write_text(out_md, markdown(cells, budget_sentence(runs)))
    plot(cells, refs, out_png)
    return cells
