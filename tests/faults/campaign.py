#!/usr/bin/env python
"""Kill campaign: run a small DAG uninterrupted, then again with the engine's whole process group
killed (SIGKILL) at points spread over it, resume with the README's commands, and compare every
table and metrics file with the uninterrupted run (equal apart from recorded timings and commits).

  python tests/faults/campaign.py [--engine snakemake dvc slurm] [--points 8] [--seed 0]
                                  [--target FILE ...] [--report results/faults.md]

The slurm engine runs Snakemake through profiles/slurm on a running cluster that holds no other
jobs (tests/slurm/run_slurm_test.sh --kill N starts a private one and runs this leg): a kill is
SIGKILL to the submitting Snakemake's group and scancel of every queued or running job.

Kill times are stratified over the uninterrupted run's duration (one uniform draw in each of
`points` equal slices, seeded), so they fall in downloads, preparation, training epochs,
evaluation, tables, figures and the summary alike; each kill records the jobs it interrupted.
Prints and writes the table engine x kill -> survived / tried, with what differed on a failure.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# keys and lines of measured durations, not results (e.g. spherical_stability's step_ms)
VOLATILE = re.compile(r"time|seconds|wall|git_commit|date|elapsed|_ms\b", re.I)
COMPARED = ("results/tables", "results/metrics")


def campaign_params(models=("nvae", "ae")) -> dict:
    """The quick profile shrunk to seconds per job: every stage of the DAG (the AE's density
    study included), two families."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    quick = yaml.safe_load((REPO / "profiles/quick/params.yaml").read_text())
    required = yaml.safe_load((REPO / "workflow/schemas/params.schema.yaml").read_text())["required"]
    for key, value in quick.items():
        if key in required:  # the grid and its sections; no optional study of the profile
            params[key] = {**params[key], **value} if isinstance(value, dict) else value
    params.update(models=list(models), latent_dims=[2], seeds=[0])
    params["train"].update(max_epochs=8, warmup_epochs=2, patience=8)
    params["evaluate"].update(importance_samples=10, knn_labels=[100], ae_scale_grid=[0.1])
    params["figures"].update(classifier_epochs=2, fd_samples=50, density_sizes=[100])
    return params


def project_copy(dest: Path, params: dict) -> Path:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in files:
        if rel and (REPO / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, dest / rel)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return dest


