#!/usr/bin/env python
"""Before and after a change, in one run: bench_speed.py at two commits, alternated.

    python benchmarks/ab.py OLD NEW [--rounds 3] [-- bench_speed.py arguments]
    python benchmarks/ab.py 1c294c6 HEAD -- --no-pythae --only train eval --repeats 3

Each commit is checked out into a temporary git worktree and benchmarked with its own source
tree (PYTHONPATH), in the order old, new, old, new, ...; a shared machine's drift then falls on
both sides alike. Prints, for every number both sides report, the medians over rounds and
new / old, and writes all runs to --out. Runs in the current environment: both commits must
work with the installed packages.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speed import cpu_model  # noqa: E402

SECTIONS = ("train", "eval", "ratios", "multiseed")


def flatten(tree, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a bench_speed.py result, keyed by their dotted path."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix + key] = float(value)
    return out


def compare(old: list[dict], new: list[dict]) -> list[tuple]:
    """(key, old median, new median, new / old, old min, old max, new min, new max) for every
    numeric leaf of SECTIONS that every run on both sides reports, settings left out."""
    def leaves(run):
        return flatten({s: run[s] for s in SECTIONS if s in run})

    old_l, new_l = [leaves(r) for r in old], [leaves(r) for r in new]
    keys = sorted(set.intersection(*(set(x) for x in old_l + new_l)))
    rows = []
    for key in keys:
        a, b = [x[key] for x in old_l], [x[key] for x in new_l]
        ma, mb = statistics.median(a), statistics.median(b)
        if ma == mb and min(a) == max(a) == min(b) == max(b):
            continue  # a setting (K, chunk, batch), not a measurement
        rows.append((key, ma, mb, mb / ma if ma else float("nan"), min(a), max(a), min(b), max(b)))
    return rows


def _worktree(repo: Path, rev: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(where), rev],
                   check=True, capture_output=True, text=True)
    return where


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="results/benchmarks/ab.json")
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args, bench_args = parser.parse_args(argv[:cut]), argv[cut + 1:]  # after --: bench_speed.py's
    repo = Path(__file__).resolve().parent.parent
    runs: dict[str, list[dict]] = {"old": [], "new": []}
    cpu = cpu_model()
    print(f"CPU: {cpu}; {args.old} against {args.new}, {args.rounds} rounds", flush=True)
    with tempfile.TemporaryDirectory(prefix="vaepriors-ab-") as tmp:
        trees = {side: _worktree(repo, rev, Path(tmp) / side) for side, rev in (("old", args.old), ("new", args.new))}
        try:
            for r in range(args.rounds):
                for side, tree in trees.items():
                    out = Path(tmp) / f"{side}-{r}.json"
                    env = dict(os.environ, PYTHONPATH=str(tree / "src"))
                    subprocess.run([sys.executable, str(tree / "benchmarks" / "bench_speed.py"), *bench_args,
                                    "--out", str(out)], cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
                    runs[side].append(json.loads(out.read_text()))
                    print(f"round {r + 1}/{args.rounds}: {side} done", flush=True)
        finally:
            for tree in trees.values():
                subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                               capture_output=True)
    print(f"\n{'measure':58s} {'old':>11s} {'new':>11s} {'new/old':>8s}   old range / new range")
    for key, a, b, ratio, a0, a1, b0, b1 in compare(runs["old"], runs["new"]):
        print(f"{key:58s} {a:11.4g} {b:11.4g} {ratio:8.3f}   [{a0:.4g}, {a1:.4g}] / [{b0:.4g}, {b1:.4g}]")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"cpu": cpu, "old": args.old, "new": args.new, **runs}, indent=1))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
