"""Publish a finished run's results into the repository (docs/results/{name}/).

Copies what a reader needs without running anything (the generated summary, the tables, the PNG
figures) and writes RUN.md with how they were made: the command, the commit, the machine, the
wall time (from Snakemake's own logs) and the training and evaluation time the runs recorded.
Nothing is edited: the summary is copied with only its links to PDFs removed (PDFs stay in
results/).
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd

from .config import cpu_model, git_commit
from .evaluation.tables import carried_list, read_metrics
from .io import write_text

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$")
_PDF_LINK = re.compile(r" \(\[PDF\]\([^)]*\)\)")


def snakemake_times(workdir: Path) -> dict:
    """From Snakemake's own logs (.snakemake/log): the wall time (first to last timestamp of each
    invocation that ran jobs, summed), and per rule the number of finished jobs and their summed
    duration (start to "Finished jobid")."""
    wall, invocations, rules = 0.0, 0, {}
    for log in sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log")):
        text = log.read_text(errors="replace")
        stamps = []
        started: dict[str, datetime] = {}
        for block in re.split(r"^(?=\[)", text, flags=re.MULTILINE):
            head = _STAMP.match(block.splitlines()[0]) if block.strip() else None
            if not head:
                continue
            at = datetime.strptime(" ".join(head.group(1).split()), "%a %b %d %H:%M:%S %Y")
            stamps.append(at)
            job = re.search(r"^\s+jobid: (\d+)$", block, flags=re.MULTILINE)
            done = re.search(r"^Finished jobid: (\d+) \(Rule: (\w+)\)", block, flags=re.MULTILINE)
            if job and re.search(r"^(local)?rule \w+:", block, flags=re.MULTILINE):
                started[job.group(1)] = at
            if done and done.group(1) in started:
                count, secs = rules.get(done.group(2), (0, 0.0))
                rules[done.group(2)] = (count + 1, secs + (at - started.pop(done.group(1))).total_seconds())
        if len(stamps) >= 2:
            wall += (max(stamps) - min(stamps)).total_seconds()
            invocations += 1
    return {"wall": wall, "invocations": invocations, "rules": rules}


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def run_record(workdir: Path) -> dict:
    """Provenance of the results under workdir/results, read from the files themselves."""
    results = workdir / "results"
    # The published runs are the evaluated ones (results/ may hold runs of a larger grid): the
    # grid's, and those of every study that keeps a metrics/ beside its models/ (a decoder size).
    roots = [results] + sorted(m.parent for m in results.glob("*/*/metrics") if (m.parent / "models").is_dir())
    pairs = [(root, p) for root in roots for p in sorted((root / "metrics").rglob("s*.json"))]
    evaluated = [p for _, p in pairs]
    runs = [root / "models" / p.relative_to(root / "metrics").with_suffix("") for root, p in pairs]
    metrics = [read_metrics(p, required=()) for p in evaluated]
    configs = [read_metrics(r / "config.json", required=()) for r in runs if (r / "config.json").exists()]
    cells: dict[str, list] = {}  # "[study/size/]dataset/model/dD" -> [(epochs, seconds)] of its runs
    for r in runs:
        if (r / "history.csv").exists():
            seconds = pd.read_csv(r / "history.csv")["seconds"]
            cell = r.parent.relative_to(results).as_posix().replace("models/", "")
            cells.setdefault(cell, []).append((len(seconds), float(seconds.sum())))
    train_s = sum(sec for runs_ in cells.values() for _, sec in runs_)
    times = snakemake_times(workdir)
    metas = [c.get("meta", {}) for c in configs]
    return {
        "runs": len(configs),
        "evaluated": len(metrics),
        "train_seconds": train_s,
        "cells": cells,
        "wall_seconds": times["wall"],
        "invocations": times["invocations"],
        "rules": times["rules"],
        "cpu": sorted({m["cpu"] for m in metas if m.get("cpu")}) or [cpu_model()],
        "cpu_recorded": any(m.get("cpu") for m in metas),
        "platform": sorted({m.get("platform", "?") for m in metas}),
        "versions": {k: sorted({str(m.get(k)) for m in metas})
                     for k in ("vaepriors", "python", "torch", "numpy")},
        "commit": git_commit(workdir) or "unknown",
        "run_commits": sorted({m["git_commit"] for m in metas if m.get("git_commit")}),
    }


def publish(workdir: str | Path, out: str | Path, command: str) -> list[Path]:
    """Copy summary, tables and PNG figures of workdir/results to out, and write out/RUN.md."""
    workdir, out = Path(workdir), Path(out)
    results = workdir / "results"
    summary = results / "summary.md"
    if not summary.exists():
        raise FileNotFoundError(f"{summary} does not exist: run the pipeline to its end first")
    rec = run_record(workdir)
    final, out = out, out.with_name(f".{out.name}.tmp")  # built aside, swapped in when complete
    shutil.rmtree(out, ignore_errors=True)
    written = []
    for src in sorted(results.glob("tables/*")):
        if src.suffix in (".md", ".csv", ".json"):
            dst = out / "tables" / src.name
            dst.parent.mkdir(parents=True, exist_ok=True)
            written.append(Path(shutil.copy2(src, dst)))
    for src in sorted(results.glob("figures/**/*.png")):
        dst = out / src.relative_to(results)
        dst.parent.mkdir(parents=True, exist_ok=True)
        written.append(Path(shutil.copy2(src, dst)))
    text = _PDF_LINK.sub("", summary.read_text(encoding="utf-8"))
    written.append(write_text(out / "summary.md", text))
    carried = _carried_record(results, final, set(rec["cells"]))
    cpu_note = "" if rec["cpu_recorded"] else " (of the machine that published; the runs predate CPU recording)"
    lines = [
        "# How these results were made", "",
        "Written by `scripts/publish_results.py` from the run's own files; the summary, tables "
        "and figures here are copies of its `results/`.", "",
        f"- command: `{command}`",
        f"- commit checked out when published: `{rec['commit']}`"
        + ("; training ran at " + ", ".join(f"`{c}`" for c in rec["run_commits"])
           if rec["run_commits"] else "; the runs predate commit recording"),
        f"- CPU: {', '.join(rec['cpu'])}{cpu_note}; platform {', '.join(rec['platform'])}",
        "- versions: " + "; ".join(f"{k} {', '.join(v)}" for k, v in rec["versions"].items()),
        f"- wall time: {_hours(rec['wall_seconds'])} over {rec['invocations']} Snakemake "
        "invocation(s) (first to last job of each, from `.snakemake/log`)",
        f"- training: {rec['runs']} runs, {_hours(rec['train_seconds'])} of epochs summed over "
        f"runs (a group of seeds trained together counts once per seed); {rec['evaluated']} "
        "runs evaluated", "",
        "Job time per rule (jobs that finished; summed start-to-finish, from `.snakemake/log`):", "",
        "| rule | jobs | hours |", "|---|---|---|",
        *(f"| {rule} | {n} | {secs / 3600:.2f} |" for rule, (n, secs) in sorted(rec["rules"].items())),
        "",
        "Training per cell (from each run's history.csv; a group of seeds trained together is "
        "one process, so its hours are one group's wall time, not the sum):", "",
        "| runs of | runs | epochs | hours per run |", "|---|---|---|---|",
        *(f"| {cell} | {len(v)} | {min(e for e, _ in v)}–{max(e for e, _ in v)} "
          f"| {min(s for _, s in v) / 3600:.2f}–{max(s for _, s in v) / 3600:.2f} |"
          for cell, v in sorted(rec["cells"].items())),
        "",
        "Start with [summary.md](summary.md); the comparison with the paper is "
        "[tables/paper_comparison.md](tables/paper_comparison.md).", "",
        *carried,
    ]
    written.append(write_text(out / "RUN.md", "\n".join(lines)))
    if final.exists():
        shutil.rmtree(final)
    out.rename(final)
    return [final / p.relative_to(out) for p in written]


_CARRIED_HEAD = "## Carried cells"
_EARLIER = "That publication's RUN.md:"
_CELL_ROW = re.compile(r"^\| ([^|\s]+/d\d+) \|")


def _records(text: str) -> list[tuple[set, str]]:
    """A RUN.md as its chain of records, newest first: each record's own trained cells (its
    per-cell table) and its text down to the RUN.md it carried from (headings promoted back)."""
    out = []
    while text:
        own, head, rest = text.partition(_CARRIED_HEAD)
        carried, found, earlier = rest.partition(_EARLIER)
        cells = {m.group(1) for line in own.splitlines() if (m := _CELL_ROW.match(line))}
        out.append((cells, (own + head + carried).strip()))
        text = "\n".join(line[1:] if line.startswith("##") else line
                         for line in earlier.strip().splitlines()) if found else ""
    return out


def _demote(text: str) -> list[str]:
    return ["#" + line if line.startswith("#") else line for line in text.splitlines()]


def _carried_record(results: Path, earlier: Path, cells: set) -> list[str]:
    """RUN.md lines for the cells taken from an earlier publication (results/tables/carried.json):
    which cells, and that publication's own RUN.md, kept as their provenance. A record whose
    trained cells a record above it holds too (this run published before, in part or whole, or
    a run republished) is superseded and left out of the chain."""
    path = results / "tables" / "carried.json"
    record = read_metrics(path, required=("cells",)) if path.exists() else {"cells": []}
    if not record["cells"]:
        return []
    lines = [_CARRIED_HEAD, "",
             f"Taken from the earlier publication in `{record['source']}` (aggregate --carry), not "
             f"trained here: {carried_list(record)}.", ""]
    text = (earlier / "RUN.md").read_text(encoding="utf-8").strip() if (earlier / "RUN.md").exists() else ""
    seen, kept = [cells], []
    for own, body in _records(text):
        if not (own and any(own <= above for above in seen)):
            kept.append(body)
            seen.append(own)
    nested = ""
    for body in reversed(kept):
        nested = body + ("\n\n" + _EARLIER + "\n\n" + "\n".join(_demote(nested)) if nested else "")
    if nested:
        lines += [_EARLIER, "", *_demote(nested), ""]
    return lines


README_START = "<!-- published-results:start (scripts/publish_results.py --readme; do not edit) -->"
README_END = "<!-- published-results:end -->"


def _loglik_table(comparison: pd.DataFrame) -> list[str]:
    """Rows d, per model: the paper's log-likelihood beside ours (mean ± sd, n)."""
    ll = comparison[(comparison["metric"] == "loglik") & (comparison["status"] == "ok")]
    if ll.empty:
        return []
    models = list(dict.fromkeys(ll["model"]))
    head = "| dataset | d | " + " | ".join(f"{m} paper | {m} ours" for m in models) + " |"
    lines = [head, "|---" * (2 + 2 * len(models)) + "|"]
    for (dataset, d), rows in ll.groupby(["dataset", "latent_dim"], sort=True):
        cells = []
        for m in models:
            r = rows[rows["model"] == m]
            if r.empty:
                cells += ["", ""]
                continue
            r = r.iloc[0]
            sd = "" if pd.isna(r["ours_sd"]) else f" ± {r['ours_sd']:.2f}"
            cells += [f"{r['paper']:.2f}", f"{r['ours_mean']:.2f}{sd} (n = {int(r['ours_n'])})"]
        lines.append(f"| {dataset} | {d} | " + " | ".join(cells) + " |")
    return lines