def environment(root: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(root / "src"), DVC_NO_ANALYTICS="1",
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org")
    return env


class Engine:
    """How the README says to run, and to resume after a kill, under one engine."""

    def __init__(self, name: str, targets: list[str]):
        self.name, self.targets = name, targets

    def setup(self, root: Path) -> None:
        if self.name == "dvc":  # dvc.yaml for this grid (docs/running.md), then a git repository
            for args in ([sys.executable, "workflow/dvc/stages.py", "write"], ["git", "init", "-q"],
                         ["git", "add", "-A"], ["git", "commit", "-qm", "p"]):
                subprocess.run(args, cwd=root, env=environment(root), check=True, capture_output=True)

    def run(self) -> list[str]:
        if self.name == "snakemake":
            return [sys.executable, "-m", "snakemake", "--cores", "2", *self.targets]
        if self.name == "slurm":
            return [sys.executable, "-m", "snakemake", "--profile", str(REPO / "profiles" / "slurm"),
                    "--slurm-init-seconds-before-status-checks", "5", *self.targets]
        stages = [] if not self.targets else self.targets
        return [str(BIN / "dvc"), "repro", *stages]

    def after_kill(self) -> None:
        """SLURM jobs live outside the killed group: cancel them all, as an operator would."""
        if self.name != "slurm":
            return
        for _ in range(60):
            jobs = subprocess.run(["squeue", "-h", "-t", "PD,R,CG", "-o", "%i"], capture_output=True,
                                  text=True, check=True).stdout.split()
            if not jobs:
                return
            subprocess.run(["scancel", "--full", *jobs], check=False, capture_output=True)
            time.sleep(1)
        raise SystemExit(f"slurm: jobs {jobs} still queued a minute after scancel")

    def resume(self) -> list[list[str]]:
        if self.name in ("snakemake", "slurm"):  # README: unlock, then the same command
            return [[sys.executable, "-m", "snakemake", "--unlock"], self.run()]
        return [self.run()]


def run(cmd: list[str], root: Path, log: Path, timeout: float = 1800) -> int:
    with open(log, "a") as fh:
        return subprocess.run(cmd, cwd=root, env=environment(root), stdout=fh, stderr=fh,
                              timeout=timeout).returncode


def killed_run(cmd: list[str], root: Path, log: Path, after: float) -> tuple[bool, float]:
    """Start ``cmd`` in its own session and SIGKILL the whole group ``after`` seconds in.
    Returns (whether it was still running when killed, seconds it ran)."""
    t0 = time.monotonic()
    with open(log, "a") as fh:
        proc = subprocess.Popen(cmd, cwd=root, env=environment(root), stdout=fh, stderr=fh,
                                start_new_session=True)
        try:
            proc.wait(timeout=after)
            return False, time.monotonic() - t0
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            # jobs in their own sessions (none today) would outlive the group: none may remain
            return True, time.monotonic() - t0


def running_jobs(log: Path) -> list[str]:
    """The Snakemake rules started and not finished in ``log`` (DVC: the stage it was running)."""
    text = log.read_text(errors="replace")
    started = re.findall(r"^\s*(?:local)?rule (\w+):\n(?:.*\n)*?\s+jobid: (\d+)", text, re.M)
    done = set(re.findall(r"Finished jobid: (\d+)", text)) | set(re.findall(r"Finished job (\d+)", text))
    rules = [rule for rule, jobid in started if jobid not in done]
    rules += re.findall(r"Running stage '([^']+)'", text)[-1:]
    return rules


def normalised(path: Path):
    if path.suffix == ".json":
        return _drop(json.loads(path.read_text()))
    if path.suffix == ".csv":
        rows = list(csv.DictReader(io.StringIO(path.read_text())))
        return [{k: v for k, v in r.items() if not VOLATILE.search(k)} for r in rows]
    return [line for line in path.read_text().splitlines() if not VOLATILE.search(line)]


def _drop(obj):
    if isinstance(obj, dict):
        return {k: _drop(v) for k, v in obj.items() if not VOLATILE.search(k)}
    if isinstance(obj, list):
        return [_drop(v) for v in obj]
    return obj


def results(root: Path) -> dict[str, object]:
    out = {}
    for folder in COMPARED:
        for path in sorted((root / folder).rglob("*")):
            # a table's .md renders its .csv (durations included, in cells): the .csv is compared
            if path.suffix == ".md" and path.with_suffix(".csv").is_file():
                continue
            if path.is_file() and path.suffix in (".json", ".csv", ".md"):
                out[str(path.relative_to(root))] = normalised(path)
    return out


def differences(reference: dict, got: dict) -> list[str]:
    diff = [f"missing {k}" for k in reference if k not in got]
    diff += [f"extra {k}" for k in got if k not in reference]
    diff += [f"differs {k}" for k in reference if k in got and got[k] != reference[k]]
    return diff


def campaign(engines: list[str], points: int, seed: int, targets: list[str], work: Path,
             models=("nvae", "ae")) -> list[dict]:
    params = campaign_params(models)
    rng = random.Random(seed)
    rows = []
    for name in engines:
        engine = Engine(name, targets)
        ref = project_copy(work / f"{name}-reference", params)
        engine.setup(ref)
        t0 = time.monotonic()
        rc = run(engine.run(), ref, ref / "campaign.log")
        duration = time.monotonic() - t0
        if rc != 0:
            raise SystemExit(f"{name}: the uninterrupted run failed (log: {ref / 'campaign.log'})")
        reference = results(ref)
        print(f"{name}: uninterrupted run {duration:.0f} s, {len(reference)} files compared", flush=True)
        for i in range(points):
            after = duration * (i + rng.random()) / points
            root = project_copy(work / f"{name}-kill{i}", params)
            engine.setup(root)
            log = root / "campaign.log"
            killed, ran = killed_run(engine.run(), root, log, after)
            engine.after_kill()
            interrupted = running_jobs(log) if killed else []
            codes = [run(cmd, root, log) for cmd in engine.resume()]
            diff = differences(reference, results(root)) if codes[-1] == 0 else [f"resume exit {codes[-1]}"]
            rows.append({"engine": name, "kill_at_s": round(after, 1), "killed": killed,
                         "interrupted": sorted(set(interrupted)), "survived": not diff,
                         "differences": diff[:5]})
            print(f"  kill at {after:5.1f} s during {', '.join(sorted(set(interrupted))) or '-'}: "
                  f"{'survived' if not diff else 'FAILED ' + '; '.join(diff[:3])}", flush=True)
            if not diff:
                shutil.rmtree(root, ignore_errors=True)
    return rows


def report(rows: list[dict]) -> str:
    lines = ["| engine | survived / tried | kills during | failures |", "|---|---|---|---|"]
    for name in dict.fromkeys(r["engine"] for r in rows):
        mine = [r for r in rows if r["engine"] == name]
        during = sorted({j for r in mine for j in r["interrupted"]})
        failed = "; ".join(f"at {r['kill_at_s']} s: {', '.join(r['differences'])}" for r in mine
                           if not r["survived"]) or "none"
        lines.append(f"| {name} | {sum(r['survived'] for r in mine)} / {len(mine)} | "
                     f"{', '.join(during)} | {failed} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", nargs="+", default=["snakemake", "dvc"], choices=["snakemake", "dvc", "slurm"])
    parser.add_argument("--points", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", nargs="*", default=[], help="files (Snakemake) or stages (DVC)")
    parser.add_argument("--report", type=Path)
    parser.add_argument("--workdir", type=Path, help="keep the copies here (default: a temp dir)")
    args = parser.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="vaepriors-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = campaign(args.engine, args.points, args.seed, args.target, work)
    table = report(rows)
    print(table)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(table + "\n" + json.dumps(rows, indent=1) + "\n")
    return 0 if all(r["survived"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
