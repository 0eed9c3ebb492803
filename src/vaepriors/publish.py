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
import subprocess
from datetime import datetime
from pathlib import Path

import pandas as pd

from .config import cpu_model
from .evaluation.tables import read_metrics
from .io import write_text

_STAMP = re.compile(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$", re.MULTILINE)
_PDF_LINK = re.compile(r" \(\[PDF\]\([^)]*\)\)")


def snakemake_wall_time(workdir: Path) -> tuple[float, int]:
    """Seconds between the first and the last job timestamp of each Snakemake invocation (its
    .snakemake/log files), summed; and the number of invocations that ran jobs."""
    total, invocations = 0.0, 0
    for log in sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log")):
        stamps = [datetime.strptime(" ".join(s.split()), "%a %b %d %H:%M:%S %Y")
                  for s in _STAMP.findall(log.read_text(errors="replace"))]
        if len(stamps) >= 2:
            total += (max(stamps) - min(stamps)).total_seconds()
            invocations += 1
    return total, invocations


def _git(workdir: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=workdir, capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h"


def run_record(workdir: Path) -> dict:
    """Provenance of the results under workdir/results, read from the files themselves."""
    results = workdir / "results"
    configs = [read_metrics(p, required=()) for p in sorted((results / "models").rglob("config.json"))]
    metrics = [read_metrics(p, required=()) for p in sorted((results / "metrics").rglob("s*.json"))]
    train_s = 0.0
    for path in sorted((results / "models").rglob("history.csv")):
        train_s += float(pd.read_csv(path)["seconds"].sum())
    eval_s = sum(float(m.get("meta", {}).get("elapsed_s", 0.0)) for m in metrics)
    wall, invocations = snakemake_wall_time(workdir)
    metas = [c.get("meta", {}) for c in configs]
    return {
        "runs": len(configs),
        "evaluated": len(metrics),
        "train_seconds": train_s,
        "eval_seconds": eval_s,
        "wall_seconds": wall,
        "invocations": invocations,
        "cpu": sorted({m["cpu"] for m in metas if m.get("cpu")}) or [cpu_model()],
        "cpu_recorded": any(m.get("cpu") for m in metas),
        "platform": sorted({m.get("platform", "?") for m in metas}),
        "versions": {k: sorted({str(m.get(k)) for m in metas})
                     for k in ("vaepriors", "python", "torch", "numpy")},
        "commit": _git(workdir, "rev-parse", "HEAD"),
        "dirty": bool(_git(workdir, "status", "--porcelain", "--untracked-files=no")),
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
    cpu_note = "" if rec["cpu_recorded"] else " (of the machine that published; the runs predate CPU recording)"
    lines = [
        "# How these results were made", "",
        "Written by `scripts/publish_results.py` from the run's own files; the summary, tables "
        "and figures here are copies of its `results/`.", "",
        f"- command: `{command}`",
        f"- commit: `{rec['commit']}`" + (" (with uncommitted changes)" if rec["dirty"] else ""),
        f"- CPU: {', '.join(rec['cpu'])}{cpu_note}; platform {', '.join(rec['platform'])}",
        "- versions: " + "; ".join(f"{k} {', '.join(v)}" for k, v in rec["versions"].items()),
        f"- wall time: {_hours(rec['wall_seconds'])} over {rec['invocations']} Snakemake "
        "invocation(s) (first to last job of each, from `.snakemake/log`)",
        f"- training: {rec['runs']} runs, {_hours(rec['train_seconds'])} of epochs summed over "
        f"runs (a group of seeds trained together counts once per seed)",
        f"- evaluation: {rec['evaluated']} runs, {_hours(rec['eval_seconds'])} summed", "",
        "Start with [summary.md](summary.md); the comparison with the paper is "
        "[tables/paper_comparison.md](tables/paper_comparison.md).", "",
    ]
    written.append(write_text(out / "RUN.md", "\n".join(lines)))
    if final.exists():
        shutil.rmtree(final)
    out.rename(final)
    return [final / p.relative_to(out) for p in written]