def readme_block(results_root: str | Path, readme_dir: str | Path) -> str:
    """The README's published-results block: for every folder of results_root with a paper
    comparison, its training budget and how many log-likelihoods are within 1 nat of the paper's;
    runs at a paper's own protocol come first (the headline) with the table and its figure, then
    the others by name, one paragraph each."""
    import json
    import os

    folders = {f: json.loads((f / "tables" / "paper_budget.json").read_text(encoding="utf-8"))
               for f in Path(results_root).iterdir() if (f / "tables" / "paper_comparison.csv").exists()}

    def at_protocol(folder):
        return str(folders[folder].get("label") or "").startswith("training protocol")

    lines = [README_START]
    for folder in sorted(folders, key=lambda f: (not at_protocol(f), f.name)):
        comparison = pd.read_csv(folder / "tables" / "paper_comparison.csv")
        rel = os.path.relpath(folder, readme_dir)
        head = f"**[{folder.name}]({rel}/summary.md)**: {folders[folder].get('label') or 'no published protocol'}."
        table = _loglik_table(comparison)
        if not table:
            lines += ["", head]
            continue
        ok = comparison[(comparison["status"] == "ok") & comparison["metric"].eq("loglik")]
        within = ok["within_1_nat"].astype(str).str.lower().eq("true").sum()
        sources = ", ".join(dict.fromkeys(ok["source"]))
        count = (f"test log-likelihood (nats, importance-sampled) beside {sources}: {within} of {len(ok)} "
                 f"within 1 nat ([all metrics]({rel}/tables/paper_comparison.md))")
        if not at_protocol(folder):
            lines += ["", f"{head} Its {count}."]
            continue
        lines += ["", head, "", f"Its {count}:", "", *table]
        if (folder / "figures" / "loglik.png").exists() and comparison["latent_dim"].nunique() > 1:
            lines += ["", f"![log-likelihood against d, {folder.name}]({rel}/figures/loglik.png)"]
    lines.append(README_END)
    return "\n".join(lines)


def update_readme(readme: str | Path, results_root: str | Path) -> None:
    """Replace the block between the markers in the README with readme_block()."""
    readme = Path(readme)
    text = readme.read_text(encoding="utf-8")
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme}: lacks the markers {README_START!r} ... {README_END!r}")
    before, rest = text.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    write_text(readme, before + readme_block(results_root, readme.parent) + after)
